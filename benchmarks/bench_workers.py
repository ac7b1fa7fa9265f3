"""``--workers`` scaling, local processes and Ray actors: chunks per second of the whole
bench, start-up time, CPU per chunk and timing error with 1, 2 and 4 workers.

The bench (``run_benchmark``) runs against a minimal SSE server in another process
(256 vLLM-shaped token events per request, zero delay). Two runs per row:

- **throughput**: every request released at once under a concurrency cap, so the client
  is the bottleneck wherever the server has cores to spare: chunks/s over the run, the
  clients' CPU per chunk (worker processes or Ray actors; the driver's whole-run CPU
  beside it), start-up (the call's wall time minus the measured run: process spawn or
  actor creation, imports, for Ray the clock round trips; planning is the same for all).
- **timing**: a paced Poisson run; the send lag (actual minus scheduled send time, on
  each sender's clock) at P50/P99, and for Ray the clock offsets' uncertainty, the error
  of the common start.

Each row also checks that the merged result holds every request exactly once. On a
machine with fewer cores than workers + 1 the workers share cores with the server and
cannot scale; the table then shows that accounting and timing hold. The Ray rows start
one local Ray instance first (its start is printed once; ``--ray-address`` uses a
running cluster instead).

    python benchmarks/bench_workers.py [--workers 1,2,4] [--executors local,ray]
        [--num-prompts 2000] [--paced-prompts 300 --paced-rate 100]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from _common import raw_server_process

from anyio_llmreq.bench import BenchConfig, run_benchmark


def _config(
    url: str, executor: str, workers: int, args: argparse.Namespace, **kw: Any
) -> BenchConfig:
    base: dict[str, Any] = {
        "backend": "openai", "base_url": url, "model": "mock", "tokenizer_mode": "words",
        "random_input_len": 8, "random_output_len": 256, "workers": workers,
        "executor": executor, "ray_address": args.ray_address if executor == "ray" else None,
        "loop": args.loop, "disable_tqdm": True, "quiet": True,
    }  # fmt: skip
    base.update(kw)
    return BenchConfig(**base)


def _timed(config: BenchConfig) -> tuple[Any, float, float]:
    """The run, its wall time and this process's CPU time over it."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    result = run_benchmark(config)
    return result, time.perf_counter() - wall0, time.process_time() - cpu0


def _exact(result: Any, n: int) -> bool:
    return sorted(r.index for r in result.records) == list(range(n))


def _row(url: str, executor: str, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    n = args.num_prompts
    config = _config(
        url, executor, workers, args,
        num_prompts=n, request_rate=float("inf"), max_concurrency=args.max_concurrency,
    )  # fmt: skip
    result, wall, driver_cpu = _timed(config)
    chunks = sum(len(r.output.itl) + 1 for r in result.records if r.output.success)
    per_worker = [0] * workers
    for record in result.records:
        per_worker[record.worker] += 1
    paced = _config(
        url, executor, workers, args,
        num_prompts=args.paced_prompts, request_rate=args.paced_rate, random_output_len=16,
    )  # fmt: skip
    timing, _, _ = _timed(paced)
    clocks = timing.result.get("clock_offsets") or []
    bound = max((c["uncertainty_ms"] or 0.0 for c in clocks), default=None)
    offset = max((abs(c["offset_ms"] or 0.0) for c in clocks), default=None)
    return {
        "executor": executor if executor == "ray" else "local" if workers == 1 else "procs",
        "workers": workers,
        "startup": wall - result.duration,
        "duration": result.duration,
        "rate": chunks / result.duration,
        "cpu_us": result.self_check.cpu_s / chunks * 1e6 if chunks else float("nan"),
        "driver_cpu": driver_cpu,
        "lag50": timing.result["client_send_lag_p50_ms"],
        "lag99": timing.result["client_send_lag_p99_ms"],
        "offset": offset,
        "bound": bound,
        "exact": _exact(result, n) and _exact(timing, args.paced_prompts),
        "per_worker": per_worker,
    }


def _start_ray(args: argparse.Namespace, most: int) -> float:
    """Connect to (or start) Ray once for every Ray row; the seconds it took."""
    import logging

    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    t0 = time.perf_counter()
    if args.ray_address:
        ray.init(address=args.ray_address, logging_level=logging.WARNING)
    else:
        # One CPU per actor: enough logical CPUs for the largest row.
        cpus = max(os.cpu_count() or 1, most)
        ray.init(address="local", num_cpus=cpus, include_dashboard=False,
                 logging_level=logging.WARNING)  # fmt: skip
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--executors", default="local,ray")
    parser.add_argument("--num-prompts", type=int, default=2000)
    parser.add_argument("--max-concurrency", type=int, default=512)
    parser.add_argument("--paced-prompts", type=int, default=300)
    parser.add_argument("--paced-rate", type=float, default=100.0)
    parser.add_argument("--loop", default="uvloop", choices=["asyncio", "uvloop", "trio"])
    parser.add_argument("--ray-address", default=None)
    args = parser.parse_args(argv)
    counts = [int(w) for w in args.workers.split(",")]
    executors = [e.strip() for e in args.executors.split(",") if e.strip()]
    ray_start = _start_ray(args, max(counts)) if "ray" in executors else None
    rows = []
    # The server gets its own core when there are several; the workers take the rest.
    with raw_server_process(core=0 if (os.cpu_count() or 1) > 1 else None) as server:
        for executor in executors:
            for workers in counts:
                rows.append(_row(server.url, executor, workers, args))
    base = rows[0]["rate"]
    print(
        f"cores: {os.cpu_count()}, loop: {args.loop}, prompts: {args.num_prompts} at once "
        f"(max concurrency {args.max_concurrency}); timing: {args.paced_prompts} at "
        f"{args.paced_rate:g} req/s"
    )
    if ray_start is not None:
        print(f"Ray {'connect' if args.ray_address else 'local start'}: {ray_start:.1f} s (once)")
    print(
        f"{'executor':>8} {'workers':>7} {'start s':>7} {'run s':>6} {'chunks/s':>9} "
        f"{'speed-up':>8} {'CPU us/chunk':>12} {'driver CPU s':>12} {'lag P50/P99 ms':>15} "
        f"{'clock ± ms':>10} {'each once':>9}  requests per worker"
    )
    for row in rows:
        clock = "-" if row["bound"] is None else f"{row['bound']:.2f}"
        lags = f"{row['lag50']:.2f}/{row['lag99']:.2f}"
        print(
            f"{row['executor']:>8} {row['workers']:>7} {row['startup']:>7.2f} "
            f"{row['duration']:>6.2f} {row['rate']:>9.0f} {row['rate'] / base:>8.2f} "
            f"{row['cpu_us']:>12.2f} {row['driver_cpu']:>12.2f} {lags:>15} {clock:>10} "
            f"{'yes' if row['exact'] else 'NO':>9}  {row['per_worker']}"
        )
    return 0 if all(row["exact"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
