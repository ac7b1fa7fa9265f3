"""Means and 95% confidence intervals over a point's repeats (Student's t, no scipy).

A sweep point run K times with seeds ``seed .. seed+K-1`` gives K values of each
metric; the interval is ``mean +- t(0.975, K-1) * s / sqrt(K)`` with ``s`` the sample
standard deviation. One run has no spread to measure: its interval is the value itself.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

__all__ = ["MetricSummary", "mean_ci", "metric_keys", "summarize", "t_critical"]

#: Two-sided 95% quantiles of Student's t, t(0.975, df), for df = 1..30.
_T_975 = (
    12.706204736,
    4.302652730,
    3.182446305,
    2.776445105,
    2.570581836,
    2.446911851,
    2.364624252,
    2.306004135,
    2.262157163,
    2.228138852,
    2.200985160,
    2.178812830,
    2.160368656,
    2.144786688,
    2.131449546,
    2.119905299,
    2.109815578,
    2.100922040,
    2.093024054,
    2.085963447,
    2.079613845,
    2.073873068,
    2.068657610,
    2.063898562,
    2.059538553,
    2.055529439,
    2.051830516,
    2.048407142,
    2.045229642,
    2.042272456,
)
_Z_975 = 1.959963984540054

#: The aggregate keys of a bench result a sweep summarises, besides the latency keys.
THROUGHPUT_KEYS = (
    "request_throughput",
    "output_throughput",
    "total_token_throughput",
    "request_goodput",
)
_LATENCY_KEY = re.compile(r"^(mean|median|p\d+(?:\.\d+)?)_(ttft|tpot|itl|e2el)_ms$")


def t_critical(df: int) -> float:
    """t(0.975, *df*): the table for df <= 30, beyond it the Cornish-Fisher expansion
    (Abramowitz and Stegun 26.7.5), within 1e-6 of the exact value there.

    Raises:
        ValueError: *df* below 1.
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, not {df}")
    if df <= len(_T_975):
        return _T_975[df - 1]
    z = _Z_975
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return float(z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4)


@attrs.frozen(kw_only=True)
class MetricSummary:
    """One metric over a point's repeats: the mean, the 95% interval and the count."""

    mean: float
    ci_low: float
    ci_high: float
    n: int

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n}

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2


def mean_ci(values: Sequence[float]) -> MetricSummary:
    """The mean of *values* and its two-sided 95% Student t interval.

    Raises:
        ValueError: no values.
    """
    if not values:
        raise ValueError("no values")
    mean = statistics.fmean(values)
    if len(values) < 2:
        return MetricSummary(mean=mean, ci_low=mean, ci_high=mean, n=len(values))
    half = t_critical(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return MetricSummary(mean=mean, ci_low=mean - half, ci_high=mean + half, n=len(values))


def metric_keys(result: Mapping[str, Any]) -> list[str]:
    """The keys of a bench result a sweep summarises: the throughputs, and every
    ``mean_``/``median_``/``pNN_`` TTFT, TPOT, ITL and E2EL key present."""
    keys = [k for k in THROUGHPUT_KEYS if k in result]
    keys += [k for k in result if _LATENCY_KEY.match(k)]
    return keys


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def summarize(results: Iterable[Mapping[str, Any]]) -> dict[str, MetricSummary]:
    """Each summarised key over *results* (a point's repeats), in the first result's key
    order; a repeat without a finite number for a key (goodput without SLOs, no TPOT
    for one-token outputs) is left out of that key's count."""
    collected: dict[str, list[float]] = {}
    for result in results:
        for key in metric_keys(result):
            value = _number(result[key])
            if value is not None:
                collected.setdefault(key, []).append(value)
    return {key: mean_ci(values) for key, values in collected.items()}
