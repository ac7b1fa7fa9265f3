"""The trace replay chart: the rate a replayed trace offered against the rate the client
achieved, and how late the sends were, over the run (from a result's ``trace_replay``
timeline, which the bench writes for ``--dataset-name trace``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._charts import Chart
    from ._load import Run

__all__ = ["trace_replay"]

#: Timeline key -> the series' name in the rate panel.
_RATES = {
    "offered_rps": "offered (trace)",
    "dispatched_rps": "released (client)",
    "started_rps": "started (after the concurrency cap)",
}
_LAGS = {"lag_p50_ms": "P50", "lag_p99_ms": "P99", "lag_max_ms": "max"}


def _timeline(run: Run) -> Mapping[str, Any] | None:
    replay = run.summary.get("trace_replay")
    if not isinstance(replay, Mapping):
        return None
    timeline = replay.get("timeline")
    if not isinstance(timeline, Mapping) or not isinstance(timeline.get("t"), list):
        return None
    return timeline


def _bucket(run: Run) -> float | None:
    value = (_timeline(run) or {}).get("bucket_s")
    return float(value) if isinstance(value, (int, float)) else None


def _rows(runs: Sequence[Run], keys: Mapping[str, str]) -> list[dict[str, Any]]:
    rows = []
    for run in runs:
        timeline = _timeline(run)
        if timeline is None:
            continue
        times = timeline["t"]
        for key, series in keys.items():
            values = timeline.get(key)
            if not isinstance(values, list) or len(values) != len(times):
                continue
            points: list[dict[str, Any]] = [
                {"run": run.name, "series": series, "t": t, "value": v}
                for t, v in zip(times, values, strict=True)
                if isinstance(v, (int, float)) and isinstance(t, (int, float))
            ]
            step = _bucket(run)
            if points and step is not None:
                # Drawn step-after: the last interval needs its end too.
                points.append({**points[-1], "t": points[-1]["t"] + step})
            rows += points
    return rows


def trace_replay(runs: Sequence[Run]) -> Chart | None:
    """Requests per second the trace offered, the client released and (with
    ``--max-concurrency``) started, per interval; under it the send lag's P50, P99 and
    max of the requests due in each interval, with the 10 ms line the replay counts
    late requests by."""
    from . import _charts as c

    replays = [run for run in runs if _timeline(run) is not None]
    if not replays:
        return None
    alt = c._alt()
    ds = c._Datasets(alt)
    names = c._names(runs)
    rates = _rows(replays, _RATES)
    lags = _rows(replays, _LAGS)
    times = [row["t"] for row in rates + lags]
    domain = [0.0, max(times, default=0.0) or 1.0]
    x_axis = alt.X("t:Q", title=c._TIME_TITLE, scale=alt.Scale(domain=domain))
    tooltip = [
        "run:N",
        "series:N",
        alt.Tooltip("t:Q", format=".3f", title="from (s)"),
        alt.Tooltip("value:Q", format=".2f"),
    ]
    present = c._present(names, rates + lags)
    color = c._run_color(alt, names, present)

    def step_lines(rows: list[dict[str, Any]], unit: str, dash: str, order: list[str]) -> Any:
        """One line per run and series, as steps over the intervals."""
        return (
            alt.Chart(ds(rows))
            .mark_line(interpolate="step-after")
            .encode(
                x=x_axis,
                y=alt.Y("value:Q", title=unit),
                color=color,
                strokeDash=alt.StrokeDash("series:N", title=dash, sort=order),
                tooltip=tooltip,
            )
        )

    rate_chart = step_lines(rates, "requests/s", "rate", list(_RATES.values())).properties(
        width=c._WIDE - 60, height=c._HEIGHT
    )
    from ..bench._trace import LATE_MS

    lag_lines = step_lines(lags, "send lag (ms)", "lag", list(_LAGS.values()))
    rule = alt.Chart(ds([{"ms": LATE_MS}])).mark_rule(color="#c0392b", strokeDash=[5, 3])
    lag_chart = alt.layer(lag_lines, rule.encode(y="ms:Q")).properties(
        width=c._WIDE - 60, height=c._HEIGHT
    )
    chart = alt.vconcat(rate_chart, lag_chart, spacing=12).resolve_scale(strokeDash="independent")
    steps = sorted({b for run in replays if (b := _bucket(run)) is not None})
    note = (
        f"intervals of {', '.join(f'{s:g}' for s in steps)} s; send lag: how long after its "
        f"(scaled) trace time each request left, by when it was due; dashed: {LATE_MS:g} ms"
    )
    return c._chart(
        alt, ds, chart, "trace-replay", "time", "Trace replay: offered vs achieved", note
    )
