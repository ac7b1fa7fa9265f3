"""Scale in one process: N concurrent streams from one ``Client`` on asyncio, uvloop
and trio against a slow server (first token after 1 s, then one a second, 20 tokens).

The client runs in a fresh process per (loop, N): ``Client.send`` for every stream at
once in one task group (no semaphore), after raising the open-file limit as the bench
does (``anyio_llmreq.bench._limits``). The servers are ``anyio-llmreq mock-server``
processes (``--servers``, streams spread round-robin) that stamp each event as they
write it; reported per cell: failures, peak RSS growth per stream (over the process
with its client open), and the TTFT error, the client's first-token stamp minus the
server's first write (same system-wide ``perf_counter`` clock).

    python benchmarks/bench_scale.py [--streams 1024,4096,10000] [--loops asyncio,uvloop,trio]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from typing import Any

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from _common import mock_server_process

from anyio_llmreq.bench._limits import check_fd_budget, raise_fd_limit


def _rss_kib() -> int:
    """Current resident set size (Linux ``/proc``; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except OSError:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def child(urls: list[str], streams: int, tokens: int, loop: str, tag: str) -> dict[str, Any]:
    import gc
    import resource

    import anyio

    from anyio_llmreq import Client, RequestFuncInput, Timeouts

    limit = raise_fd_limit()
    check_fd_budget(streams)  # a clear error naming the limit, not 10k failed connects
    apis = [f"{u}/v1/completions" for u in urls]

    async def main() -> dict[str, Any]:
        first: dict[str, float] = {}
        starts: list[float] = []
        errors: Counter[str] = Counter()
        # Connect storms past the accept backlog retry SYNs (1 s, 3 s, ...): not a client
        # fault, and not what the TTFT error measures (it starts at the server's write).
        async with Client(timeouts=Timeouts(connect=120, pool=120)) as client:
            gc.collect()
            base = _rss_kib()
            peak = base

            async def one(i: int) -> None:
                rid = f"{tag}-{i}"
                req = RequestFuncInput("hi", apis[i % len(apis)], 1, tokens, "m", request_id=rid)
                out = await client.send("openai", req)
                starts.append(out.start_time)
                if out.success and len(out.itl) + 1 == tokens:
                    first[rid] = out.start_time + out.ttft
                else:
                    errors[out.error or f"{len(out.itl) + 1} tokens"] += 1

            async def sample() -> None:
                nonlocal peak
                while True:
                    await anyio.sleep(0.5)
                    peak = max(peak, _rss_kib())

            t0 = time.perf_counter()
            async with anyio.create_task_group() as outer:
                outer.start_soon(sample)
                async with anyio.create_task_group() as tg:
                    for i in range(streams):
                        tg.start_soon(one, i)
                outer.cancel_scope.cancel()
            wall = time.perf_counter() - t0
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "first": first, "errors": dict(errors.most_common(5)),
            "failed": sum(errors.values()), "rss_base_kib": base, "rss_peak_kib": peak,
            "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "fd_limit": limit,
            "issued": [min(starts), max(starts)],
        }  # fmt: skip

    backend = "trio" if loop == "trio" else "asyncio"
    options = {} if loop == "trio" else {"use_uvloop": loop == "uvloop"}
    return anyio.run(main, backend=backend, backend_options=options)  # type: ignore[no-any-return]


