"""Trace replay fidelity: how late the bench sends a trace's requests at a few thousand
requests per second.

A Mooncake-format trace is generated here (Poisson arrivals at each ``--rates`` value for
``--duration`` seconds, prompts of 32 to 128 words whose first blocks are shared through
``hash_ids``, two output tokens) and replayed by the bench (``--dataset-name trace``)
against the mock server in another process, which records when each request arrived on
the system-wide monotonic clock (``perf_counter``). For each rate it prints, in ms, and
with the client's CPU, its self-check verdict and the machine's load average:

- *send lag*: when the client released each request against its trace time (the bench's
  own figure, ``trace_replay`` in the result);
- *arrival lag*: when the server had read the request against its trace time (the run's
  start on the shared clock is taken from the requests' own send stamps: the smallest
  ``start_time - dispatched``).

    python benchmarks/bench_replay.py [--rates 1000,2000,4000] [--duration 3] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import urllib.request
from typing import Any

import numpy as np

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from _common import mock_server_process

from anyio_llmreq.bench import BenchConfig, run_benchmark

_BLOCK = 16


def write_trace(path: str, rate: float, duration: float, seed: int) -> int:
    """A Mooncake trace of Poisson arrivals at *rate* for *duration* seconds: each prompt
    starts with one of 8 shared 16-token blocks. Returns the number of requests."""
    rng = np.random.default_rng(seed)
    n = max(int(rate * duration), 1)
    times_ms = np.cumsum(rng.exponential(1000.0 / rate, size=n))
    times_ms -= times_ms[0]
    with open(path, "w") as f:
        for i, t in enumerate(times_ms):
            length = int(rng.integers(32, 129))
            blocks = -(-length // _BLOCK)
            hash_ids = [int(rng.integers(0, 8))] + [1000 + i * 16 + b for b in range(blocks - 1)]
            row = {"timestamp": round(float(t), 3), "input_length": length, "output_length": 2}
            f.write(json.dumps({**row, "hash_ids": hash_ids}) + "\n")
    return n


def arrivals(base_url: str) -> dict[str, float]:
    """Request id -> when the mock server had read the request (``perf_counter``)."""
    with urllib.request.urlopen(f"{base_url}/mock/requests", timeout=60) as response:
        recorded = json.loads(response.read())
    found = {}
    for request in recorded:
        ids = [v for k, v in request["headers"] if k.lower() == "x-request-id"]
        if ids:
            found[ids[-1]] = float(request["received_at"])
    return found


def reset(base_url: str) -> None:
    req = urllib.request.Request(f"{base_url}/mock/reset", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=10):
        pass


def summary(values: list[float]) -> str:
    if not values:
        return "n/a"
    arr = np.asarray(values) * 1000.0
    p50, p99 = np.percentile(arr, [50, 99])
    return f"{p50:6.2f} {p99:7.2f} {arr.max():8.2f}"


def replay(base_url: str, path: str, args: argparse.Namespace) -> tuple[Any, dict[str, float]]:
    config = BenchConfig(
        base_url=base_url,
        model="mock",
        tokenizer_mode="words",
        dataset_name="trace",
        dataset_path=path,
        block_size=_BLOCK,
        loop=args.loop,
        workers=args.workers,
        temperature=0.0,
        disable_tqdm=True,
        quiet=True,
    )
    result = run_benchmark(config)
    return result, arrivals(base_url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="1000,2000,4000")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of trace per rate")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--loop", default="uvloop", choices=["asyncio", "uvloop", "trio"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    print(f"cores: {cores}, loop: {args.loop}, workers: {args.workers}, {args.duration:g} s each")
    print(
        f"{'rate':>6} {'reqs':>6} {'ok':>6} | {'send lag ms p50/p99/max':>23} {'late':>5} | "
        f"{'arrival lag ms p50/p99/max':>26} {'late':>5} | client, machine load"
    )
    server_args = ("--ttft", "0", "--itl", "0", "--record")
    with mock_server_process(*server_args, core=0 if cores > 1 else None) as url:
        with tempfile.TemporaryDirectory() as tmp:
            for rate in [float(r) for r in args.rates.split(",")]:
                path = os.path.join(tmp, f"trace-{rate:g}.jsonl")
                n = write_trace(path, rate, args.duration, args.seed)
                reset(url)
                result, received = replay(url, path, args)
                records = result.records
                starts: dict[int, float] = {}
                for r in records:
                    at = r.output.start_time - r.dispatched
                    starts[r.worker] = min(starts.get(r.worker, at), at)
                send = [r.send_lag for r in records]
                arrive = [
                    received[r.request_id] - starts[r.worker] - r.scheduled
                    for r in records
                    if r.request_id in received
                ]
                late = sum(x > 0.010 for x in send)
                late_arrival = sum(x > 0.010 for x in arrive)
                print(
                    f"{rate:>6g} {n:>6} {result.metrics.completed:>6} | {summary(send):>23} "
                    f"{late:>5} | {summary(arrive):>26} {late_arrival:>5} | "
                    f"{result.self_check.cpu_fraction:.2f} cores, {result.self_check.verdict}, "
                    f"load {os.getloadavg()[0]:.1f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
