"""The multi-turn chart: latency by turn index (TTFT and E2EL, P50 and P99) and how many
requests each turn index completed, from a result's ``per_turn`` (``--dataset-name
multi-turn``). TTFT that stays flat while the history grows is what prefix caching buys.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._charts import (
    _HEIGHT,
    Chart,
    _alt,
    _chart,
    _Datasets,
    _names,
    _present,
    _run_color,
)
from ._load import Run
from ._load import _finite as _number

__all__ = ["turn_latency"]

_PANEL_WIDTH = 270
#: (result key prefix, statistic shown) of each line.
_STATS = (("median", "P50"), ("p99", "P99"))
_METRICS = (("ttft", "TTFT"), ("e2el", "E2EL"))


def turn_latency(runs: Sequence[Run]) -> Chart | None:
    """TTFT and E2EL P50/P99 against the turn index, and the requests completed at each
    index, for the runs whose result has ``per_turn``; ``None`` when none has."""
    latency: list[dict[str, Any]] = []
    counts: list[dict[str, Any]] = []
    notes = []
    for run in runs:
        turns = _per_turn(run)
        if not turns:
            continue
        for row in turns:
            turn = row["turn"]
            counts.append({"run": run.name, "turn": turn, "requests": row["completed"]})
            for key, metric in _METRICS:
                for stat_key, stat in _STATS:
                    value = _number(row.get(f"{stat_key}_{key}_ms"))
                    if value is not None:
                        latency.append(
                            {"run": run.name, "turn": turn, "metric": metric, "stat": stat}
                            | {"ms": value}
                        )
        done = run.summary.get("conversations_completed")
        total = run.summary.get("conversations")
        if isinstance(done, int) and isinstance(total, int):
            notes.append(f"{run.name}: {done}/{total} conversations completed")
    if not latency:
        return None
    alt = _alt()
    ds = _Datasets(alt)
    names = _names(runs)
    color = _run_color(alt, names, _present(names, latency))
    turn_axis = alt.X("turn:O", title="turn", axis=alt.Axis(labelAngle=0))
    panels = []
    for _, metric in _METRICS:
        rows = [r for r in latency if r["metric"] == metric]
        if not rows:
            continue
        panels.append(
            alt.Chart(ds(rows))
            .mark_line(point=True)
            .encode(
                x=turn_axis,
                y=alt.Y("ms:Q", title=f"{metric} (ms): P50 solid, P99 dashed"),
                color=color,
                # A legend of dashes draws no symbol here: the title says which is which.
                strokeDash=alt.StrokeDash("stat:N", sort=["P50", "P99"], legend=None),
                tooltip=[
                    "run:N",
                    "turn:O",
                    "stat:N",
                    alt.Tooltip("ms:Q", format=".2f", title="ms"),
                ],
            )
            .properties(width=_PANEL_WIDTH, height=_HEIGHT, title=f"{metric} by turn")
        )
    panels.append(
        alt.Chart(ds(counts))
        .mark_bar()
        .encode(
            x=turn_axis,
            xOffset=alt.XOffset("run:N"),
            y=alt.Y("requests:Q", title="requests completed"),
            color=_run_color(alt, names, _present(names, counts)),
            tooltip=["run:N", "turn:O", "requests:Q"],
        )
        .properties(width=_PANEL_WIDTH, height=_HEIGHT, title="requests completed at each turn")
    )
    chart = alt.hconcat(*panels).resolve_scale(color="shared")
    return _chart(
        alt,
        ds,
        chart,
        "turn-latency",
        "distribution",
        "Latency by turn (multi-turn conversations)",
        note="; ".join(notes) or None,
    )


def _per_turn(run: Run) -> list[dict[str, Any]]:
    """The result's ``per_turn`` rows that have a turn number and a count."""
    rows = run.summary.get("per_turn")
    if not isinstance(rows, list):
        return []
    return [
        r
        for r in rows
        if isinstance(r, dict)
        and isinstance(r.get("turn"), int)
        and isinstance(r.get("completed"), int)
    ]
