"""The saturation profile (GuideLLM's ``sweep``) and the signs of an over-saturated
server.

The profile runs one request at a time (concurrency 1: the synchronous rate), then
every request at once (rate inf: the most the server completes per second), then N
rates spaced evenly between those two measured request rates, ends excluded.

Over-saturation is load the server can't keep up with: the achieved request rate stops
following the offered one while latency, or the number of requests waiting, grows for
as long as the run lasts. A run at a finite rate shows it as a throughput under 90% of
the offered rate (the last request's own latency excluded from the run's duration), or
as TTFT rising across the run. At rate inf the client keeps the queue (at most
``--max-concurrency`` in flight), so a concurrency search shows it as a throughput that
stays flat while the concurrency grows by half or more.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "achieved_shortfall",
    "over_saturation",
    "saturation_rates",
    "throughput_plateau",
    "ttft_trend",
]

#: Achieved / offered request rate under which a run is over-saturated.
ACHIEVED_SHARE = 0.9
#: Median TTFT of the last third of the requests over the first third's...
TTFT_GROWTH = 2.0
#: ... and by at least this many seconds (a few ms of jitter is not a queue).
TTFT_RISE_S = 0.05
#: A concurrency this many times higher must raise throughput by more than...
PLATEAU_STEP = 1.5
#: ... this factor.
PLATEAU_GAIN = 1.1


def saturation_rates(sync_rate: float, max_rate: float, count: int) -> list[float]:
    """*count* rates evenly between *sync_rate* and *max_rate* (both excluded), to four
    significant digits."""
    step = (max_rate - sync_rate) / (count + 1)
    return [float(f"{sync_rate + step * (i + 1):.4g}") for i in range(count)]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def achieved_shortfall(result: Mapping[str, Any], offered_rate: float) -> str | None:
    """Why the run at *offered_rate* req/s fell behind, or None: completions per second
    of the run's duration less its median end-to-end latency (the tail a run has even
    when the server keeps up) under 90% of the offered rate."""
    duration = _number(result.get("duration"))
    completed = _number(result.get("completed")) or 0.0
    if duration is None or duration <= 0:
        return None
    tail = (_number(result.get("median_e2el_ms")) or 0.0) / 1000
    window = duration - tail
    if window <= duration / 2:
        return None  # one latency is most of the run: too short to tell
    achieved = completed / window
    if achieved >= ACHIEVED_SHARE * offered_rate:
        return None
    return (
        f"achieved {achieved:.3g} req/s, under {ACHIEVED_SHARE:.0%} of the offered "
        f"{offered_rate:.4g} req/s"
    )


def ttft_trend(result: Mapping[str, Any]) -> str | None:
    """Why TTFT counts as rising across the run, or None: the successful requests in
    send order, the median TTFT of the last third at least twice the first third's and
    50 ms above it. Needs the per-request lists (``save_detailed``) and nine requests."""
    starts = result.get("start_times")
    ttfts = result.get("ttfts")
    errors = result.get("errors")
    if not isinstance(starts, list) or not isinstance(ttfts, list):
        return None
    if not isinstance(errors, list) or len(errors) != len(starts):
        errors = [""] * len(starts)
    pairs = sorted(
        (s, t)
        for s, t, e in zip(starts, ttfts, errors, strict=False)
        if not e and isinstance(s, (int, float)) and isinstance(t, (int, float))
    )
    third = len(pairs) // 3
    if third < 3:
        return None
    first = statistics.median(t for _, t in pairs[:third])
    last = statistics.median(t for _, t in pairs[-third:])
    if last < TTFT_GROWTH * first or last - first < TTFT_RISE_S:
        return None
    return (
        f"TTFT rising across the run: median {first * 1000:.4g} ms in the first third of "
        f"the requests, {last * 1000:.4g} ms in the last"
    )


def over_saturation(results: Sequence[Mapping[str, Any]], offered_rate: float) -> str | None:
    """Why a point (its repeats) run at a finite *offered_rate* is over-saturated, or
    None: most repeats fell behind the offered rate, or saw TTFT rise across the run.
    At rate inf the client holds the queue (``--max-concurrency``): see
    ``throughput_plateau``."""
    if not offered_rate < float("inf"):
        return None
    reasons = []
    for result in results:
        reason = ttft_trend(result) or achieved_shortfall(result, offered_rate)
        if reason is not None:
            reasons.append(reason)
    if not results or len(reasons) * 2 <= len(results):
        return None
    return reasons[0]


def _throughput(results: Sequence[Mapping[str, Any]]) -> float:
    values = [v for v in (_number(r.get("request_throughput")) for r in results) if v]
    return statistics.fmean(values) if values else 0.0


def throughput_plateau(
    param: str,
    lower: tuple[float, Sequence[Mapping[str, Any]]],
    upper: tuple[float, Sequence[Mapping[str, Any]]],
) -> str | None:
    """Why raising *param* from *lower* to *upper* (values with their results) shows
    over-saturation, or None: the value grew by half or more, the request throughput by
    under 10% (Little's law: the latency grew instead)."""
    low_value, low_results = lower
    high_value, high_results = upper
    if high_value < PLATEAU_STEP * low_value:
        return None
    before = _throughput(low_results)
    after = _throughput(high_results)
    if before <= 0 or after >= PLATEAU_GAIN * before:
        return None
    return (
        f"throughput flat: {before:.3g} req/s at {param}={low_value:g}, "
        f"{after:.3g} req/s at {param}={high_value:g}"
    )
