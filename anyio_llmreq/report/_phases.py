"""Where TTFT goes, and what reasoning costs: from a result's ``ttft_split_ms`` (the
client's HTTP phases, mean per run) and ``reasoning`` (time to the first reasoning vs
the first visible content). Drawn for every run that has them, detailed or not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ._charts import (
    _HEIGHT,
    _WIDE,
    _WIDTH,
    Chart,
    _alt,
    _chart,
    _Datasets,
    _names,
    _present,
    stat_bars,
)
from ._load import Run
from ._load import _finite as _number

__all__ = ["reasoning_timing", "ttft_split"]

#: (result key, label) of TTFT's parts, in time order.
_PARTS = (
    ("client_network", "start → request written"),
    ("server_head", "written → response head"),
    ("queue_prefill", "head → first output"),
)
_COLORS = ("#9d755d", "#eeca3b", "#4c78a8")


def ttft_split(runs: Sequence[Run]) -> Chart | None:
    """Each run's mean TTFT as a stacked bar of its HTTP phases; ``None`` when no run
    has ``ttft_split_ms``."""
    rows: list[dict[str, Any]] = []
    for run in runs:
        split = run.summary.get("ttft_split_ms")
        if not isinstance(split, Mapping):
            continue
        for order, (key, label) in enumerate(_PARTS):
            value = _number(split.get(key))
            if value is not None:
                rows.append({"run": run.name, "part": label, "order": order, "ms": value})
    if not rows:
        return None
    alt = _alt()
    ds = _Datasets(alt)
    labels = [label for _, label in _PARTS]
    chart = (
        alt.Chart(ds(rows))
        .mark_bar()
        .encode(
            y=alt.Y("run:N", title=None, sort=_present(_names(runs), rows)),
            x=alt.X("ms:Q", title="mean time (ms)", stack="zero"),
            color=alt.Color(
                "part:N",
                title="TTFT part",
                scale=alt.Scale(domain=labels, range=list(_COLORS)),
            ),
            order=alt.Order("order:Q"),
            tooltip=["run:N", "part:N", alt.Tooltip("ms:Q", format=".2f", title="ms")],
        )
        .properties(width=_WIDE - 280, height=max(40, 28 * len({r["run"] for r in rows})))
    )
    note = (
        "Client and network until the request is written; the server's answer to it "
        "(its response head); its queue and prefill until the first output."
    )
    return _chart(alt, ds, chart, "ttft-split", "summary", "Where time to first token goes", note)


def reasoning_timing(runs: Sequence[Run]) -> Chart | None:
    """Time to the first reasoning token vs the first visible content (mean, median,
    percentiles) per run; ``None`` when no run reasoned."""
    rows: list[dict[str, Any]] = []
    for run in runs:
        reasoning = run.summary.get("reasoning")
        if not isinstance(reasoning, Mapping):
            continue
        for key, what in (
            ("ttft_reasoning_ms", "first reasoning"),
            ("ttft_content_ms", "first content"),
        ):
            stats = reasoning.get(key)
            if not isinstance(stats, Mapping):
                continue
            for stat, value in stats.items():
                number = _number(value)
                if number is not None:
                    rows.append({"run": run.name, "what": what, "stat": stat, "ms": number})
    if not rows:
        return None
    alt = _alt()
    ds = _Datasets(alt)
    stats = list(dict.fromkeys(r["stat"] for r in rows))
    bars = stat_bars(
        alt, alt.Chart(ds(rows)), _names(runs), rows, stats, "time from request start (ms)", "what"
    )
    chart = bars.encode(
        column=alt.Column("what:N", title=None, sort=["first reasoning", "first content"])
    ).properties(width=_WIDTH - 20, height=_HEIGHT)
    note = "Requests that reasoned: the answer a user sees starts at the first content."
    return _chart(
        alt, ds, chart, "reasoning-timing", "summary", "Reasoning before the answer", note
    )
