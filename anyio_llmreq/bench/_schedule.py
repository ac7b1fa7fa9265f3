"""The arrival process: when each request is sent (vLLM's ``get_request``, precomputed).

Pure: it draws random numbers but reads no clock. The runner sleeps until
``start + delays[i]``; worker processes receive the same list.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import attrs

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "RampUpStrategy",
    "RequestSchedule",
    "current_request_rate",
    "get_request_schedule",
    "nice_step",
    "rps_change_events",
]

RampUpStrategy = Literal["linear", "exponential"]


def nice_step(x: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten that is at least *x* (an interval
    for a timeline or a chart's buckets)."""
    exp = math.floor(math.log10(x)) if x > 0 else -3
    for m in (1, 2, 5, 10):
        value = m * 10.0**exp
        if value >= x * (1 - 1e-9):
            return float(f"{value:.12g}")
    return 10.0 ** (exp + 1)


@attrs.frozen
class RequestSchedule:
    """Send offsets (seconds after the start) and the rate in force for each request."""

    delays: tuple[float, ...]
    rates: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.delays)


def current_request_rate(
    ramp_up_strategy: RampUpStrategy | None,
    ramp_up_start_rps: float | None,
    ramp_up_end_rps: float | None,
    request_index: int,
    total_requests: int,
    request_rate: float,
) -> float:
    """The rate for request *request_index*: constant, or interpolated when ramping up."""
    if ramp_up_strategy and ramp_up_start_rps is not None and ramp_up_end_rps is not None:
        progress = request_index / max(total_requests - 1, 1)
        if ramp_up_strategy == "linear":
            return ramp_up_start_rps + (ramp_up_end_rps - ramp_up_start_rps) * progress
        if ramp_up_strategy == "exponential":
            ratio = ramp_up_end_rps / ramp_up_start_rps
            return float(ramp_up_start_rps * (ratio**progress))
        raise ValueError(f"unknown ramp-up strategy: {ramp_up_strategy}")
    return request_rate


def _make_rng(seed: int | np.random.RandomState | np.random.Generator | None) -> Any:
    import numpy as np

    if isinstance(seed, (np.random.RandomState, np.random.Generator)):
        return seed
    # A RandomState seeded like ``np.random.seed(seed)`` draws the same gaps as the
    # reference's ``np.random.gamma`` when nothing else consumed the global state.
    return np.random.RandomState(seed)


def get_request_schedule(
    num_requests: int,
    request_rate: float = math.inf,
    burstiness: float = 1.0,
    ramp_up_strategy: RampUpStrategy | None = None,
    ramp_up_start_rps: float | None = None,
    ramp_up_end_rps: float | None = None,
    seed: int | np.random.RandomState | np.random.Generator | None = 0,
) -> RequestSchedule:
    """Compute vLLM's arrival schedule for *num_requests* requests.

    Gaps are gamma distributed with shape *burstiness* and mean ``1/rate`` (burstiness 1
    is a Poisson process, ``inf`` a constant rate), accumulated, and, without ramp-up,
    rescaled so the last request is sent at exactly ``num_requests / request_rate``.
    *seed* is an int (a ``RandomState`` is made from it) or a numpy generator.

    Raises:
        ValueError: no requests, a non-positive burstiness or rate.
    """
    if burstiness <= 0:
        raise ValueError(f"burstiness must be positive, got {burstiness}")
    if num_requests <= 0:
        raise ValueError("the schedule needs at least one request")
    rng = None
    rates: list[float] = []
    delays: list[float] = []
    for i in range(num_requests):
        rate = current_request_rate(
            ramp_up_strategy, ramp_up_start_rps, ramp_up_end_rps, i, num_requests, request_rate
        )
        if not rate > 0.0:
            raise ValueError(f"request rate must be positive, got {rate} for request {i}")
        rates.append(rate)
        if rate == math.inf:
            delays.append(0.0)
        elif burstiness == math.inf:
            delays.append(1.0 / rate)
        else:
            if rng is None:
                rng = _make_rng(seed)
            theta = 1.0 / (rate * burstiness)
            delays.append(float(rng.gamma(shape=burstiness, scale=theta)))
    for i in range(1, len(delays)):
        delays[i] += delays[i - 1]
    if ramp_up_strategy is None and delays[-1] != 0:
        factor = (num_requests / request_rate) / delays[-1]
        delays = [d * factor for d in delays]
    return RequestSchedule(tuple(delays), tuple(rates))


def rps_change_events(
    rates: tuple[float, ...] | list[float],
    ramp_up_start_rps: float,
    timestamps: list[datetime] | None = None,
) -> list[dict[str, Any]]:
    """vLLM's ``rps_change_events``: the start rate, then every integer rate crossed.

    ``timestamps[i]`` is when request *i* was released (the reference stamps the event
    when the request that crosses the integer is yielded); now when missing.
    """
    now = datetime.now()
    last = int(ramp_up_start_rps)
    first_ts = (timestamps[0] if timestamps else now).isoformat()
    events: list[dict[str, Any]] = [{"rps": last, "timestamp": first_ts}]
    for i, rate in enumerate(rates):
        current = int(rate)
        if current > last:
            ts = (timestamps[i] if timestamps and i < len(timestamps) else now).isoformat()
            events.extend({"rps": v, "timestamp": ts} for v in range(last + 1, current + 1))
            last = current
    return events
