"""Client CPU per streamed SSE chunk: AnyioTransport vs plain httpx vs aiohttp.

A zero-delay SSE server runs in its own process (pinned to one core); each client runs
in a fresh process (pinned to another core) and streams POST responses of 256 events plus
``[DONE]``, one HTTP chunk each, at several concurrency levels. Every consumer does the
same work: split the raw bytes on ``b"\\n\\n"`` and count events. Reported: client
``time.process_time()`` per event and events per second.

    python benchmarks/bench_transport.py                 # full matrix
    python benchmarks/bench_transport.py --levels 1,64 --scale 0.5
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import drive

# What vLLM streams for /v1/completions: one token per event, then usage, then [DONE].
EVENT = (
    b'data: {"id":"cmpl-8f3a2c","object":"text_completion","created":1767225600,'
    b'"model":"mock","choices":[{"index":0,"text":" tok","logprobs":null,'
    b'"finish_reason":null,"stop_reason":null}],"usage":null}\n\n'
)
N_EVENTS = 256
CHUNK = b"%x\r\n%s\r\n" % (len(EVENT), EVENT)
DONE = (
    b'data: {"id":"cmpl-8f3a2c","object":"text_completion","created":1767225600,'
    b'"model":"mock","choices":[],"usage":{"prompt_tokens":2,"completion_tokens":256,'
    b'"total_tokens":258}}\n\ndata: [DONE]\n\n'
)
LAST = b"%x\r\n%s\r\n0\r\n\r\n" % (len(DONE), DONE)
HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
    b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
)
EVENTS_PER_REQUEST = N_EVENTS + 2  # the tokens, usage, [DONE]
PAYLOAD = b'{"model":"m","prompt":"hello","max_tokens":256,"stream":true}'
CLIENTS = ("anyio", "httpx", "aiohttp")
LOOPS = ("asyncio", "uvloop", "trio")


# -- server (own process) ---------------------------------------------------------------


class _Stepper:
    """Writes the next event of every active stream once per step, like an inference
    server's decode step: one write (one send) per event, streams interleaved (or
    *burst* events per write: a cheaper server, for when one event per write makes the
    server the bottleneck). With a step interval of 0 it runs as fast as it can,
    yielding to the loop between steps.
    """

    def __init__(self, interval: float, burst: int = 1) -> None:
        self.interval = interval
        self.burst = burst  # events per stream per step, in one write
        self.active: dict[_SSEProtocol, int] = {}  # stream -> events still to send
        self.wakeup = asyncio.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_step = loop.time()
        burst = self.burst
        bursts = {n: CHUNK * n for n in range(1, burst + 1)}
        while True:
            if not self.active:
                self.wakeup.clear()
                await self.wakeup.wait()
                next_step = loop.time()
            for proto, left in list(self.active.items()):
                transport = proto.transport
                if transport is None or transport.is_closing():
                    del self.active[proto]
                elif left > burst:
                    transport.write(bursts[burst])
                    self.active[proto] = left - burst
                else:
                    transport.write(bursts[left] + LAST)
                    del self.active[proto]
                    proto.finished()
            if self.interval:
                next_step += self.interval
                await asyncio.sleep(max(0.0, next_step - loop.time()))
            else:
                await asyncio.sleep(0)

    def start(self, proto: _SSEProtocol, events: int) -> None:
        assert proto.transport is not None
        proto.transport.write(HEAD)
        self.active[proto] = events
        self.wakeup.set()


class _SSEProtocol(asyncio.Protocol):
    def __init__(self, stepper: _Stepper) -> None:
        self._buf = b""
        self._stepper = stepper
        self._waiting: list[int] = []  # events asked for by requests not yet answered
        self._busy = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stepper.active.pop(self, None)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        while True:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                break
            lower = self._buf[:end].lower()
            length = 0
            if b"content-length:" in lower:
                length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
            if len(self._buf) < end + 4 + length:
                break
            body = self._buf[end + 4 : end + 4 + length]
            self._buf = self._buf[end + 4 + length :]
            self._waiting.append(_events_asked(body))
        self._next()

    def finished(self) -> None:
        self._busy = False
        self._next()

    def _next(self) -> None:
        if self._waiting and not self._busy:
            self._busy = True
            self._stepper.start(self, self._waiting.pop(0))


def _events_asked(body: bytes) -> int:
    """The request's ``max_tokens`` (at least 1), else N_EVENTS: warm-ups ask for few."""
    try:
        asked = json.loads(body).get("max_tokens", N_EVENTS)
    except (ValueError, AttributeError):
        return N_EVENTS
    return max(1, asked) if isinstance(asked, int) else N_EVENTS


