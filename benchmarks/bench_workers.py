"""``--workers`` scaling: chunks per second of the whole bench with 1, 2 and 4 workers.

The bench (``run_benchmark``) runs against a minimal SSE server in another process
(256 vLLM-shaped token events per request, zero delay), with every request released at
once and a concurrency cap, so the client is the bottleneck wherever the server has cores
to spare. Each row also checks that the merged result holds every request exactly once.
On a machine with fewer cores than workers + 1 the workers share cores with the server
and cannot scale; the table then shows that they split the load.

    python benchmarks/bench_workers.py [--workers 1,2,4] [--num-prompts 2000]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from _common import raw_server_process

from anyio_llmreq.bench import BenchConfig, run_benchmark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--num-prompts", type=int, default=2000)
    parser.add_argument("--max-concurrency", type=int, default=512)
    parser.add_argument("--loop", default="uvloop", choices=["asyncio", "uvloop", "trio"])
    args = parser.parse_args(argv)
    rows = []
    # The server gets its own core when there are several; the workers take the rest.
    with raw_server_process(core=0 if (os.cpu_count() or 1) > 1 else None) as server:
        for workers in [int(w) for w in args.workers.split(",")]:
            config = BenchConfig(
                backend="openai",
                base_url=server.url,
                model="mock",
                tokenizer_mode="words",
                num_prompts=args.num_prompts,
                random_input_len=8,
                random_output_len=256,
                request_rate=float("inf"),
                max_concurrency=args.max_concurrency,
                workers=workers,
                loop=args.loop,
                disable_tqdm=True,
                quiet=True,
            )
            result = run_benchmark(config)
            indices = sorted(record.index for record in result.records)
            exact = indices == list(range(args.num_prompts))
            per_worker = [0] * workers
            for record in result.records:
                per_worker[record.worker] += 1
            chunks = sum(len(r.output.itl) + 1 for r in result.records if r.output.success)
            rows.append((workers, result.duration, chunks / result.duration, exact, per_worker))
    base = rows[0][2]
    print(f"cores: {os.cpu_count()}, loop: {args.loop}, prompts: {args.num_prompts}")
    print(f"{'workers':>7} {'duration s':>10} {'chunks/s':>10} {'speed-up':>8} "
          f"{'each request once':>17}  requests per worker")
    for workers, duration, rate, exact, per_worker in rows:
        print(f"{workers:>7} {duration:>10.2f} {rate:>10.0f} {rate / base:>8.2f} "
              f"{'yes' if exact else 'NO':>17}  {per_worker}")
    return 0 if all(row[3] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
