"""The whole bench, not just the client: CPU per request and per chunk of the run phase.

Three harnesses send the same workload (N streamed completions of T tokens, C at a time,
``--request-rate inf``) to one mock server in another process (by default TTFT 0, ITL 0:
the server answers as fast as it can, so the client's own cost is what is measured;
``--itl 0.01`` is closer to a real server, one event per read, and a longer run):

* ``bench``: ``anyio_llmreq.bench.run_benchmark`` with everything on (LocalExecutor,
  records, ``--output-jsonl``, tqdm bar, self-check); its CPU is the result's
  ``client_cpu_s`` (``_execute.measured_phase``: the execution stage only).
* ``bare``: ``Client.send`` under a semaphore in one task group, nothing else.
* ``vllm``: shaped like vLLM's ``benchmark_serving``: one shared aiohttp session,
  ``asyncio.Semaphore`` + ``asyncio.gather``, tqdm, one output object per request,
  numpy metrics at the end (their CPU reported apart: the bench's metrics are too).

Diagnostic variants split the bench's cost: ``bench-lean`` (no JSONL, no bar),
``bench-nomon`` (everything on but the loop-lag monitor); ``--before TREE`` adds
``bench-before``, the bench imported from another source tree (e.g. a copy of the
package before a change), interleaved with the rest. Each run is a fresh process
pinned to core 0 (the server on core 1); variants are interleaved over ``--repeat``
rounds and every figure is a median; ratios are medians of per-round (paired) ratios.

``--instructions`` counts instead of timing: each child runs under valgrind's callgrind,
which counts the user-space instructions of the measured part alone (the child toggles
the count on and off around it, through a helper compiled with ``cc`` from valgrind's
``callgrind.h``). The count does not move with the machine's load, as CPU time does
(the kernel's part is not in it); one round is enough.

    python benchmarks/bench_harness.py [--requests 400] [--concurrency 32] [--tokens 64]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from _common import mock_server_process, pin_to

PROMPT_WORDS = 32

# --instructions: the helper that turns callgrind's count on and off (in the child).
_TOGGLE_ENV = "BENCH_HARNESS_CALLGRIND_TOGGLE"
_TOGGLE_C = "#include <valgrind/callgrind.h>\nvoid toggle(void) { CALLGRIND_TOGGLE_COLLECT; }\n"
_toggle: Any = None


def _measure(on: bool) -> None:
    """Start (or stop) counting instructions, when the child runs under callgrind."""
    global _toggle
    path = os.environ.get(_TOGGLE_ENV)
    if not path:
        return
    if _toggle is None:
        import ctypes

        _toggle = ctypes.CDLL(path).toggle
    _toggle()


def _build_toggle(directory: str) -> str:
    source = os.path.join(directory, "toggle.c")
    library = os.path.join(directory, "toggle.so")
    with open(source, "w") as f:
        f.write(_TOGGLE_C)
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", library, source], check=True)
    return library


def _prompt() -> str:
    return " ".join(["hello"] * PROMPT_WORDS)


# ---------------------------------------------------------------------------- children


def child_bench(url: str, n: int, c: int, tokens: int, loop: str, variant: str) -> dict[str, Any]:
    from anyio_llmreq.bench import BenchConfig, run_benchmark

    if variant == "bench-nomon":
        from anyio_llmreq.bench import _drive, _selfcheck

        class _Quiet(_selfcheck.LoopLagMonitor):
            async def run(self) -> None:
                return

        _drive.LoopLagMonitor = _Quiet  # type: ignore[misc]
    old: list[float] = []
    if variant == "bench-both":
        # The previous monitor (a 10 ms sleep loop, all run long) beside the new one in
        # the same run: the verdict from each, on the same requests.
        import anyio

        from anyio_llmreq.bench import _drive, _selfcheck

        class _Both(_selfcheck.LoopLagMonitor):
            async def run(self) -> None:
                async def old_loop() -> None:
                    while True:
                        t = time.perf_counter()
                        await anyio.sleep(0.01)
                        old.append(max(time.perf_counter() - t - 0.01, 0.0))

                async with anyio.create_task_group() as tg:
                    tg.start_soon(old_loop)
                    await _selfcheck.LoopLagMonitor.run(self)

        _drive.LoopLagMonitor = _Both  # type: ignore[misc]
    if os.environ.get(_TOGGLE_ENV):
        import contextlib

        from anyio_llmreq.bench import _execute

        phase = _execute.measured_phase

        @contextlib.contextmanager
        def counted() -> Any:
            with phase() as measured:
                _measure(True)
                try:
                    yield measured
                finally:
                    _measure(False)

        for module in list(sys.modules.values()):
            if getattr(module, "measured_phase", None) is phase:
                module.measured_phase = counted  # type: ignore[attr-defined]
    lean = variant == "bench-lean"
    with tempfile.TemporaryDirectory() as tmp:
        config = BenchConfig(
            base_url=url,
            model="m",
            tokenizer_mode="words",
            num_prompts=n,
            max_concurrency=c,
            request_rate=float("inf"),
            random_input_len=PROMPT_WORDS,
            random_output_len=tokens,
            disable_tqdm=lean,
            output_jsonl=None if lean else os.path.join(tmp, "r.jsonl"),
            loop=loop,
        )
        out = io.StringIO()
        result = run_benchmark(config, stdout=out)
    r = result.result
    extra: dict[str, Any] = {}
    if variant == "bench-both":
        from anyio_llmreq.bench._selfcheck import after_burst, evaluate_self_check

        send = [rec.send_lag for rec in result.records]
        check = evaluate_self_check(
            send_lags=send, loop_lags=after_burst(old, max(send)),
            queue_times=[rec.output.client_queue_time for rec in result.records],
            cpu_s=[r["client_cpu_s"]], wall_s=result.duration, burst=True,
            completed=r["completed"],
        )  # fmt: skip
        extra = {"old_verdict": check.verdict, "old_loop_p99_ms": check.loop_lag_p99_ms,
                 "old_samples": len(old)}  # fmt: skip
    return extra | {
        "cpu_s": r["client_cpu_s"],
        "wall_s": result.duration,
        "ok": r["completed"],
        "chunks": r["total_output_tokens"],
        "verdict": r["client_verdict"],
        "loop_p99_ms": r["client_loop_lag_p99_ms"],
    }


def _sys_s() -> float:
    """CPU seconds this process has spent in the kernel (system calls, wake-ups)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def child_bare(url: str, n: int, c: int, tokens: int, loop: str) -> dict[str, Any]:
    import anyio

    from anyio_llmreq import Client, RequestFuncInput

    api = f"{url}/v1/completions"
    prompt = _prompt()

    async def main() -> dict[str, Any]:
        async with Client() as client:
            limiter = anyio.Semaphore(c)
            outs: list[Any] = []

            async def one() -> None:
                async with limiter:
                    req = RequestFuncInput(prompt, api, PROMPT_WORDS, tokens, "m")
                    outs.append(await client.send("openai", req))

            async def batch(k: int) -> None:
                async with anyio.create_task_group() as tg:
                    for _ in range(k):
                        tg.start_soon(one)

            await batch(c)  # warm-up: C open connections, as the bench's ready check
            outs.clear()
            cpu0, t0, sys0 = time.process_time(), time.perf_counter(), _sys_s()
            _measure(True)
            await batch(n)
            _measure(False)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
            kernel = _sys_s() - sys0
        ok = [o for o in outs if o.success]
        return {"cpu_s": cpu, "wall_s": wall, "ok": len(ok), "sys_s": kernel,
                "chunks": sum(len(o.itl) + 1 for o in ok)}  # fmt: skip

    backend = "trio" if loop == "trio" else "asyncio"
    options = {} if loop == "trio" else {"use_uvloop": loop == "uvloop"}
    return anyio.run(main, backend=backend, backend_options=options)  # type: ignore[no-any-return]


