"""Soak: thousands of requests at high concurrency, a share of them faulty, nothing lost.

The mock server runs in another process and injects faults into ``--fault-rate`` of the
requests (HTTP 500, a reset, an in-band error event, or a stall shorter than the read
timeout, which only delays its request). On each event loop the client sends
``--requests`` requests through one ``Client`` and checks that:

* every request is accounted for exactly once: succeeded + failed == sent, and the
  server's request counter says the same;
* the failures are exactly the injected faults that fail a request;
* the process's file descriptors return to their starting count, and RSS, read after
  each of ``--rounds`` rounds, stops growing after the first (the start is taken after
  a warm-up, so imports and TLS contexts don't count; a leak grows every round);
* nothing hangs (each loop runs under a deadline).

    python benchmarks/bench_soak.py [--requests 20000] [--concurrency 500] [--loops ...]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections import Counter

import anyio
import attrs
import httpx

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from _common import mock_server_process, pin_to

from anyio_llmreq import Client, RequestFuncInput, Timeouts

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_LOOPS = {
    "asyncio": ("asyncio", {}),
    "uvloop": ("asyncio", {"use_uvloop": True}),
    "trio": ("trio", {}),
}


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE / 2**20


@attrs.define
class Result:
    loop: str
    sent: int = 0
    succeeded: int = 0
    failed: int = 0
    accounted_once: bool = False
    server_requests: int = 0
    faults: dict[str, int] = attrs.Factory(dict)
    fault_failures_match: bool = False
    errors: Counter[str] = attrs.Factory(Counter)
    elapsed: float = 0.0
    fds: tuple[int, int] = (0, 0)
    #: RSS at the start, then after each round; and the peak seen while running.
    rss: list[float] = attrs.Factory(list)
    rss_peak: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            self.accounted_once
            and self.succeeded + self.failed == self.sent == self.server_requests
            and self.fault_failures_match
            and self.fds[1] <= self.fds[0]
            and self.rss_steady
        )

    @property
    def rss_steady(self) -> bool:
        """No growth after the first round beyond allocator noise (a leak grows each round)."""
        return len(self.rss) < 3 or self.rss[-1] - self.rss[1] <= max(8.0, 0.1 * self.rss[1])


async def soak(args: argparse.Namespace, url: str, result: Result, count: int) -> None:
    timeouts = Timeouts(connect=10, read=args.read_timeout)
    transport = None
    if args.transport == "httpx":
        unlimited = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        transport = httpx.AsyncHTTPTransport(limits=unlimited)
    request = RequestFuncInput("hello", url, 1, args.output_len, "mock")
    limiter = anyio.CapacityLimiter(args.concurrency)
    seen = bytearray(count)

    async def sample_rss(scope: anyio.CancelScope) -> None:
        with scope:
            while True:
                result.rss_peak = max(result.rss_peak, rss_mib())
                await anyio.sleep(0.2)

    async with Client(timeouts=timeouts, transport=transport) as client:

        async def one(i: int) -> None:
            async with limiter:
                out = await client.send("openai-chat", request)
            seen[i] += 1
            if out.success:
                result.succeeded += 1
            else:
                result.failed += 1
                result.errors[out.error.split(":")[0]] += 1

        start = time.perf_counter()
        with anyio.fail_after(max(120.0, count / 50)):  # nothing may hang
            async with anyio.create_task_group() as outer:
                sampler = anyio.CancelScope()
                outer.start_soon(sample_rss, sampler)
                async with anyio.create_task_group() as tg:
                    for i in range(count):
                        tg.start_soon(one, i)
                        result.sent += 1
                sampler.cancel()
        result.elapsed += time.perf_counter() - start
    result.accounted_once = result.accounted_once and all(n == 1 for n in seen)


async def warm_up(url: str) -> None:
    async with Client() as client, anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(client.send, "openai-chat", RequestFuncInput("hi", url, 1, 4, "mock"))


def run_loop(args: argparse.Namespace, base_url: str, loop: str) -> Result:
    backend, options = _LOOPS[loop]
    url = base_url + "/v1/chat/completions"
    anyio.run(warm_up, url, backend=backend, backend_options=options)
    httpx.post(base_url + "/mock/reset")
    httpx.post(base_url + "/mock/behaviour", json={"seed": args.seed})  # same faults per loop
    gc.collect()
    result = Result(loop, accounted_once=True, fds=(fd_count(), 0), rss=[rss_mib()])
    per_round = args.requests // args.rounds
    for _ in range(args.rounds):
        anyio.run(soak, args, url, result, per_round, backend=backend, backend_options=options)
        gc.collect()
        result.rss.append(rss_mib())
    result.fds = (result.fds[0], fd_count())
    stats = httpx.get(base_url + "/mock/stats").json()
    result.server_requests = stats["requests"]
    result.faults = stats["faults"]
    failing = sum(n for kind, n in result.faults.items() if kind != "stall")
    result.fault_failures_match = failing == result.failed
    return result


def print_table(results: list[Result]) -> None:
    head = (
        f"{'loop':8} {'sent':>7} {'ok':>7} {'failed':>6} {'faults':>6} {'server':>7} "
        f"{'once':>5} {'match':>5} {'s':>6} {'req/s':>7} {'fds':>7}  RSS MiB: start, each round"
        " (peak)"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        fds = f"{r.fds[0]}->{r.fds[1]}"
        rss = " -> ".join(f"{v:.1f}" for v in r.rss) + f" ({r.rss_peak:.1f})"
        print(
            f"{r.loop:8} {r.sent:>7} {r.succeeded:>7} {r.failed:>6} {sum(r.faults.values()):>6} "
            f"{r.server_requests:>7} {'yes' if r.accounted_once else 'NO':>5} "
            f"{'yes' if r.fault_failures_match else 'NO':>5} {r.elapsed:>6.1f} "
            f"{r.sent / r.elapsed:>7.0f} {fds:>7}  {rss}"
        )
    for r in results:
        print(f"{r.loop}: faults injected {r.faults}; errors {dict(r.errors)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=4, help="RSS is read after each")
    parser.add_argument("--fault-rate", type=float, default=0.1)
    parser.add_argument("--fault-stall", type=float, default=0.5, help="seconds a stall lasts")
    # Not 1 s: a burst of hundreds of new connections can lose packets even on loopback
    # (seen on a 2-core box: ~200 retransmitted segments at 500, none at 50), and TCP
    # resends them after its initial 1 s timeout, so a few requests see their first
    # byte after ~1.1 s without any fault injected.
    parser.add_argument("--read-timeout", type=float, default=3.0)
    parser.add_argument("--output-len", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--loops", default="asyncio,uvloop,trio")
    parser.add_argument("--transport", choices=["default", "httpx"], default="default")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args(argv)
    if args.fault_stall >= args.read_timeout:
        parser.error("--fault-stall must be shorter than --read-timeout (stalls only delay)")
    pin_to(0)
    server_args = [
        "--fault-rate",
        str(args.fault_rate),
        "--seed",
        str(args.seed),
        "--output-len",
        str(args.output_len),
        "--behaviour",
        json.dumps({"fault_stall": args.fault_stall}),
    ]
    results = []
    with mock_server_process(*server_args, core=1) as base_url:
        for loop in args.loops.split(","):
            results.append(run_loop(args, base_url, loop))
    print_table(results)
    if args.json:
        print(json.dumps([attrs.asdict(r) | {"ok": r.ok} for r in results], default=list))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
