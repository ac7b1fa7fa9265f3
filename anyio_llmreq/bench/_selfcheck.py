"""Client self-check: is the client itself the bottleneck?

Three figures, measured during the run: how late each request left compared with its
scheduled time (send lag), how late a 10 ms sleep wakes up (event-loop lag), and the
CPU time of each client process over the wall time. Over the thresholds, the report
warns that latencies include client overhead.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import anyio
import attrs

__all__ = [
    "CPU_FRACTION_LIMIT",
    "LOOP_LAG_P99_LIMIT_MS",
    "SEND_LAG_P99_LIMIT_MS",
    "LoopLagMonitor",
    "SelfCheck",
    "evaluate_self_check",
]

SEND_LAG_P99_LIMIT_MS = 5.0
LOOP_LAG_P99_LIMIT_MS = 10.0
CPU_FRACTION_LIMIT = 0.7


@attrs.define
class LoopLagMonitor:
    """Sleeps *interval* seconds over and over and records how late each wake-up is."""

    interval: float = 0.01
    samples: list[float] = attrs.Factory(list)

    async def run(self) -> None:
        clock = time.perf_counter
        interval = self.interval
        append = self.samples.append
        while True:
            t = clock()
            await anyio.sleep(interval)
            append(max(clock() - t - interval, 0.0))


def _summary(values: Sequence[float]) -> tuple[float, float, float]:
    """(p50, p99, max) in milliseconds; zeros when empty."""
    import numpy as np

    if not values:
        return 0.0, 0.0, 0.0
    arr = np.asarray(values) * 1000.0
    return (
        float(np.percentile(arr, 50)),
        float(np.percentile(arr, 99)),
        float(np.max(arr)),
    )


@attrs.frozen(kw_only=True)
class SelfCheck:
    """The client's own figures for one run (milliseconds unless named otherwise)."""

    send_lag_p50_ms: float
    send_lag_p99_ms: float
    send_lag_max_ms: float
    loop_lag_p50_ms: float
    loop_lag_p99_ms: float
    loop_lag_max_ms: float
    queue_time_mean_ms: float
    queue_time_p99_ms: float
    cpu_s: float
    wall_s: float
    cpu_fraction: float
    processes: int
    includes_server: bool
    warnings: tuple[str, ...]

    @property
    def saturated(self) -> bool:
        return bool(self.warnings)

    def to_json(self) -> dict[str, Any]:
        """The ``client_*`` keys of the result JSON."""
        return {
            "client_send_lag_p50_ms": self.send_lag_p50_ms,
            "client_send_lag_p99_ms": self.send_lag_p99_ms,
            "client_send_lag_max_ms": self.send_lag_max_ms,
            "client_loop_lag_p50_ms": self.loop_lag_p50_ms,
            "client_loop_lag_p99_ms": self.loop_lag_p99_ms,
            "client_loop_lag_max_ms": self.loop_lag_max_ms,
            "client_queue_time_mean_ms": self.queue_time_mean_ms,
            "client_queue_time_p99_ms": self.queue_time_p99_ms,
            "client_cpu_s": self.cpu_s,
            "client_wall_s": self.wall_s,
            "client_cpu_fraction": self.cpu_fraction,
            "client_processes": self.processes,
            "client_cpu_includes_server": self.includes_server,
            "client_saturated": self.saturated,
            "client_warnings": list(self.warnings),
        }

    def report_lines(self) -> list[str]:
        lines = ["{s:{c}^{n}}".format(s="Client self-check", n=50, c="-")]
        lines.append(
            f"{'Send lag P50/P99/max (ms):':<40} "
            f"{self.send_lag_p50_ms:.2f} / {self.send_lag_p99_ms:.2f} / "
            f"{self.send_lag_max_ms:.2f}"
        )
        lines.append(
            f"{'Event loop lag P50/P99/max (ms):':<40} "
            f"{self.loop_lag_p50_ms:.2f} / {self.loop_lag_p99_ms:.2f} / "
            f"{self.loop_lag_max_ms:.2f}"
        )
        lines.append(
            f"{'Client queue time mean/P99 (ms):':<40} "
            f"{self.queue_time_mean_ms:.2f} / {self.queue_time_p99_ms:.2f}"
        )
        cpu_label = "Client CPU (cores, busiest process):"
        note = " (incl. embedded server)" if self.includes_server else ""
        lines.append(f"{cpu_label:<40} {self.cpu_fraction:.2f}{note}")
        if self.warnings:
            lines.append("WARNING: the client could not keep up; latencies above")
            lines.append("include client overhead:")
            lines.extend(f"  - {w}" for w in self.warnings)
        else:
            lines.append("Client kept up: latencies are the server's.")
        return lines


def evaluate_self_check(
    *,
    send_lags: Sequence[float],
    loop_lags: Sequence[float],
    queue_times: Sequence[float],
    cpu_s: Sequence[float],
    wall_s: float,
    includes_server: bool = False,
) -> SelfCheck:
    """Summarise the raw samples (seconds) and decide whether the client kept up.

    *cpu_s* has one entry per client process; the busiest one is judged.
    """
    import numpy as np

    send = _summary(send_lags)
    loop = _summary(loop_lags)
    queue_mean = float(np.mean(queue_times)) * 1000.0 if len(queue_times) else 0.0
    queue_p99 = float(np.percentile(queue_times, 99)) * 1000.0 if len(queue_times) else 0.0
    busiest = max(cpu_s) if cpu_s else 0.0
    fraction = busiest / wall_s if wall_s > 0 else 0.0
    warnings: list[str] = []
    if send[1] > SEND_LAG_P99_LIMIT_MS:
        warnings.append(
            f"requests left {send[1]:.1f} ms after their scheduled time at P99 "
            f"(limit {SEND_LAG_P99_LIMIT_MS:g} ms)"
        )
    if loop[1] > LOOP_LAG_P99_LIMIT_MS:
        warnings.append(
            f"the event loop was {loop[1]:.1f} ms late at P99 (limit {LOOP_LAG_P99_LIMIT_MS:g} ms)"
        )
    if fraction > CPU_FRACTION_LIMIT:
        who = "client (with the embedded server)" if includes_server else "client"
        warnings.append(
            f"the {who} used {fraction:.2f} of a CPU core (limit {CPU_FRACTION_LIMIT:g}); "
            "try --workers N"
        )
    return SelfCheck(
        send_lag_p50_ms=send[0],
        send_lag_p99_ms=send[1],
        send_lag_max_ms=send[2],
        loop_lag_p50_ms=loop[0],
        loop_lag_p99_ms=loop[1],
        loop_lag_max_ms=loop[2],
        queue_time_mean_ms=queue_mean,
        queue_time_p99_ms=queue_p99,
        cpu_s=float(sum(cpu_s)),
        wall_s=wall_s,
        cpu_fraction=fraction,
        processes=len(cpu_s),
        includes_server=includes_server,
        warnings=tuple(warnings),
    )