def child_vllm(url: str, n: int, c: int, tokens: int, loop: str) -> dict[str, Any]:
    """vLLM's benchmark loop, as ``benchmark_serving.py`` + ``backend_request_func.py``
    write it: per-request output object, SSE lines parsed with json, tqdm per request."""
    import asyncio
    from dataclasses import dataclass, field

    import aiohttp
    import numpy as np
    from tqdm import tqdm

    @dataclass
    class Output:
        generated_text: str = ""
        success: bool = False
        latency: float = 0.0
        output_tokens: int = 0
        ttft: float = 0.0
        itl: list[float] = field(default_factory=list)
        prompt_len: int = 0
        error: str = ""

    api = f"{url}/v1/completions"
    prompt = _prompt()

    async def request(session: aiohttp.ClientSession, pbar: Any) -> Output:
        payload = {
            "model": "m", "prompt": prompt, "temperature": 0.0, "max_tokens": tokens,
            "logprobs": None, "stream": True, "stream_options": {"include_usage": True},
        }  # fmt: skip
        output = Output(prompt_len=PROMPT_WORDS)
        generated = ""
        st = time.perf_counter()
        most_recent = st
        try:
            async with session.post(url=api, json=payload) as response:
                if response.status == 200:
                    first_chunk_received = False
                    async for chunk_bytes in response.content:
                        chunk_bytes = chunk_bytes.strip()
                        if not chunk_bytes:
                            continue
                        chunk = chunk_bytes.decode("utf-8").removeprefix("data: ")
                        if chunk != "[DONE]":
                            data = json.loads(chunk)
                            if choices := data.get("choices"):
                                text = choices[0].get("text")
                                timestamp = time.perf_counter()
                                if not first_chunk_received:
                                    first_chunk_received = True
                                    output.ttft = timestamp - st
                                else:
                                    output.itl.append(timestamp - most_recent)
                                most_recent = timestamp
                                generated += text or ""
                            elif usage := data.get("usage"):
                                output.output_tokens = usage.get("completion_tokens")
                    output.generated_text = generated
                    output.success = first_chunk_received
                    output.latency = most_recent - st
                else:
                    output.error = response.reason or ""
        except Exception as exc:
            output.error = repr(exc)
        pbar.update(1)
        return output

    async def main() -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=6 * 60 * 60)
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            semaphore = asyncio.Semaphore(c)

            async def limited(pbar: Any) -> Output:
                async with semaphore:
                    return await request(session, pbar)

            pbar = tqdm(total=c, disable=True)
            await asyncio.gather(*(limited(pbar) for _ in range(c)))  # warm-up
            pbar = tqdm(total=n)
            cpu0, t0, sys0 = time.process_time(), time.perf_counter(), _sys_s()
            _measure(True)
            outputs = await asyncio.gather(*(limited(pbar) for _ in range(n)))
            pbar.close()
            _measure(False)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
            kernel = _sys_s() - sys0
        cpu1 = time.process_time()
        ok = [o for o in outputs if o.success]
        ttfts = np.array([o.ttft for o in ok])
        tpots = np.array([(o.latency - o.ttft) / max(o.output_tokens - 1, 1) for o in ok])
        itls = np.array([x for o in ok for x in o.itl])
        for arr in (ttfts, tpots, itls):
            _ = (np.mean(arr), np.median(arr), np.std(arr), np.percentile(arr, 99))
        return {"cpu_s": cpu, "wall_s": wall, "ok": len(ok), "sys_s": kernel, "metrics_cpu_s":
                time.process_time() - cpu1, "chunks": sum(len(o.itl) + 1 for o in ok)}  # fmt: skip

    if loop == "uvloop":
        import uvloop

        return uvloop.run(main())  # type: ignore[no-any-return]
    return asyncio.run(main())


