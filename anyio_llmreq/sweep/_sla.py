"""Service-level objectives and the search for the highest load that meets them.

An SLO is ``METRIC:STAT:LIMIT_MS`` (``ttft:p99:500``: the 99th percentile of TTFT at
most 500 ms) with METRIC one of ttft, tpot, itl, e2el and STAT mean, median, p50 or any
pNN; or ``goodput:FRACTION`` (at least that fraction of the requests sent met the
bench's ``--goodput`` SLOs). A point meets an SLO when the value averaged over its
repeats does (as ``vllm bench sweep serve_sla`` averages its runs), and fails every SLO
when a repeat completed no request.

``BracketSearch`` is the search, pure: it proposes values of the searched parameter
(doubling from the bottom of the range until a value fails, then bisecting between the
highest pass and the lowest failure) and is told whether each one passed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ..bench._config import UsageError
from ..bench._report import percentile_word

__all__ = [
    "SLO",
    "BracketSearch",
    "GoodputSLO",
    "LatencySLO",
    "Tolerance",
    "goodput_fraction",
    "parse_range",
    "parse_slo",
    "parse_tolerance",
    "slo_percentiles",
]

LATENCY_METRICS = ("ttft", "tpot", "itl", "e2el")
_HINT = "Use e.g. --slo ttft:p99:500 tpot:mean:50 or --slo goodput:0.9."


@attrs.frozen(kw_only=True)
class LatencySLO:
    """``metric``'s ``stat`` (``mean``, ``median``, ``p50``, ``p99``, ``p99.9``, ...) at
    most ``limit_ms`` milliseconds."""

    metric: str
    stat: str
    limit_ms: float

    @property
    def percentile(self) -> float | None:
        """The percentile the bench must compute for this SLO (None: mean, median)."""
        if self.stat in ("mean", "median", "p50"):
            return None
        return float(self.stat[1:])

    @property
    def key(self) -> str:
        """The bench result key holding the value, e.g. ``p99_ttft_ms``."""
        stat = "median" if self.stat == "p50" else self.stat
        return f"{stat}_{self.metric}_ms"

    def value(self, result: Mapping[str, Any]) -> float | None:
        value = result.get(self.key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value)

    def met(self, value: float) -> bool:
        return value <= self.limit_ms

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "stat": self.stat, "limit_ms": self.limit_ms}

    def __str__(self) -> str:
        return f"{self.metric}:{self.stat}:{self.limit_ms:g}"

    def describe(self, value: float) -> str:
        sign = "<=" if self.met(value) else ">"
        return f"{self.metric} {self.stat} {value:.1f} ms {sign} {self.limit_ms:g}"


@attrs.frozen(kw_only=True)
class GoodputSLO:
    """At least ``min_fraction`` of the requests sent met the ``--goodput`` SLOs."""

    min_fraction: float

    def value(self, result: Mapping[str, Any]) -> float | None:
        return goodput_fraction(result)

    def met(self, value: float) -> bool:
        return value >= self.min_fraction

    def to_json(self) -> dict[str, Any]:
        return {"metric": "goodput", "min_fraction": self.min_fraction}

    def __str__(self) -> str:
        return f"goodput:{self.min_fraction:g}"

    def describe(self, value: float) -> str:
        sign = ">=" if self.met(value) else "<"
        return f"goodput {value:.1%} {sign} {self.min_fraction:.1%}"


SLO = LatencySLO | GoodputSLO


def goodput_fraction(result: Mapping[str, Any]) -> float | None:
    """The share of the requests sent (finished or failed) that met the bench's
    ``--goodput`` SLOs, from the result's ``request_goodput`` (good requests over the
    duration); None without ``--goodput``."""
    goodput = result.get("request_goodput")
    duration = result.get("duration")
    sent = int(result.get("completed") or 0) + int(result.get("failed") or 0)
    if not isinstance(goodput, (int, float)) or not isinstance(duration, (int, float)):
        return None
    if sent == 0 or not math.isfinite(goodput * duration):
        return 0.0
    return round(goodput * duration) / sent


def parse_slo(text: str) -> SLO:
    """One ``--slo`` value.

    Raises:
        UsageError: an unknown metric or statistic, or a limit that is not a positive
            number.
    """
    parts = [p.strip() for p in text.strip().split(":")]
    if parts[0].lower() == "goodput":
        return _parse_goodput(text, parts)
    if len(parts) != 3:
        raise UsageError(
            f"invalid SLO {text!r}", where="--slo", why="expected METRIC:STAT:LIMIT_MS", hint=_HINT
        )
    metric, stat, limit = parts[0].lower(), parts[1].lower(), parts[2]
    if metric not in LATENCY_METRICS:
        why = f"unknown metric {metric!r}; choose from {', '.join(LATENCY_METRICS)}, goodput"
        raise UsageError(f"invalid SLO {text!r}", where="--slo", why=why, hint=_HINT)
    stat = _parse_stat(text, stat)
    try:
        limit_ms = float(limit.lower().removesuffix("ms"))
    except ValueError:
        limit_ms = math.nan
    if not (limit_ms > 0 and math.isfinite(limit_ms)):
        why = f"the limit must be a positive number of milliseconds, got {limit!r}"
        raise UsageError(f"invalid SLO {text!r}", where="--slo", why=why, hint=_HINT)
    return LatencySLO(metric=metric, stat=stat, limit_ms=limit_ms)


def _parse_stat(text: str, stat: str) -> str:
    if stat in ("mean", "median", "avg", "average"):
        return "mean" if stat != "median" else "median"
    if stat.startswith("p"):
        try:
            p = float(stat[1:])
        except ValueError:
            p = math.nan
        if 0 <= p <= 100:
            return f"p{percentile_word(p)}"
    why = f"unknown statistic {stat!r}; choose mean, median or pNN (p50, p90, p99, p99.9)"
    raise UsageError(f"invalid SLO {text!r}", where="--slo", why=why, hint=_HINT)


def _parse_goodput(text: str, parts: list[str]) -> GoodputSLO:
    try:
        fraction = float(parts[1].removesuffix("%")) if len(parts) == 2 else math.nan
    except ValueError:
        fraction = math.nan
    if len(parts) == 2 and parts[1].endswith("%"):
        fraction /= 100
    if not 0 < fraction <= 1:
        why = "expected goodput:FRACTION with a fraction above 0 and at most 1"
        raise UsageError(f"invalid SLO {text!r}", where="--slo", why=why, hint=_HINT)
    return GoodputSLO(min_fraction=fraction)


def slo_percentiles(slos: Sequence[SLO]) -> list[float]:
    """The percentiles the bench must compute to evaluate *slos*."""
    found = []
    for slo in slos:
        if isinstance(slo, LatencySLO) and slo.percentile is not None:
            found.append(slo.percentile)
    return found


def evaluate(slos: Sequence[SLO], results: Sequence[Mapping[str, Any]]) -> tuple[bool, list[str]]:
    """Whether a point's *results* (its repeats) meet every SLO, and one phrase per SLO
    (``"ttft p99 42.0 ms <= 50"``)."""
    if any(not r.get("completed") for r in results):
        return False, ["no request completed"]
    ok = True
    words = []
    for slo in slos:
        values = [v for v in (slo.value(r) for r in results) if v is not None]
        if not values:
            ok = False
            words.append(f"{slo}: not measured")
            continue
        mean = math.fsum(values) / len(values)
        ok = ok and slo.met(mean)
        words.append(slo.describe(mean))
    return ok, words


@attrs.frozen
class Tolerance:
    """When a bracket is narrow enough: within ``value`` (absolute), or within
    ``value`` times the passing value (``relative``)."""

    value: float
    relative: bool = False

    def within(self, passing: float, failing: float) -> bool:
        width = failing - passing
        return width <= (self.value * passing if self.relative else self.value)

    def __str__(self) -> str:
        return f"{self.value:.0%}" if self.relative else f"{self.value:g}"


def parse_tolerance(text: str) -> Tolerance:
    """``--sla-tolerance``: ``2`` (absolute) or ``5%`` (of the passing value).

    Raises:
        UsageError: not a positive number or percentage.
    """
    relative = text.strip().endswith("%")
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise UsageError(
            f"invalid tolerance {text!r}",
            where="--sla-tolerance",
            why="expected a positive number, or a percentage such as 5%",
        )
    return Tolerance(value / 100 if relative else value, relative)


def parse_range(text: str, *, integer: bool) -> tuple[float, float]:
    """``--sla-range LOW:HIGH``.

    Raises:
        UsageError: not two positive finite numbers (integers for a concurrency) with
            LOW at most HIGH.
    """
    low_text, colon, high_text = text.partition(":")
    kind = "integers" if integer else "numbers"
    try:
        if not colon:
            raise ValueError
        low, high = (float(int(t)) if integer else float(t) for t in (low_text, high_text))
    except ValueError:
        low = high = math.nan
    if not (0 < low <= high < math.inf):
        raise UsageError(
            f"invalid range {text!r}",
            where="--sla-range",
            why=f"expected LOW:HIGH, positive {kind} with LOW at most HIGH",
            hint="Use e.g. --sla-range 1:256.",
        )
    return low, high


def _round_rate(value: float) -> float:
    """Four significant digits: rates people can read and pass back to the bench."""
    return float(f"{value:.4g}")


@attrs.define
class BracketSearch:
    """The search for the highest value in [``low``, ``high``] that passes: ``low``,
    then doubling until a value fails (or ``high`` passes), then bisecting until the
    highest pass and the lowest failure are within ``tolerance``. Integer values for a
    concurrency, four significant digits for a rate. Assumes passing is monotone: every
    value below a pass passes."""

    low: float
    high: float
    tolerance: Tolerance
    integer: bool = True
    passing: float | None = None
    failing: float | None = None
    probes: list[tuple[float, bool]] = attrs.Factory(list)

    def next_value(self) -> float | None:
        """The next value to try; None when the search is over."""
        if self.passing is None:
            return self.low if self.failing is None else None
        if self.failing is None:
            if self.passing >= self.high:
                return None
            return min(self._snap(self.passing * 2), self.high)
        if self.tolerance.within(self.passing, self.failing):
            return None
        mid = self._snap((self.passing + self.failing) / 2)
        if not self.passing < mid < self.failing:
            return None
        return mid

    def record(self, value: float, ok: bool) -> None:
        """Say whether *value* passed."""
        self.probes.append((value, ok))
        if ok:
            self.passing = value if self.passing is None else max(self.passing, value)
        else:
            self.failing = value if self.failing is None else min(self.failing, value)

    @property
    def bracketing(self) -> bool:
        """Still doubling: no value has failed yet."""
        return self.failing is None

    def _snap(self, value: float) -> float:
        return float(math.floor(value)) if self.integer else _round_rate(value)
