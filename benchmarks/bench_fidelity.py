"""Timing fidelity: how far measured TTFT and ITL are from what the server actually did.

The mock server runs in another process (first token after 100 ms, then one every 10 ms)
and records, on the same system-wide monotonic clock (``perf_counter``), when it wrote
each event. For every request we compare the client's stamp of each token event with the
server's write time: the TTFT error is the client's first stamp minus the server's first
write, the ITL error is each measured gap minus the server's gap. Our client (on asyncio,
uvloop and trio) is compared with a minimal aiohttp shared-session client in the same run.
Each figure is the median over ``--repeat`` interleaved runs. Also reported: the
client's RSS per concurrent stream at the highest level.

    python benchmarks/bench_fidelity.py [--levels 1,64,256] [--tokens 64]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import urllib.request
from typing import Any

import anyio
import numpy as np

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from _common import mock_server_process, pin_to

from anyio_llmreq import Client, RequestFuncInput

Stamps = dict[str, list[float]]  # request id -> client stamps of token events


async def ours(base_url: str, concurrency: int, tokens: int, tag: str) -> Stamps:
    url = f"{base_url}/v1/completions"
    stamps: Stamps = {}
    async with Client() as client, anyio.create_task_group() as tg:

        async def one(i: int) -> None:
            rid = f"{tag}-{i}"
            request = RequestFuncInput("hi", url, 1, tokens, "m", request_id=rid)
            out = await client.send("openai", request)
            if not out.success:
                raise RuntimeError(out.error)
            first = out.start_time + out.ttft
            stamps[rid] = [first, *(first + t for t in np.cumsum(out.itl))]

        for i in range(concurrency):
            tg.start_soon(one, i)
    return stamps


async def aiohttp_client(base_url: str, concurrency: int, tokens: int, tag: str) -> Stamps:
    import asyncio

    import aiohttp

    url = f"{base_url}/v1/completions"
    stamps: Stamps = {}
    payload = {"model": "m", "prompt": "hi", "max_tokens": tokens, "stream": True}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one(i: int) -> None:
            rid = f"{tag}-{i}"
            seen: list[float] = []
            buffer = b""
            async with session.post(url, json=payload, headers={"x-request-id": rid}) as resp:
                async for chunk in resp.content.iter_any():
                    now = time.perf_counter()
                    buffer += chunk
                    *events, buffer = buffer.split(b"\n\n")
                    for event in events:
                        data = event[6:]
                        if data and data != b"[DONE]":
                            obj = json.loads(data)
                            if obj.get("choices") and obj["choices"][0].get("text"):
                                seen.append(now)
            stamps[rid] = seen

        await asyncio.gather(*(one(i) for i in range(concurrency)))
    return stamps


def server_writes(base_url: str) -> dict[str, list[float]]:
    with urllib.request.urlopen(f"{base_url}/mock/requests") as response:
        records = json.load(response)
    writes: dict[str, list[float]] = {}
    for record in records:
        rid = next((v for k, v in record["headers"] if k.lower() == "x-request-id"), None)
        if rid is not None:
            pairs = zip(record["sent_times"], record["event_tokens"], strict=True)
            writes[rid] = [sent for sent, tokens in pairs if tokens]
    return writes


def reset(base_url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{base_url}/mock/reset", method="POST"))


def errors(stamps: Stamps, writes: dict[str, list[float]]) -> tuple[float, float, float]:
    """(mean TTFT error, p99 ITL error, mean ITL error) in milliseconds."""
    ttft_err, itl_err = [], []
    for rid, seen in stamps.items():
        sent = writes[rid]
        assert len(seen) == len(sent), (rid, len(seen), len(sent))
        ttft_err.append(seen[0] - sent[0])
        itl_err.extend(np.diff(seen) - np.diff(sent))
    return (
        float(np.mean(ttft_err)) * 1e3,
        float(np.percentile(np.abs(itl_err), 99)) * 1e3,
        float(np.mean(itl_err)) * 1e3,
    )


def run(runner: Any, loop: str, base_url: str, concurrency: int, tokens: int) -> Stamps:
    backend = "trio" if loop == "trio" else "asyncio"
    options = {} if loop == "trio" else {"use_uvloop": loop == "uvloop"}
    return anyio.run(  # type: ignore[no-any-return]
        runner, base_url, concurrency, tokens, f"{loop}-{concurrency}",
        backend=backend, backend_options=options,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="1,64,256")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rss-streams", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell (median)")
    args = parser.parse_args(argv)
    pin_to(0)
    levels = [int(x) for x in args.levels.split(",")]
    rows = []
    behaviour = ["--ttft", "0.1", "--itl", "0.01", "--record", "--output-len", str(args.tokens)]
    clients = [
        ("aiohttp (shared session)", aiohttp_client, ["asyncio", "uvloop"]),
        ("anyio_llmreq Client", ours, ["asyncio", "uvloop", "trio"]),
    ]
    with mock_server_process(*behaviour, core=1) as base_url:
        for level in levels:
            # Interleaved repetitions; each statistic is the median over them, so one
            # scheduling hiccup of the machine does not decide a p99.
            runs: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
            for _ in range(args.repeat):
                for name, runner, loops in clients:
                    for loop in loops:
                        reset(base_url)
                        stamps = run(runner, loop, base_url, level, args.tokens)
                        got = errors(stamps, server_writes(base_url))
                        runs.setdefault((name, loop), []).append(got)
            for (name, loop), values in runs.items():
                medians = [float(np.median([v[i] for v in values])) for i in range(3)]
                rows.append((level, loop, name, *medians))
        reset(base_url)
        # RSS per stream: many slow streams open at once, RSS sampled at the peak.
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        slow = json.dumps({"ttft": 0.5, "itl": 0.05})
        urllib.request.urlopen(
            urllib.request.Request(f"{base_url}/mock/behaviour", data=slow.encode(), method="POST")
        )
        stamps = run(ours, "asyncio", base_url, args.rss_streams, 40)
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        ok = len(stamps)
    print(f"{'conc':>5} {'loop':<8} {'client':<26} {'TTFT err mean':>14} {'ITL err p99':>12} "
          f"{'ITL err mean':>13}")
    for level, loop, name, ttft, itl99, itl_mean in rows:
        print(f"{level:>5} {loop:<8} {name:<26} {ttft:>11.3f} ms {itl99:>9.3f} ms "
              f"{itl_mean:>10.3f} ms")
    per_stream = (rss1 - rss0) * 1024 / max(args.rss_streams, 1)
    print(f"\n{ok}/{args.rss_streams} concurrent streams completed; peak RSS grew "
          f"{(rss1 - rss0) / 1024:.1f} MiB: {per_stream / 1024:.1f} KiB per stream")
    return 0


if __name__ == "__main__":
    sys.exit(main())