def child(args: argparse.Namespace) -> None:
    pin_to(0)
    v = args.child
    if v.startswith("bench"):
        got = child_bench(args.url, args.requests, args.concurrency, args.tokens, args.loop, v)
    elif v == "bare":
        got = child_bare(args.url, args.requests, args.concurrency, args.tokens, args.loop)
    else:
        got = child_vllm(args.url, args.requests, args.concurrency, args.tokens, args.loop)
    print("RESULT " + json.dumps(got))


# ---------------------------------------------------------------------------- parent


def run_child(variant: str, url: str, args: argparse.Namespace, loop: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", variant, "--url", url,
           f"--requests={args.requests}", f"--concurrency={args.concurrency}",
           f"--tokens={args.tokens}", f"--loop={loop}"]  # fmt: skip
    env = dict(os.environ)
    if variant == "bench-before":  # the same bench from another source tree
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.before, env.get("PYTHONPATH")]))
    if args.toggle:
        env[_TOGGLE_ENV] = args.toggle
        cmd = ["valgrind", "--tool=callgrind", "--collect-atstart=no",
               "--callgrind-out-file=/dev/null", *cmd]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            got: dict[str, Any] = json.loads(line[7:])
            if got["ok"] != args.requests:
                raise RuntimeError(f"{variant}: {got['ok']}/{args.requests} succeeded")
            if args.toggle:
                counted = re.search(r"Collected : (\d+)", proc.stderr)
                if counted is None:
                    raise RuntimeError(
                        f"{variant}: no count from callgrind:\n{proc.stderr[-2000:]}"
                    )
                got["instructions"] = int(counted.group(1))
            return got
    raise RuntimeError(f"{variant} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--ttft", type=float, default=0.0, help="server TTFT (s)")
    parser.add_argument("--itl", type=float, default=0.0, help="server ITL (s)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--loops", default="asyncio,uvloop")
    parser.add_argument("--variants", default="bench,bare,vllm,bench-lean,bench-nomon")
    parser.add_argument("--before", help="a source tree to run as the 'bench-before' variant")
    parser.add_argument(
        "--hog", type=int, default=0, help="busy processes on the client's core (a loaded machine)"
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count user-space instructions of the measured part (valgrind), not CPU time",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--loop", default="asyncio", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0
    variants = args.variants.split(",")
    if args.before:
        variants.insert(1, "bench-before")
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    server = ["--ttft", str(args.ttft), "--itl", str(args.itl), "--output-len", str(args.tokens)]
    args.toggle = None
    workdir = tempfile.TemporaryDirectory()
    if args.instructions:
        missing = [tool for tool in ("valgrind", "cc") if shutil.which(tool) is None]
        if missing:
            parser.error(f"--instructions needs {' and '.join(missing)} on PATH")
        args.toggle = _build_toggle(workdir.name)
    hogs = [subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", "while 1: pass"])
            for _ in range(args.hog)]  # fmt: skip
    try:
        with mock_server_process(*server, core=1) as url:
            _rounds(args, url, variants, runs)
    finally:
        workdir.cleanup()
        for hog in hogs:
            hog.kill()
            hog.wait()
    _print(args, runs)
    return 0


def _rounds(args: argparse.Namespace, url: str, variants: list[str], runs: dict[Any, Any]) -> None:
    for _ in range(args.repeat):
        for loop in args.loops.split(","):
            for v in variants:
                if v == "vllm" and loop == "trio":
                    continue
                runs.setdefault((loop, v), []).append(run_child(v, url, args, loop))


def _print(args: argparse.Namespace, runs: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
    import numpy as np

    print(f"{args.requests} requests x {args.tokens} tokens, concurrency {args.concurrency}, "
          f"server TTFT {args.ttft:g} s / ITL {args.itl:g} s in another process; "
          f"medians of {args.repeat} rounds")  # fmt: skip
    if args.instructions:
        _print_instructions(args, runs)
        return
    print(f"{'loop':<8} {'harness':<12} {'CPU/req (us)':>13} {'CPU/chunk (us)':>15} "
          f"{'wall (s)':>9} {'kernel':>6} {'/bare':>6} {'/vllm':>6}  verdict")  # fmt: skip
    for (loop, v), got in runs.items():
        per_req = np.median([g["cpu_s"] for g in got]) / args.requests * 1e6
        per_chunk = np.median([g["cpu_s"] / g["chunks"] for g in got]) * 1e6
        wall = np.median([g["wall_s"] for g in got])
        # The kernel's share of the CPU (bare and vllm): a wake-up per read costs the same
        # to every client, and bounds how far apart their totals can be.
        kernel = (
            f"{np.median([g['sys_s'] / g['cpu_s'] for g in got]):.0%}" if "sys_s" in got[0] else ""
        )
        ratios = _ratios(runs, loop, v, "cpu_s")
        verdict = ",".join(sorted({g.get("verdict", "") for g in got}))
        print(f"{loop:<8} {v:<12} {per_req:>13.0f} {per_chunk:>15.2f} {wall:>9.2f} "
              f"{kernel:>6} {ratios[0]:>6} {ratios[1]:>6}  {verdict}")  # fmt: skip
    for (loop, v), got in runs.items():
        if v == "bench-both":
            for g in got:
                old = f"{g['old_loop_p99_ms']:.2f} ms -> {g['old_verdict']}"
                print(f"{loop}: loop lag P99 {g['loop_p99_ms']:.2f} ms -> {g['verdict']} "
                      f"(25 ms in flight); {old} (10 ms sleep loop)")  # fmt: skip


def _ratios(
    runs: dict[tuple[str, str], list[dict[str, Any]]], loop: str, variant: str, key: str
) -> list[str]:
    """*variant*'s *key* over the bare loop's and the vLLM-shaped harness's on *loop*:
    the median of the per-round (paired) ratios; "" where there is no such run."""
    import numpy as np

    ratios = []
    for base in ("bare", "vllm"):
        other = runs.get((loop, base))
        if other is None or variant == base:
            ratios.append("")
            continue
        paired = [a[key] / b[key] for a, b in zip(runs[loop, variant], other, strict=True)]
        ratios.append(f"{np.median(paired):.2f}")
    return ratios


def _print_instructions(
    args: argparse.Namespace, runs: dict[tuple[str, str], list[dict[str, Any]]]
) -> None:
    import numpy as np

    print(f"{'loop':<8} {'harness':<12} {'instr/req':>10} {'instr/chunk':>12} "
          f"{'/bare':>6} {'/vllm':>6}")  # fmt: skip
    for (loop, v), got in runs.items():
        count = float(np.median([g["instructions"] for g in got]))
        chunks = float(np.median([g["chunks"] for g in got]))
        ratios = _ratios(runs, loop, v, "instructions")
        print(f"{loop:<8} {v:<12} {count / args.requests:>10,.0f} {count / chunks:>12,.0f} "
              f"{ratios[0]:>6} {ratios[1]:>6}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