def server_first_writes(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/mock/requests", timeout=120) as response:
        records = json.load(response)
    first: dict[str, float] = {}
    for record in records:
        rid = next((v for k, v in record["headers"] if k.lower() == "x-request-id"), None)
        pairs = zip(record["sent_times"], record["event_tokens"], strict=True)
        writes = [t for t, tok in pairs if tok]
        if rid is not None and writes:
            first[rid] = writes[0]
    return first


def children_cpu() -> float:
    """CPU seconds (user + system) used so far by this process's children (the servers;
    Linux ``/proc``, 0 elsewhere)."""
    total = 0.0
    me = str(os.getpid())
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def reset(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{url}/mock/reset", method="POST"))


def main(argv: list[str] | None = None) -> int:
    import contextlib

    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", default="1024,4096,10000")
    parser.add_argument("--loops", default="asyncio,uvloop,trio")
    parser.add_argument("--servers", type=int, default=0,
                        help="server processes (default: one per 2,500 streams)")  # fmt: skip
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--ttft", type=float, default=1.0)
    parser.add_argument("--itl", type=float, default=1.0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        got = child(spec["urls"], spec["streams"], args.tokens, spec["loop"], spec["tag"])
        # A file, not stdout: a loop may leave stdout non-blocking, and a large write
        # to a full pipe then fails part-way.
        with open(spec["out"], "w") as f:
            json.dump(got, f)
        return 0
    levels = [int(x) for x in args.streams.split(",")]
    # Servers inherit the raised limit: each holds its share of the connections.
    print(f"open-file limit: {raise_fd_limit()}")
    servers = args.servers or max(1, math.ceil(max(levels) / 2500))
    behaviour = ["--ttft", str(args.ttft), "--itl", str(args.itl), "--record",
                 "--output-len", str(args.tokens)]  # fmt: skip
    rows = []
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        urls = [
            stack.enter_context(mock_server_process(*behaviour, core=None)) for _ in range(servers)
        ]
        for n in levels:
            for loop in args.loops.split(","):
                for url in urls:
                    reset(url)
                tag = f"{loop}-{n}"
                out = os.path.join(tmp, f"{tag}.json")
                cell = {"urls": urls, "streams": n, "loop": loop, "tag": tag, "out": out}
                spec = json.dumps(cell)
                cmd = [sys.executable, __file__, f"--tokens={args.tokens}", "--child", spec]
                server0, load0 = children_cpu(), os.getloadavg()[0]
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
                servers_cpu, load = children_cpu() - server0, max(load0, os.getloadavg()[0])
                if proc.returncode != 0 or not os.path.exists(out):
                    print(f"{tag}: client failed\n{proc.stderr[-3000:]}")
                    nan = float("nan")
                    rows.append((n, loop, n, nan, nan, nan, 0.0, nan, nan, 0, nan))
                    continue
                with open(out) as f:
                    got = json.load(f)
                writes: dict[str, float] = {}
                for url in urls:
                    writes.update(server_first_writes(url))
                err = [got["first"][r] - writes[r] for r in got["first"] if r in writes]
                # First tokens written once every request had left: no issuing in the way.
                done = got["issued"][1]
                late = [got["first"][r] - w for r in got["first"] if (w := writes.get(r, 0)) > done]
                per_stream = (got["rss_peak_kib"] - got["rss_base_kib"]) / n
                print(f"{tag}: servers {servers_cpu:.1f} CPU s, client {got['cpu_s']:.1f} CPU s "
                      f"over {got['wall_s']:.1f} s; load average {load:.1f} on {os.cpu_count()} "
                      "cores")  # fmt: skip
                if got["errors"]:
                    print(f"{tag}: errors {got['errors']}")
                rows.append((n, loop, got["failed"], per_stream,
                             float(np.mean(err)) * 1e3 if err else float("nan"),
                             float(np.percentile(err, 99)) * 1e3 if err else float("nan"),
                             got["wall_s"], got["issued"][1] - got["issued"][0],
                             float(np.mean(late)) * 1e3 if late else float("nan"), len(late),
                             got["cpu_s"] / got["wall_s"]))  # fmt: skip
    print(f"{servers} server process(es); {args.tokens} tokens, TTFT {args.ttft:g} s, "
          f"ITL {args.itl:g} s")  # fmt: skip
    print("TTFT err: client first-token stamp - server first write; 'after issue': only the")
    print("streams whose first token was written after the client had sent every request")
    print(f"{'streams':>7} {'loop':<8} {'failed':>6} {'RSS/stream':>11} {'TTFT err mean':>14} "
          f"{'p99':>9} {'issue':>6} {'after issue: err (n)':>21} {'CPU':>5} "
          f"{'wall':>6}")  # fmt: skip
    for n, loop, failed, kib, mean, p99, wall, issue, late, nlate, cpu in rows:
        print(f"{n:>7} {loop:<8} {failed:>6} {kib:>7.1f} KiB {mean:>11.2f} ms "
              f"{p99:>6.1f} ms {issue:>5.2f}s {late:>9.2f} ms ({nlate:>5}) {cpu:>5.2f} "
              f"{wall:>5.1f}s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
