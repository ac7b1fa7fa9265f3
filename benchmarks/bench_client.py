"""Client CPU per streamed chunk: anyio_llmreq's Client vs aiohttp and plain httpx clients.

The server (``bench_transport.py``'s stepper: 256 vLLM-shaped token events per request,
one write each, every active stream advanced once per step) runs in another process,
pinned to its own core; the client process is pinned to another. Every client does the
same work per event: split SSE events from raw reads, stamp each read, parse the JSON,
accumulate the text. Two regimes:

* flat out (``--rate 0``): the server steps as fast as it can. A client is only measured
  when it, not the server, sets the pace: when the server's core is nearly full
  (``server cores`` near 1) a faster client just reads more often, in smaller reads,
  and its CPU per chunk is the server's time per chunk, not its own.
  ``--burst K`` makes the server write K events at a time, K times cheaper per event.
* paced (``--rate N``): N events per second offered in total (each stream gets one event
  per step of concurrency/N seconds, like a decode step), below what any client
  saturates at: CPU per chunk is the client's own cost at a realistic arrival pattern.

All clients run under one harness (a fixed pool of workers, one request each at a
time); each run first sends one request per worker, so every connection is open, then
measures the requests that follow, as a long benchmark run would. Each run is a fresh
process (pinned to core 0), as a user's benchmark is: a client measured after another
in one process inherits its heap, and with it, on asyncio, whether each 256 KiB socket
read buffer is ``mmap``-ed or not (tens of microseconds a read either way round).
``--in-process`` runs them all in this process instead. Each cell is the median of
``--repeat`` runs, the clients interleaved within each repetition; the ratio is the
median over repetitions of the run's CPU per chunk over aiohttp's run on the same loop
(trio: asyncio's) in that repetition.

    python benchmarks/bench_client.py [--levels 1,64,256,1024] [--rate 0] [--repeat 3]

``--mode request`` measures CPU per *request* instead, where short outputs (embeddings,
rerank, one-token probes) spend it: a server in another process answers every request
in one write, with a one-token event stream (``--kinds stream``: token, usage,
``[DONE]``) or a small embeddings JSON body (``--kinds json``). Ours is the drop-in
request function (``async_request_openai_completions`` / ``..._embeddings``) on its
shared client; aiohttp a shared session doing the same per-response work (split the
events or read the body, stamp, parse). Same warm-up, interleaving and paired ratios.
The ``kernel`` column is the kernel's share of the client's CPU. Part of it is the
server's wake-up: a request written while the server sleeps pays, in the client's send,
for waking it on its core. aiohttp's requests go out together late in each loop turn
(22 us apart at the median in one run here), ours each as soon as it is ready (one
request's work apart, about 250 us), so the server sleeps between ours; on a virtual
machine that wake-up can cost as much as 20 us a request. Sending as soon as ready is
what the timings want, so it stays.

    python benchmarks/bench_client.py --mode request [--levels 1,64,256] [--kinds stream,json]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from _common import (
    ServerProcess,
    drive,
    mock_server_process,
    pin_to,
    raw_server_process,
    request_server_process,
)

from anyio_llmreq import Client, RequestFuncInput

Runner = Callable[[str, int, int, int, "Window"], Awaitable[int]]
# (CPU us per chunk or request, chunks or requests per second, client cores, server cores,
# the kernel's share of the client's CPU)
Cell = tuple[float, float, float, float, float]
PAYLOAD = {
    "model": "mock",
    "prompt": "hello world",
    "max_tokens": 256,
    "stream": True,
    "stream_options": {"include_usage": True},
}


class Window:
    """The measured part of a run: client CPU (and the kernel's part of it), wall time
    and server CPU between ``start`` (after the warm-up opened every connection) and
    ``stop``."""

    def __init__(self, server: ServerProcess | None) -> None:
        self.server = server
        self.cpu = self.wall = self.server_cpu = self.kernel = 0.0

    @property
    def kernel_share(self) -> float:
        return self.kernel / self.cpu if self.cpu > 0 else 0.0

    def _server_cpu(self) -> float:
        return self.server.cpu_seconds() if self.server is not None else 0.0

    def start(self) -> None:
        self.server_cpu = -self._server_cpu()
        self.wall = -time.perf_counter()
        self.kernel = -resource.getrusage(resource.RUSAGE_SELF).ru_stime
        self.cpu = -time.process_time()

    def stop(self) -> None:
        self.cpu += time.process_time()
        self.kernel += resource.getrusage(resource.RUSAGE_SELF).ru_stime
        self.wall += time.perf_counter()
        self.server_cpu += self._server_cpu()


async def measured(
    one: Callable[[int], Awaitable[int]],
    concurrency: int,
    requests: int,
    tokens: int,
    window: Window,
) -> int:
    """Warm up (one short request per worker: every connection opened), then time
    *requests* of *tokens* tokens each."""
    await drive(lambda: one(1), concurrency, concurrency)
    window.start()
    got = await drive(lambda: one(tokens), concurrency, requests)
    window.stop()
    return got


async def run_ours(
    base_url: str, concurrency: int, requests: int, tokens: int, window: Window
) -> int:
    url = f"{base_url}/v1/completions"
    async with Client() as client:

        async def one(tokens: int) -> int:
            out = await client.send(
                "openai", RequestFuncInput("hello world", url, 2, tokens, "mock")
            )
            if not out.success:
                raise RuntimeError(out.error)
            return len(out.itl) + 1

        return await measured(one, concurrency, requests, tokens, window)


def _text_of(obj: Any, text: list[str], stamps: list[float], now: float) -> None:
    choices = obj.get("choices")
    if choices and choices[0].get("text"):
        text.append(choices[0]["text"])
        stamps.append(now)


async def _aiohttp_stream(session: Any, url: str, tokens: int) -> int:
    """One streamed completion through aiohttp, SSE split by hand as vLLM's client does;
    returns the number of token events (each stamped on arrival)."""
    text: list[str] = []
    stamps: list[float] = []
    buffer = b""
    payload = {**PAYLOAD, "max_tokens": tokens}
    async with session.post(url, json=payload) as response:
        async for chunk in response.content.iter_any():
            now = time.perf_counter()
            buffer += chunk
            *events, buffer = buffer.split(b"\n\n")
            for event in events:
                data = event[6:]
                if data == b"[DONE]" or not data:
                    continue
                _text_of(json.loads(data), text, stamps, now)
    return len(stamps)


async def run_aiohttp(
    base_url: str, concurrency: int, requests: int, tokens: int, window: Window
) -> int:
    import aiohttp

    url = f"{base_url}/v1/completions"
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(tokens: int) -> int:
            return await _aiohttp_stream(session, url, tokens)

        return await measured(one, concurrency, requests, tokens, window)


async def run_httpx(
    base_url: str, concurrency: int, requests: int, tokens: int, window: Window
) -> int:
    """A plain ``httpx.AsyncClient`` with httpx-sse, as most Python harnesses write it."""
    import httpx
    from httpx_sse import aconnect_sse

    url = f"{base_url}/v1/completions"
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(300.0)) as client:

        async def one(tokens: int) -> int:
            text: list[str] = []
            stamps: list[float] = []
            payload = {**PAYLOAD, "max_tokens": tokens}
            async with aconnect_sse(client, "POST", url, json=payload) as source:
                async for sse in source.aiter_sse():
                    now = time.perf_counter()
                    if sse.data == "[DONE]" or not sse.data:
                        continue
                    _text_of(json.loads(sse.data), text, stamps, now)
            return len(stamps)

        return await measured(one, concurrency, requests, tokens, window)


CLIENTS: dict[str, tuple[str, Runner]] = {
    "aiohttp": ("aiohttp (shared session)", run_aiohttp),
    "httpx": ("httpx + httpx-sse", run_httpx),
    "ours": ("anyio_llmreq Client", run_ours),
}


# -- per-request mode ------------------------------------------------------------------

EMBED_PAYLOAD = {"model": "mock", "input": "hello world", "truncate_prompt_tokens": -1}


async def req_ours(
    base_url: str, kind: str, concurrency: int, requests: int, window: Window
) -> int:
    from anyio_llmreq import ASYNC_REQUEST_FUNCS

    if kind == "stream":
        func = ASYNC_REQUEST_FUNCS["openai"]
        inp = RequestFuncInput("hello world", f"{base_url}/v1/completions", 2, 1, "mock")
    else:
        func = ASYNC_REQUEST_FUNCS["openai-embeddings"]
        inp = RequestFuncInput("hello world", f"{base_url}/v1/embeddings", 2, 1, "mock")

    async def one() -> int:
        out = await func(inp)
        if not out.success:
            raise RuntimeError(out.error)
        return 1

    return await measured(lambda _: one(), concurrency, requests, 1, window)


async def req_aiohttp(
    base_url: str, kind: str, concurrency: int, requests: int, window: Window
) -> int:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        if kind == "stream":
            url = f"{base_url}/v1/completions"

            async def one() -> int:
                stamps = await _aiohttp_stream(session, url, 1)
                if stamps != 1:
                    raise RuntimeError(stamps)
                return 1

        else:
            url = f"{base_url}/v1/embeddings"

            async def one() -> int:
                async with session.post(url, json=EMBED_PAYLOAD) as response:
                    body = await response.read()
                    time.perf_counter()
                    if not json.loads(body).get("data"):
                        raise RuntimeError(body)
                return 1

        return await measured(lambda _: one(), concurrency, requests, 1, window)


RequestRunner = Callable[[str, str, int, int, "Window"], Awaitable[int]]
REQUEST_CLIENTS: dict[str, tuple[str, RequestRunner]] = {
    "aiohttp": ("aiohttp (shared session)", req_aiohttp),
    "ours": ("anyio_llmreq request func", req_ours),
}


def measure_request(
    runner: RequestRunner,
    loop: str,
    server: ServerProcess,
    kind: str,
    concurrency: int,
    requests: int,
) -> tuple[float, float, float, float]:
    """(CPU us per request, requests per second, client cores, server cores) of one run."""
    backend = "trio" if loop == "trio" else "asyncio"
    options = {} if loop == "trio" else {"use_uvloop": loop == "uvloop"}
    window = Window(server)
    done = anyio.run(
        runner,
        server.url,
        kind,
        concurrency,
        requests,
        window,
        backend=backend,
        backend_options=options,
    )
    assert done == requests, (done, requests)
    return (
        window.cpu / done * 1e6,
        done / window.wall,
        window.cpu / window.wall,
        window.server_cpu / window.wall,
        window.kernel_share,
    )


def run_request_level(
    args: argparse.Namespace, server: ServerProcess, kind: str, level: int
) -> list[tuple[Any, ...]]:
    requests = max(level, args.requests // level * level)
    pairs = [(loop, c) for loop, c in plan(args) if c in REQUEST_CLIENTS]
    runs: dict[tuple[str, str], list[Cell]] = {p: [] for p in pairs}
    for _ in range(args.repeat):
        for loop, client in pairs:
            job = {"mode": "request", "client": client, "loop": loop, "level": level,
                   "requests": requests, "kind": kind}  # fmt: skip
            runs[loop, client].append(in_child(args, server, job))
    return _rows(runs, level, {k: v[0] for k, v in REQUEST_CLIENTS.items()}, kind)


def _rows(
    runs: dict[tuple[str, str], list[Cell]],
    level: int,
    names: dict[str, str],
    label: str | None = None,
) -> list[tuple[Any, ...]]:
    medians = {
        pair: tuple(statistics.median(run[i] for run in values) for i in range(5))
        for pair, values in runs.items()
    }
    rows = []
    for (loop, client), (cpu, rate, cores, server_cores, kernel) in medians.items():
        ref = runs.get((loop, "aiohttp")) or runs.get(("asyncio", "aiohttp"))
        # Paired: each run against the baseline's run of the same repetition (they ran
        # seconds apart), then the median, so a slow spell of the machine cancels out.
        ratio = (
            statistics.median(
                mine[0] / base[0] for mine, base in zip(runs[loop, client], ref, strict=True)
            )
            if ref
            else float("nan")
        )
        name = names[client] if label is None else f"{label}: {names[client]}"
        rows.append((level, loop, name, cpu, rate, cores, server_cores, kernel, ratio))
    return rows


def measure(
    runner: Runner,
    loop: str,
    server: ServerProcess | str,
    concurrency: int,
    requests: int,
    tokens: int,
) -> tuple[float, float, float, float]:
    """(CPU us per chunk, chunks per second, client cores, server cores) of one run."""
    backend = "trio" if loop == "trio" else "asyncio"
    options = {} if loop == "trio" else {"use_uvloop": loop == "uvloop"}
    url = server.url if isinstance(server, ServerProcess) else server
    window = Window(server if isinstance(server, ServerProcess) else None)
    chunks = anyio.run(
        runner,
        url,
        concurrency,
        requests,
        tokens,
        window,
        backend=backend,
        backend_options=options,
    )
    assert chunks == requests * tokens, (chunks, requests * tokens)
    return (
        window.cpu / chunks * 1e6,
        chunks / window.wall,
        window.cpu / window.wall,
        window.server_cpu / window.wall,
        window.kernel_share,
    )


def in_child(args: argparse.Namespace, server: ServerProcess | str, job: dict[str, Any]) -> Cell:
    """``measure`` / ``measure_request`` of *job* in a fresh process (see the module's
    docstring), unless ``--in-process``."""
    if args.in_process:
        return run_job(job, server)
    url, pid = (server.url, server.pid) if isinstance(server, ServerProcess) else (server, 0)
    cmd = [sys.executable, __file__, "--child", json.dumps({**job, "url": url, "pid": pid})]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            cpu, rate, cores, server_cores, kernel = json.loads(line[7:])
            return cpu, rate, cores, server_cores, kernel
    raise RuntimeError(f"run {job} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")


def run_job(job: dict[str, Any], server: ServerProcess | str) -> Cell:
    if job["mode"] == "request":
        assert isinstance(server, ServerProcess)
        runner = REQUEST_CLIENTS[job["client"]][1]
        return measure_request(
            runner, job["loop"], server, job["kind"], job["level"], job["requests"]
        )
    return measure(
        CLIENTS[job["client"]][1],
        job["loop"],
        server,
        job["level"],
        job["requests"],
        job["tokens"],
    )


def child(spec: str) -> None:
    pin_to(0)
    job = json.loads(spec)
    server = ServerProcess(job["url"], job["pid"]) if job["pid"] else job["url"]
    print("RESULT " + json.dumps(run_job(job, server)))


def plan(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The (loop, client) pairs to run: aiohttp has no trio; httpx runs on --httpx-loops."""
    pairs = []
    for loop in args.loops.split(","):
        for client in args.clients.split(","):
            if client == "aiohttp" and loop == "trio":
                continue
            if client == "httpx" and loop not in args.httpx_loops.split(","):
                continue
            pairs.append((loop, client))
    return pairs


def run_level(
    args: argparse.Namespace, server: ServerProcess | str, level: int
) -> list[tuple[Any, ...]]:
    tokens = args.tokens
    requests = max(level, args.chunks // tokens // level * level, 4)
    pairs = plan(args)
    runs: dict[tuple[str, str], list[Cell]] = {p: [] for p in pairs}
    for _ in range(args.repeat):
        for loop, client in pairs:
            job = {"mode": "chunk", "client": client, "loop": loop, "level": level,
                   "requests": requests, "tokens": tokens}  # fmt: skip
            runs[loop, client].append(in_child(args, server, job))
    return _rows(runs, level, {k: v[0] for k, v in CLIENTS.items()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="1,64,256,1024")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--chunks", type=int, default=150_000, help="target chunks per run")
    parser.add_argument("--loops", default="asyncio,uvloop,trio")
    parser.add_argument("--clients", default="aiohttp,httpx,ours")
    parser.add_argument("--httpx-loops", default="asyncio", help="loops the httpx client runs on")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell (median)")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="raw server: events per second offered in total (0: flat out)",
    )
    parser.add_argument(
        "--burst",
        type=int,
        default=1,
        help="raw server: events per write (more: a cheaper server, larger reads)",
    )
    parser.add_argument(
        "--server",
        choices=["raw", "mock"],
        default="raw",
        help="raw: a minimal server (256 tokens, so the client's cost shows); "
        "mock: anyio-llmreq mock-server",
    )
    parser.add_argument(
        "--mode",
        choices=["chunk", "request"],
        default="chunk",
        help="chunk: CPU per streamed chunk; request: CPU per short request",
    )
    parser.add_argument("--kinds", default="stream,json", help="request mode: response kinds")
    parser.add_argument("--requests", type=int, default=10_000, help="request mode: per run")
    parser.add_argument(
        "--in-process", action="store_true", help="every run in this process, one after another"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return 0
    pin_to(0)
    levels = [int(x) for x in args.levels.split(",")]
    rows: list[tuple[Any, ...]] = []
    if args.mode == "request":
        with request_server_process(core=1) as server:
            for kind in args.kinds.split(","):
                for level in levels:
                    rows += run_request_level(args, server, kind, level)
        _print(rows, f"per request, one write per response; median of {args.repeat}", "request")
        return 0
    for level in levels:
        if args.server == "mock":
            with mock_server_process("--output-len", str(args.tokens), core=1) as url:
                rows += run_level(args, url, level)
            continue
        args.tokens = 256
        itl = level / args.rate if args.rate else 0.0
        with raw_server_process(itl, core=1, burst=args.burst) as server:
            rows += run_level(args, server, level)
    regime = f"paced, {args.rate:,.0f} events/s offered" if args.rate else "flat out"
    if args.server == "raw":
        regime += f", {args.burst} event(s) per write"
    _print(rows, f"server: {args.server}, {regime}; median of {args.repeat} runs per cell")
    return 0


def _print(rows: list[tuple[Any, ...]], title: str, unit: str = "chunk") -> None:
    print(title)
    header = ("conc", "loop", "client", f"CPU us/{unit}", f"{unit}s/s", "cores", "server",
              "kernel", "ratio")  # fmt: skip
    width = max([26, *(len(row[2]) for row in rows)])
    print(
        f"{{:>5}} {{:<8}} {{:<{width}}} {{:>14}} {{:>10}} {{:>6}} {{:>6}} {{:>6}} {{:>6}}".format(
            *header
        )
    )
    for level, loop, name, cpu, rate, cores, server_cores, kernel, ratio in rows:
        print(
            f"{level:>5} {loop:<8} {name:<{width}} {cpu:>14.2f} {rate:>10.0f} "
            f"{cores:>6.2f} {server_cores:>6.2f} {kernel:>6.0%} {ratio:>6.2f}"
        )
    print("cores: client CPU / wall; server: the server's CPU / wall (near 1: it set the pace)")
    print(
        "kernel: the kernel's share of the client's CPU (sending, receiving, and waking the "
        "server: a send to a sleeping server pays for its wake-up)"
    )
    print(
        f"ratio: median over repetitions of CPU per {unit} / aiohttp's in the same repetition "
        "(same loop; trio: asyncio's)"
    )


if __name__ == "__main__":
    sys.exit(main())
