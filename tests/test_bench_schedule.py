"""The arrival schedule against vLLM's ``get_request`` formulas (recomputed here)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pytest

from anyio_llmreq.bench import get_request_schedule
from anyio_llmreq.bench._schedule import current_request_rate, rps_change_events


def _reference(n, rate, burstiness, strategy=None, start=None, end=None, seed=0):
    """vLLM #21108's get_request, minus the sleeping, with the global numpy state."""
    np.random.seed(seed)
    rates, delays = [], []
    for i in range(n):
        if strategy and start is not None and end is not None:
            progress = i / max(n - 1, 1)
            if strategy == "linear":
                r = start + (end - start) * progress
            else:
                r = start * (end / start) ** progress
        else:
            r = rate
        rates.append(r)
        if r == float("inf"):
            delays.append(0)
        elif burstiness == float("inf"):
            delays.append(1.0 / r)
        else:
            delays.append(np.random.gamma(shape=burstiness, scale=1.0 / (r * burstiness)))
    for i in range(1, len(delays)):
        delays[i] += delays[i - 1]
    if strategy is None and delays[-1] != 0:
        factor = (n / rate) / delays[-1]
        delays = [d * factor for d in delays]
    return delays, rates


def test_infinite_rate_sends_everything_at_once():
    schedule = get_request_schedule(5)
    assert schedule.delays == (0.0,) * 5
    assert schedule.rates == (math.inf,) * 5


@pytest.mark.parametrize("burstiness", [1.0, 0.5, 3.0])
@pytest.mark.parametrize("seed", [0, 42])
def test_gamma_gaps_match_reference_and_are_normalised(burstiness, seed):
    delays, rates = _reference(50, 8.0, burstiness, seed=seed)
    schedule = get_request_schedule(50, 8.0, burstiness, seed=seed)
    assert schedule.delays == pytest.approx(delays, rel=1e-12)
    assert schedule.rates == tuple(rates)
    # The last request leaves at exactly N / rate; the first is delayed too.
    assert schedule.delays[-1] == pytest.approx(50 / 8.0)
    assert schedule.delays[0] > 0


def test_poisson_gaps_are_exponential_with_the_right_mean():
    schedule = get_request_schedule(4000, 20.0, 1.0, seed=1)
    gaps = np.diff((0.0, *schedule.delays))
    assert gaps.mean() == pytest.approx(1 / 20.0, rel=1e-9)
    # Exponential: the coefficient of variation is 1.
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.06)


def test_infinite_burstiness_is_a_constant_rate():
    schedule = get_request_schedule(4, 2.0, math.inf)
    assert schedule.delays == pytest.approx((0.5, 1.0, 1.5, 2.0))


@pytest.mark.parametrize("strategy", ["linear", "exponential"])
def test_ramp_up_matches_reference_without_normalisation(strategy):
    delays, rates = _reference(30, math.inf, 1.0, strategy, 2, 20, seed=7)
    schedule = get_request_schedule(30, math.inf, 1.0, strategy, 2, 20, seed=7)
    assert schedule.rates == pytest.approx(rates)
    assert schedule.rates[0] == 2 and schedule.rates[-1] == pytest.approx(20)
    assert schedule.delays == pytest.approx(delays, rel=1e-12)


def test_current_request_rate_formulas():
    assert current_request_rate("linear", 1, 11, 5, 11, math.inf) == pytest.approx(6.0)
    assert current_request_rate("exponential", 1, 16, 2, 5, math.inf) == pytest.approx(4.0)
    assert current_request_rate(None, None, None, 3, 10, 7.0) == 7.0
    assert current_request_rate("linear", 3, 9, 0, 1, math.inf) == 3  # one request


def test_a_numpy_generator_can_drive_the_schedule():
    a = get_request_schedule(10, 5.0, seed=np.random.default_rng(3))
    b = get_request_schedule(10, 5.0, seed=np.random.default_rng(3))
    assert a == b
    assert a.delays[-1] == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("n", "rate", "burstiness"), [(0, 1.0, 1.0), (3, 1.0, 0.0), (3, 0.0, 1.0), (3, -1.0, 1.0)]
)
def test_invalid_schedules_raise(n, rate, burstiness):
    with pytest.raises(ValueError):
        get_request_schedule(n, rate, burstiness)


def test_rps_change_events_list_every_integer_crossed():
    t0 = datetime(2025, 1, 1)
    times = [t0 + timedelta(seconds=i) for i in range(4)]
    events = rps_change_events([1.0, 1.5, 3.2, 4.0], 1, times)
    assert [e["rps"] for e in events] == [1, 2, 3, 4]
    assert events[0]["timestamp"] == times[0].isoformat()
    assert events[1]["timestamp"] == events[2]["timestamp"] == times[2].isoformat()
    assert events[3]["timestamp"] == times[3].isoformat()
