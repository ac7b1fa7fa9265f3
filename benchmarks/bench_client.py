"""Client CPU per streamed chunk: anyio_llmreq's engine vs a minimal aiohttp client.

The mock server runs in another process (zero delay, 256 tokens per request), pinned to
another core; the client process is pinned too. For each concurrency level every
client sends the same requests, and we report the client's CPU time per received token
event, chunks per second and the ratio to the aiohttp shared-session baseline measured
in the same run. The baseline does the same work per event as our engine: split SSE
events from raw reads, stamp each read, parse the JSON, accumulate the text.

    python benchmarks/bench_client.py [--levels 1,64,256,1024] [--tokens 256]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from _common import mock_server_process, pin_to, raw_server_process

from anyio_llmreq import Client, RequestFuncInput

Runner = Callable[[str, int, int, int], Awaitable[int]]


async def run_ours(base_url: str, concurrency: int, requests: int, tokens: int) -> int:
    url = f"{base_url}/v1/completions"
    received = 0
    limiter = anyio.CapacityLimiter(concurrency)

    async with Client() as client:

        async def one(i: int) -> None:
            nonlocal received
            async with limiter:
                out = await client.send(
                    "openai", RequestFuncInput("hello world", url, 2, tokens, "mock")
                )
            if not out.success:
                raise RuntimeError(out.error)
            received += len(out.itl) + 1

        async with anyio.create_task_group() as tg:
            for i in range(requests):
                tg.start_soon(one, i)
    return received


async def run_aiohttp(base_url: str, concurrency: int, requests: int, tokens: int) -> int:
    import asyncio

    import aiohttp

    url = f"{base_url}/v1/completions"
    received = 0
    sem = asyncio.Semaphore(concurrency)
    payload = {
        "model": "mock",
        "prompt": "hello world",
        "max_tokens": tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            nonlocal received
            async with sem:
                text: list[str] = []
                stamps: list[float] = []
                buffer = b""
                async with session.post(url, json=payload) as response:
                    async for chunk in response.content.iter_any():
                        now = time.perf_counter()
                        buffer += chunk
                        *events, buffer = buffer.split(b"\n\n")
                        for event in events:
                            data = event[6:]
                            if data == b"[DONE]" or not data:
                                continue
                            obj = json.loads(data)
                            choices = obj.get("choices")
                            if choices and choices[0].get("text"):
                                text.append(choices[0]["text"])
                                stamps.append(now)
                received += len(stamps)

        await asyncio.gather(*(one() for _ in range(requests)))
    return received


def measure(
    runner: Runner, loop: str, base_url: str, concurrency: int, requests: int, tokens: int
) -> tuple[float, float]:
    """Return (CPU microseconds per chunk, chunks per second) of one run."""
    backend = "trio" if loop == "trio" else "asyncio"
    options = {} if loop == "trio" else {"use_uvloop": loop == "uvloop"}
    cpu0, wall0 = time.process_time(), time.perf_counter()
    chunks = anyio.run(
        runner, base_url, concurrency, requests, tokens, backend=backend, backend_options=options
    )
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    assert chunks == requests * tokens, (chunks, requests * tokens)
    return cpu / chunks * 1e6, chunks / wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="1,64,256,1024")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--chunks", type=int, default=150_000, help="target chunks per level")
    parser.add_argument("--loops", default="asyncio,uvloop,trio")
    parser.add_argument(
        "--server",
        choices=["raw", "mock"],
        default="raw",
        help="raw: a minimal server (256 tokens, so the client's cost shows); "
        "mock: anyio-llmreq mock-server",
    )
    parser.add_argument(
        "--yield-every", type=int, default=1, help="raw server: events per write burst"
    )
    args = parser.parse_args(argv)
    pin_to(0)
    levels = [int(x) for x in args.levels.split(",")]
    loops = args.loops.split(",")
    rows: list[tuple[Any, ...]] = []
    if args.server == "raw":
        args.tokens = 256
        server = raw_server_process(args.yield_every, core=1)
    else:
        server = mock_server_process("--output-len", str(args.tokens), core=1)
    with server as base_url:
        for level in levels:
            requests = max(level, args.chunks // args.tokens // level * level, 4)
            # Warm up connections and caches once per level.
            measure(run_aiohttp, "asyncio", base_url, level, min(level, 64), args.tokens)
            base_cpu = {}
            for loop in loops:
                if loop != "trio":
                    cpu, rate = measure(run_aiohttp, loop, base_url, level, requests, args.tokens)
                    base_cpu[loop] = cpu
                    rows.append((level, loop, "aiohttp (shared session)", cpu, rate, 1.0))
                cpu, rate = measure(run_ours, loop, base_url, level, requests, args.tokens)
                ref = base_cpu.get(loop, base_cpu.get("asyncio"))
                ratio = cpu / ref if ref else float("nan")
                rows.append((level, loop, "anyio_llmreq Client", cpu, rate, ratio))
    header = ("conc", "loop", "client", "CPU us/chunk", "chunks/s", "ratio")
    print("{:>5} {:<8} {:<26} {:>12} {:>10} {:>6}".format(*header))
    for level, loop, name, cpu, rate, ratio in rows:
        print(f"{level:>5} {loop:<8} {name:<26} {cpu:>12.2f} {rate:>10.0f} {ratio:>6.2f}")
    print("ratio: CPU per chunk / aiohttp's on the same loop (trio: / asyncio aiohttp)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