def serve(port: int, itl: float, burst: int = 1) -> None:
    """Serve until killed; a new stream's events come one per step of *itl* seconds."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stepper = _Stepper(itl, burst)
        server = await loop.create_server(
            lambda: _SSEProtocol(stepper), "127.0.0.1", port, backlog=4096
        )
        print("ready", flush=True)
        async with server:
            await stepper.run()

    asyncio.run(main())


# -- clients (own process each) ------------------------------------------------------------


def _count(chunk: bytes, buf: bytes) -> tuple[int, bytes]:
    buf += chunk
    parts = buf.split(b"\n\n")
    return len(parts) - 1, parts[-1]


async def _httpx_session(kind: str, url: str) -> tuple[Callable[[], Awaitable[int]], Any]:
    import httpx

    timeout = httpx.Timeout(300.0)
    if kind == "anyio":
        from anyio_llmreq._transport import AnyioTransport

        client = httpx.AsyncClient(transport=AnyioTransport(), timeout=timeout)
    else:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        client = httpx.AsyncClient(limits=limits, timeout=timeout)
    headers = {"Content-Type": "application/json"}

    async def one() -> int:
        n = 0
        buf = b""
        async with client.stream("POST", url, content=PAYLOAD, headers=headers) as response:
            async for chunk in response.aiter_raw():
                k, buf = _count(chunk, buf)
                n += k
        return n

    return one, client.aclose


async def _aiohttp_session(url: str) -> tuple[Callable[[], Awaitable[int]], Any]:
    import aiohttp

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=300, sock_read=300),
    )
    headers = {"Content-Type": "application/json"}

    async def one() -> int:
        n = 0
        buf = b""
        async with session.post(url, data=PAYLOAD, headers=headers) as response:
            async for chunk in response.content.iter_any():
                k, buf = _count(chunk, buf)
                n += k
        return n

    return one, session.close


async def _client_main(kind: str, port: int, levels: list[int], scale: float) -> None:
    url = f"http://127.0.0.1:{port}/v1/completions"
    if kind == "aiohttp":
        one, close = await _aiohttp_session(url)
    else:
        one, close = await _httpx_session(kind, url)
    try:
        for concurrency in levels:
            requests = max(concurrency, int(max(2 * concurrency, 400) * scale))
            await drive(one, concurrency, concurrency)  # warm-up: open the connections
            gc.collect()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            events = await drive(one, concurrency, requests)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            assert events == requests * EVENTS_PER_REQUEST, (events, requests)
            result = {"concurrency": concurrency, "events": events, "cpu": cpu, "wall": wall}
            print(json.dumps(result), flush=True)
    finally:
        await close()


def run_client(kind: str, loop: str, port: int, levels: list[int], scale: float) -> None:
    import anyio

    main = _client_main(kind, port, levels, scale)
    if loop == "trio":
        anyio.run(lambda: main, backend="trio")
    else:
        anyio.run(lambda: main, backend="asyncio", backend_options={"use_uvloop": loop == "uvloop"})


# -- driver ---------------------------------------------------------------------------------


def _pin(cores: set[int]) -> None:
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", default="1,64,256,1024", help="concurrency levels")
    parser.add_argument("--loops", default=",".join(LOOPS))
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies request counts")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--itl", type=float, default=0.0, help="server step interval in seconds (0: flat out)"
    )
    parser.add_argument("--burst", type=int, default=1, help="server events per write")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--loop", help=argparse.SUPPRESS)
    parser.add_argument("--cores", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    if args.cores:
        _pin({int(c) for c in args.cores.split(",")})
    if args.serve:
        serve(args.port, args.itl, args.burst)
        return
    if args.client:
        run_client(args.client, args.loop, args.port, levels, args.scale)
        return

    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_cores, client_cores = ("", "")
    if len(cores) >= 2:
        server_cores, client_cores = str(cores[0]), str(cores[1])
    port = args.port
    if not port:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
    me = [sys.executable, os.path.abspath(__file__)]
    server = subprocess.Popen(
        [
            *me,
            "--serve",
            f"--port={port}",
            f"--itl={args.itl}",
            f"--burst={args.burst}",
            f"--cores={server_cores}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    results: dict[tuple[str, str, int], dict[str, float]] = {}
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        for loop in args.loops.split(","):
            for kind in args.clients.split(","):
                if kind == "aiohttp" and loop == "trio":
                    continue  # aiohttp is asyncio-only
                out = subprocess.run(
                    [
                        *me,
                        f"--client={kind}",
                        f"--loop={loop}",
                        f"--port={port}",
                        f"--levels={args.levels}",
                        f"--scale={args.scale}",
                        f"--cores={client_cores}",
                    ],
                    capture_output=True,
                    text=True,
                )
                if out.returncode:
                    sys.exit(f"{kind} on {loop} failed:\n{out.stderr}")
                for line in out.stdout.splitlines():
                    row = json.loads(line)
                    results[loop, kind, row["concurrency"]] = row
                    us = row["cpu"] / row["events"] * 1e6
                    progress = f"{loop:8} {kind:8} c={row['concurrency']:<5} {us:6.2f} us/chunk"
                    print(progress, file=sys.stderr)
    finally:
        server.terminate()
        server.wait()
    _print_table(results)


def _print_table(results: dict[tuple[str, str, int], dict[str, float]]) -> None:
    print(f"cores: server/client pinned apart = {len(os.sched_getaffinity(0)) >= 2}")
    print("| loop | client | concurrency | chunks/s | CPU us/chunk | CPU vs aiohttp |")
    print("|---|---|---:|---:|---:|---:|")
    for (loop, kind, concurrency), row in results.items():
        us = row["cpu"] / row["events"] * 1e6
        # trio has no aiohttp: compare with aiohttp on plain asyncio.
        ref = results.get((loop, "aiohttp", concurrency))
        ref = ref or results.get(("asyncio", "aiohttp", concurrency))
        ratio = f"{us / (ref['cpu'] / ref['events'] * 1e6):.2f}" if ref else "-"
        if ref and loop == "trio":
            ratio += " (vs asyncio)"
        rate = row["events"] / row["wall"]
        print(f"| {loop} | {kind} | {concurrency} | {rate:,.0f} | {us:.2f} | {ratio} |")


if __name__ == "__main__":
    main()
