"""The report's charts: one function per chart, each taking the loaded runs or sweeps and
returning a ``Chart`` (a Vega-Lite spec built with altair) or ``None`` when its data
isn't there. Several runs or sweeps are overlaid in one chart, coloured alike everywhere.

Data is inlined in the spec, so it is kept small where a run is big: CDFs are drawn from
at most ``CDF_POINTS`` quantiles, histograms are binned here, scatter plots keep every
k-th request (the chart says so) and time series are summed into at most ``BUCKETS``
intervals.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs

from ..bench._config import UsageError
from ..bench._schedule import nice_step
from ._load import (
    ReportData,
    RequestTiming,
    Run,
    ServerSeries,
    Stat,
    Sweep,
    SweepPoint,
    percentile,
)
from ._load import _finite as _number  # a finite number or None, as the loader reads them
from ._trace import trace_replay

__all__ = [
    "BUCKETS",
    "CDF_POINTS",
    "METRICS",
    "SCATTER_POINTS",
    "Chart",
    "build_charts",
    "client_lag",
    "errors_over_time",
    "in_flight_over_time",
    "itl_over_time",
    "latency_cdf",
    "latency_histogram",
    "latency_summary",
    "server_metrics",
    "stat_bars",
    "sweep_goodput",
    "sweep_latency",
    "sweep_pareto",
    "sweep_point_cdfs",
    "throughput_summary",
    "tokens_over_time",
    "ttft_over_time",
]

#: Most points drawn for one run's CDF.
CDF_POINTS = 300
#: Most requests drawn for one run in a scatter plot.
SCATTER_POINTS = 4000
#: Most intervals a time series is summed into.
BUCKETS = 120
_HIST_BINS = 40

#: Metric name -> (short name, what it is, its values are per "request" or "token gap").
METRICS: dict[str, tuple[str, str, str]] = {
    "ttft": ("TTFT", "time to first token", "requests"),
    "tpot": ("TPOT", "time per output token", "requests"),
    "itl": ("ITL", "inter-token latency", "token gaps"),
    "e2el": ("E2EL", "end-to-end latency", "requests"),
}

_WIDTH = 420
_HEIGHT = 230
_WIDE = 940
_TIME_TITLE = "time since the run's first request (s)"
_STAT_KEY = re.compile(r"^(mean|median|p\d+(?:\.\d+)?)_(ttft|tpot|itl|e2el)_ms$")
_LOAD_PARAMS = ("max_concurrency", "request_rate")
# Vega's "tableau10", the default: given explicitly so a run keeps its colour.
_PALETTE = (
    "#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b",
    "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac",
)  # fmt: skip
_CONFIG: dict[str, Any] = {
    "font": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
    "view": {"stroke": "#d0d0d0"},
    "title": {"anchor": "start", "fontSize": 14, "subtitleColor": "#666", "subtitleFontSize": 11},
    "axis": {"labelFontSize": 11, "titleFontSize": 12, "titleFontWeight": "normal"},
    "legend": {"orient": "bottom", "columns": 4, "labelLimit": 260, "titleFontWeight": "normal"},
    "header": {"labelFontSize": 12, "titleFontSize": 12},
}


@attrs.frozen(eq=False)
class Chart:
    """One chart of the report.

    Attributes:
        id: a slug, unique in the report: the page element's id and the exported file's
            name.
        section: where the page puts it (``sweep``, ``summary``, ``distribution``,
            ``time``, ``errors``, ``client``, ``server``).
        title: the chart's title (also in the spec).
        spec: the Vega-Lite spec, JSON-ready, its data inlined as top-level
            ``datasets``.
    """

    id: str
    section: str
    title: str
    spec: dict[str, Any]


def build_charts(data: ReportData) -> list[Chart]:
    """Every chart *data* has the data for, in page order."""
    runs = list(data.runs)
    sweeps = list(data.sweeps)
    charts: list[Chart | None] = []
    if sweeps:
        charts += [sweep_latency(sweeps, metric) for metric in METRICS]
        charts += [sweep_goodput(sweeps), sweep_pareto(sweeps)]
        charts += [sweep_point_cdfs(sweep) for sweep in sweeps]
    if runs:
        charts += [latency_summary(runs), throughput_summary(runs)]
        from ._phases import reasoning_timing, ttft_split  # they build on this module

        charts += [ttft_split(runs), reasoning_timing(runs)]
        for metric in METRICS:
            charts += [latency_cdf(runs, metric), latency_histogram(runs, metric)]
        from ._turns import turn_latency  # imported here: it builds on this module

        charts.append(turn_latency(runs))
        charts += [
            ttft_over_time(runs),
            itl_over_time(runs),
            in_flight_over_time(runs),
            tokens_over_time(runs),
            trace_replay(runs),
            errors_over_time(runs),
            client_lag(runs),
            server_metrics(runs),
        ]
    return _unique_ids([chart for chart in charts if chart is not None])


# -- runs: summary ----------------------------------------------------------------------


def latency_summary(runs: Sequence[Run]) -> Chart | None:
    """The result files' latency statistics (mean, median, percentiles) side by side:
    drawn for every run, detailed or not."""
    alt = _alt()
    ds = _Datasets(alt)
    rows: list[dict[str, Any]] = []
    for run in runs:
        for key in run.summary:
            match = _STAT_KEY.match(key)
            value = run.number(key)
            if match and value is not None:
                stat, metric = match.groups()
                rows.append(
                    {"run": run.name, "metric": METRICS[metric][0], "stat": stat, "ms": value}
                )
    if not rows:
        return None
    stats = sorted({r["stat"] for r in rows}, key=_stat_rank)
    metrics = [m[0] for m in METRICS.values() if any(r["metric"] == m[0] for r in rows)]
    base = stat_bars(alt, alt.Chart(), _names(runs), rows, stats, "latency (ms)", "metric")
    # Each facet carries its own y axis (~75 px): the row fits the page.
    width = max(120, (_WIDE - 75 * len(metrics)) // max(len(metrics), 1))
    chart = (
        base.properties(width=width, height=_HEIGHT)
        .facet(
            data=ds(rows),
            column=alt.Column("metric:N", title=None, sort=metrics),
        )
        .resolve_scale(y="independent")
    )
    return _chart(alt, ds, chart, "latency-summary", "summary", "Latency statistics per run")


def stat_bars(
    alt: Any,
    chart: Any,
    names: list[str],
    rows: list[dict[str, Any]],
    stats: list[str],
    y_title: str,
    group: str,
) -> Any:
    """*chart* as bars of each statistic (``stat``, in the order of *stats*), the runs
    side by side, ``ms`` high; *group* is the row field the caller splits them by."""
    return chart.mark_bar().encode(
        x=alt.X("stat:N", title="statistic", sort=stats, axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset("run:N", scale=alt.Scale(domain=_present(names, rows))),
        y=alt.Y("ms:Q", title=y_title),
        color=_run_color(alt, names, _present(names, rows)),
        tooltip=["run:N", f"{group}:N", "stat:N", alt.Tooltip("ms:Q", format=".2f", title="ms")],
    )


def throughput_summary(runs: Sequence[Run]) -> Chart | None:
    """Request throughput and goodput (req/s) and token throughput (tok/s) per run."""
    alt = _alt()
    ds = _Datasets(alt)
    requests = [
        ("request_throughput", "throughput"),
        ("request_goodput", "goodput"),
    ]
    tokens = [
        ("output_throughput", "output"),
        ("total_token_throughput", "input + output"),
        ("max_output_tokens_per_s", "peak output (1 s)"),
    ]
    names = _names(runs)

    def bars(keys: list[tuple[str, str]], title: str) -> Any:
        rows = [
            {"run": run.name, "what": label, "value": value}
            for run in runs
            for key, label in keys
            if (value := run.number(key)) is not None
        ]
        if not rows:
            return None
        order = [label for _, label in keys]
        return (
            alt.Chart(ds(rows))
            .mark_bar()
            .encode(
                x=alt.X("what:N", title="metric", sort=order, axis=alt.Axis(labelAngle=0)),
                xOffset=alt.XOffset("run:N", scale=alt.Scale(domain=_present(names, rows))),
                y=alt.Y("value:Q", title=title),
                color=_run_color(alt, names, _present(names, rows)),
                tooltip=["run:N", "what:N", alt.Tooltip("value:Q", format=".2f")],
            )
            .properties(width=_WIDTH - 40, height=_HEIGHT)
        )

    parts = [p for p in (bars(requests, "requests/s"), bars(tokens, "tokens/s")) if p is not None]
    if not parts:
        return None
    # Each part its own sub-bands: a shared xOffset scale sizes them by the first part.
    chart = alt.hconcat(*parts).resolve_scale(xOffset="independent") if len(parts) > 1 else parts[0]
    return _chart(alt, ds, chart, "throughput-summary", "summary", "Throughput per run")


# -- runs: distributions ----------------------------------------------------------------


def latency_cdf(runs: Sequence[Run], metric: str) -> Chart | None:
    """The cumulative distribution of *metric* (``ttft``, ``tpot``, ``itl``, ``e2el``)
    over the successful requests of each detailed run."""
    alt = _alt()
    ds = _Datasets(alt)
    short, what, unit = METRICS[metric]
    rows = []
    for run in runs:
        values = sorted(_metric_values(run, metric))
        n = len(values)
        for i in _spread(n, CDF_POINTS):
            rows.append({"run": run.name, "ms": values[i], "fraction": (i + 1) / n})
    if not rows:
        return None
    names = _names(runs)
    chart = (
        alt.Chart(ds(rows))
        .mark_line(interpolate="step-after", clip=True)
        .encode(
            x=alt.X("ms:Q", title=f"{short} (ms)"),
            y=alt.Y("fraction:Q", title=f"fraction of {unit}", axis=alt.Axis(format="%")),
            color=_run_color(alt, names, _present(names, rows)),
            tooltip=[
                "run:N",
                alt.Tooltip("ms:Q", format=".2f", title=f"{short} (ms)"),
                alt.Tooltip("fraction:Q", format=".1%", title="at or below"),
            ],
        )
        .properties(width=_WIDTH, height=_HEIGHT)
    )
    title = f"{short} CDF ({what})"
    return _chart(alt, ds, chart, f"{metric}-cdf", "distribution", title)


def latency_histogram(runs: Sequence[Run], metric: str) -> Chart | None:
    """A histogram of *metric* per detailed run, as the share of the run's requests (or
    token gaps) in each bin, so runs of different sizes compare."""
    alt = _alt()
    ds = _Datasets(alt)
    short, what, unit = METRICS[metric]
    per_run = {run.name: _metric_values(run, metric) for run in runs}
    everything = sorted(v for values in per_run.values() for v in values)
    if not everything:
        return None
    low, high = everything[0], percentile(everything, 99.9)
    clipped = high < everything[-1]
    width = (high - low) / _HIST_BINS or 1.0
    rows = []
    for name, values in per_run.items():
        if not values:
            continue
        counts = [0] * _HIST_BINS
        for v in values:
            counts[min(int((v - low) / width), _HIST_BINS - 1)] += 1
        for b, count in enumerate(counts):
            if count:
                start = low + b * width
                rows.append(
                    {
                        "run": name,
                        "start": start,
                        "end": start + width,
                        "share": count / len(values),
                        "count": count,
                    }
                )
    names = _names(runs)
    chart = (
        alt.Chart(ds(rows))
        .mark_bar(opacity=0.6, binSpacing=0)
        .encode(
            x=alt.X("start:Q", title=f"{short} (ms)", bin="binned"),
            x2="end:Q",
            y=alt.Y("share:Q", title=f"share of {unit}", stack=None, axis=alt.Axis(format="%")),
            color=_run_color(alt, names, _present(names, rows)),
            tooltip=[
                "run:N",
                alt.Tooltip("start:Q", format=".2f", title="from (ms)"),
                alt.Tooltip("end:Q", format=".2f", title="to (ms)"),
                "count:Q",
                alt.Tooltip("share:Q", format=".1%"),
            ],
        )
        .properties(width=_WIDTH, height=_HEIGHT)
    )
    note = "values over the 99.9th percentile are counted in the last bin" if clipped else None
    return _chart(alt, ds, chart, f"{metric}-histogram", "distribution", f"{short} histogram", note)


# -- runs: over time --------------------------------------------------------------------


def ttft_over_time(runs: Sequence[Run]) -> Chart | None:
    """Each successful request's TTFT at the time it started."""
    alt = _alt()
    ds = _Datasets(alt)
    rows, note = _scatter_rows(runs, lambda r: {"ms": r.ttft * 1000})
    if not rows:
        return None
    chart = _scatter(alt, ds, runs, rows, "ms:Q", "TTFT (ms)")
    return _chart(alt, ds, chart, "ttft-over-time", "time", "TTFT by request start", note)


def itl_over_time(runs: Sequence[Run]) -> Chart | None:
    """Each successful request's mean ITL (the largest in the tooltip) at the time it
    started."""
    alt = _alt()
    ds = _Datasets(alt)

    def values(r: RequestTiming) -> dict[str, float] | None:
        if not r.itl:
            return None
        return {"ms": sum(r.itl) / len(r.itl) * 1000, "max_ms": max(r.itl) * 1000}

    rows, note = _scatter_rows(runs, values)
    if not rows:
        return None
    chart = _scatter(alt, ds, runs, rows, "ms:Q", "mean ITL of the request (ms)", extra=["max_ms"])
    return _chart(alt, ds, chart, "itl-over-time", "time", "ITL by request start", note)


def in_flight_over_time(runs: Sequence[Run]) -> Chart | None:
    """Requests in flight (sent, not yet finished), averaged over each interval."""

    def in_flight(run: Run, step: float) -> list[float]:
        spans = [(r.start or 0.0, (r.start or 0.0) + r.latency) for r in run.requests or ()]
        return _mean_in_flight(spans, step, _cover(run, step))

    return _over_time(
        runs,
        in_flight,
        "requests in flight (mean per interval)",
        "in-flight-over-time",
        "Requests in flight",
    )


def tokens_over_time(runs: Sequence[Run]) -> Chart | None:
    """Output tokens received per second, from each token's arrival time."""

    def rate(run: Run, step: float) -> list[float]:
        return _token_rate(run.requests or (), step, _cover(run, step))

    return _over_time(runs, rate, "output tokens/s", "tokens-over-time", "Output token throughput")


def _over_time(
    runs: Sequence[Run],
    values: Callable[[Run, float], Sequence[float]],
    y_title: str,
    chart_id: str,
    title: str,
) -> Chart | None:
    """One line per run of *values* (one per interval of the runs' shared time grid)."""
    alt = _alt()
    ds = _Datasets(alt)
    timed = _timed_with_success(runs)
    if not timed:
        return None
    step, _ = _time_grid(timed)
    rows = [
        {"run": run.name, "t": b * step, "value": value}
        for run in timed
        for b, value in enumerate(values(run, step))
    ]
    chart = _time_line(alt, ds, runs, rows, y_title, step)
    return _chart(alt, ds, chart, chart_id, "time", title, f"intervals of {step:g} s")


def errors_over_time(runs: Sequence[Run]) -> Chart | None:
    """Failed requests per interval, coloured by error message (one row per run)."""
    alt = _alt()
    ds = _Datasets(alt)
    timed = [run for run in runs if run.timed and any(not r.success for r in run.requests or ())]
    if not timed:
        return None
    # Coarser than the other time series: a failure is one event, not a rate.
    step, count = _time_grid(timed, BUCKETS // 3)
    counts: dict[tuple[str, int, str], int] = {}
    for run in timed:
        for r in run.requests or ():
            if not r.success:
                b = min(int((r.start or 0.0) / step), count - 1)
                key = (run.name, b, short_error(r.error))
                counts[key] = counts.get(key, 0) + 1
    rows = [
        {"run": name, "start": b * step, "end": (b + 1) * step, "message": msg, "failed": n}
        for (name, b, msg), n in counts.items()
    ]
    bars = (
        alt.Chart()
        .mark_bar()
        .encode(
            x=alt.X(
                "start:Q",
                title=_TIME_TITLE,
                bin="binned",
                scale=alt.Scale(domain=[0, step * count]),
            ),
            x2="end:Q",
            y=alt.Y(
                "sum(failed):Q",
                title="failed requests (count)",
                axis=alt.Axis(tickMinStep=1, format="d"),
            ),
            color=alt.Color("message:N", title="error"),
            tooltip=["run:N", "message:N", "failed:Q", alt.Tooltip("start:Q", title="from (s)")],
        )
        .properties(width=_WIDE - 40, height=120 if len(timed) > 1 else _HEIGHT)
    )
    if len(timed) > 1:
        chart = bars.facet(data=ds(rows), row=alt.Row("run:N", title=None))
    else:
        chart = bars.properties(data=ds(rows))
    note = f"intervals of {step:g} s; messages are shortened (the table below has them whole)"
    return _chart(alt, ds, chart, "errors-over-time", "errors", "Failed requests over time", note)


def short_error(message: str, limit: int = 80) -> str:
    """An error message on one line, cut to *limit* characters."""
    line = " ".join(message.split()) or "(no message)"
    return line if len(line) <= limit else line[: limit - 1] + "…"


# -- runs: client and server ------------------------------------------------------------


def client_lag(runs: Sequence[Run]) -> Chart | None:
    """The client self-check's send lag and event-loop lag (P50, P99, max) per run, with
    the limits its verdict uses."""
    alt = _alt()
    ds = _Datasets(alt)
    from ..bench._selfcheck import LOOP_LAG_P99_LIMIT_MS, SEND_LAG_P99_LIMIT_MS

    names = _names(runs)
    parts = []
    for prefix, title, limit in (
        ("client_send_lag", "send lag (ms)", SEND_LAG_P99_LIMIT_MS),
        ("client_loop_lag", "event-loop lag (ms)", LOOP_LAG_P99_LIMIT_MS),
    ):
        rows = [
            {"run": run.name, "stat": stat, "ms": value}
            for run in runs
            for stat in ("p50", "p99", "max")
            if (value := run.number(f"{prefix}_{stat}_ms")) is not None
        ]
        if not rows:
            continue
        bars = (
            alt.Chart()
            .mark_bar()
            .encode(
                x=alt.X(
                    "stat:N",
                    title="statistic",
                    sort=["p50", "p99", "max"],
                    axis=alt.Axis(labelAngle=0),
                ),
                xOffset=alt.XOffset("run:N", scale=alt.Scale(domain=_present(names, rows))),
                y=alt.Y("ms:Q", title=title),
                color=_run_color(alt, names, _present(names, rows)),
                tooltip=["run:N", "stat:N", alt.Tooltip("ms:Q", format=".2f")],
            )
        )
        rule = alt.Chart().mark_rule(color="#c0392b", strokeDash=[5, 3]).encode(y=alt.datum(limit))
        parts.append(
            alt.layer(bars, rule, data=ds(rows)).properties(width=_WIDTH - 40, height=_HEIGHT)
        )
    if not parts:
        return None
    # Each part its own sub-bands: a shared xOffset scale sizes them by the first part.
    chart = alt.hconcat(*parts).resolve_scale(xOffset="independent") if len(parts) > 1 else parts[0]
    note = (
        f"dashed: the P99 limit ({SEND_LAG_P99_LIMIT_MS:g} ms) over which the verdict"
        " blames the client side"
    )
    return _chart(alt, ds, chart, "client-lag", "client", "Client self-check: lag", note)


def server_metrics(runs: Sequence[Run]) -> Chart | None:
    """The server's scraped series (``--server-metrics``) on the run's time axis, under
    the client's output token rate, one panel per series: gauges as scraped, counters as
    their rate between scrapes, histograms as the mean observation between scrapes (as
    the bench stores them). Series without a human name are drawn only when no series
    has one."""
    alt = _alt()
    ds = _Datasets(alt)
    with_server = [run for run in runs if run.server is not None and run.server.series]
    if not with_server:
        return None
    names = _names(runs)
    chosen, left_out = _server_series(with_server)
    # (rows, panel title, y axis title, interpolation)
    panels: list[tuple[list[dict[str, Any]], str, str, str]] = []
    timed = [run for run in with_server if run.timed]
    if timed:
        step, _ = _time_grid(timed)
        rows = [
            {"run": run.name, "t": b * step, "value": value}
            for run in timed
            for b, value in enumerate(_token_rate(run.requests or (), step, _cover(run, step)))
        ]
        panels.append((rows, "client: output tokens", "tokens/s", "step-after"))
    for key, title in chosen:
        rows = []
        unit = "value"
        for run in with_server:
            for series in run.server.series:  # type: ignore[union-attr]
                if series.name == key:
                    scale, unit = _server_unit(series)
                    rows += [
                        {"run": run.name, "t": t, "value": v * scale} for t, v in series.points
                    ]
        panels.append((rows, title, unit, "linear"))
    if not panels:
        return None
    times = [row["t"] for rows, *_ in panels for row in rows]
    domain = [min(0.0, *times), max(times) or 1.0]
    last = len(panels) - 1
    present = [run.name for run in with_server]
    charts = [
        _panel(alt, ds, rows, names, present, domain, title, unit, interpolate, axis=i == last)
        for i, (rows, title, unit, interpolate) in enumerate(panels)
    ]
    chart = alt.vconcat(*charts, spacing=8)
    note = "counters as a rate between scrapes, histograms as the mean observation between scrapes"
    if left_out:
        note += f"; {left_out} more series in the result files, not drawn"
    return _chart(alt, ds, chart, "server-metrics", "server", "Server metrics over the run", note)


# -- sweeps -----------------------------------------------------------------------------


def sweep_latency(sweeps: Sequence[Sweep], metric: str) -> Chart | None:
    """Throughput against *metric*'s percentiles, one line per statistic (and per sweep
    or other swept parameter), with the SLO lines and the SLA point marked."""
    alt = _alt()
    ds = _Datasets(alt)
    short, what, _ = METRICS[metric]
    rows = []
    x_key, x_title = _throughput_axis(sweeps)
    for sweep in sweeps:
        load = _load_param(sweep)
        stats = _sweep_stats(sweep, metric)
        for point in sweep.points:
            x = point.stat(x_key)
            if x is None:
                continue
            for stat in stats:
                y = point.stat(f"{stat}_{metric}_ms")
                if y is None:
                    continue
                rows.append(
                    _point_row(sweep, point, load, x.mean, y, len(sweeps) > 1)
                    | {"stat": stat, "sla": _is_sla(sweep, point)}
                )
    if not rows:
        return None
    series = sorted({r["series"] for r in rows}, key=[r["series"] for r in rows].index)
    stats = sorted({r["stat"] for r in rows}, key=_stat_rank)
    for row in rows:
        # The SLA point is marked on every line; its label once, on the highest.
        if row["sla"] and row["stat"] == stats[-1]:
            row["sla_text"] = "SLA: " + row["label"]
    several = len(series) > 1
    color = (
        alt.Color("series:N", title="sweep", scale=alt.Scale(domain=series))
        if several
        else alt.Color("stat:N", title="statistic", sort=stats)
    )
    tooltip = _point_tooltip(alt, x_title, f"{short} (ms)") + ["stat:N"]
    y_title = f"{short} (ms)"
    x = alt.X("x:Q", title=x_title)
    y = alt.Y("y:Q", title=y_title)
    encoding: dict[str, Any] = {"x": x, "y": y, "color": color, "order": "order:Q"}
    if several:
        encoding["strokeDash"] = alt.StrokeDash("stat:N", title="statistic", sort=stats)
    layers = [
        alt.Chart().mark_line(point=False).encode(detail="series:N", **encoding),
        alt.Chart().mark_point(filled=True, size=45).encode(x=x, y=y, color=color, tooltip=tooltip),
        alt.Chart()
        .mark_rule()
        .encode(x=x, y=alt.Y("ci_low:Q", title=y_title), y2="ci_high:Q", color=color)
        .transform_filter("isValid(datum.ci_low) && isValid(datum.ci_high)"),
        alt.Chart()
        .mark_point(shape="diamond", size=260, filled=False, strokeWidth=2.5, color="#111")
        .encode(x=x, y=y, tooltip=tooltip)
        .transform_filter("datum.sla"),
    ]
    layers += _slo_layers(alt, ds, sweeps, metric, y_title)
    layers.append(
        alt.Chart()
        .mark_text(align="left", dx=10, dy=-10, fontWeight="bold")
        .encode(x=x, y=y, text="sla_text:N")
        .transform_filter("isValid(datum.sla_text)")
    )
    chart = alt.layer(*layers, data=ds(rows)).properties(width=_WIDE - 120, height=300)
    note = _sweep_note(sweeps)
    title = f"{short} vs throughput ({what})"
    return _chart(alt, ds, chart, f"sweep-{metric}", "sweep", title, note)


def sweep_goodput(sweeps: Sequence[Sweep]) -> Chart | None:
    """Goodput and throughput (req/s) against the load parameter, the SLA marked."""
    alt = _alt()
    ds = _Datasets(alt)
    rows = []
    loads = set()
    for sweep in sweeps:
        load = _load_param(sweep)
        if load is None:
            continue
        loads.add(load)
        for point in sweep.points:
            for key, what in (("request_goodput", "goodput"), ("request_throughput", "throughput")):
                y = point.stat(key)
                if y is not None and _number(point.params.get(load)) is not None:
                    rows.append(
                        _point_row(sweep, point, load, None, y, len(sweeps) > 1) | {"what": what}
                    )
    if not rows:
        return None
    x_title = _param_title(loads.pop()) if len(loads) == 1 else "load (swept parameter)"
    series = sorted({r["series"] for r in rows}, key=[r["series"] for r in rows].index)
    several = len(series) > 1
    color = (
        alt.Color("series:N", title="sweep", scale=alt.Scale(domain=series))
        if several
        else alt.Color("what:N", title=None, sort=["goodput", "throughput"])
    )
    x = alt.X("load:Q", title=x_title)
    y = alt.Y("y:Q", title="requests/s")
    dash = alt.StrokeDash("what:N", title=None, sort=["goodput", "throughput"])
    tooltip = _point_tooltip(alt, "load", "req/s") + ["what:N"]
    layers = [
        alt.Chart()
        .mark_line()
        .encode(x=x, y=y, color=color, strokeDash=dash, detail="series:N", order="order:Q"),
        alt.Chart().mark_point(filled=True, size=45).encode(x=x, y=y, color=color, tooltip=tooltip),
        alt.Chart()
        .mark_rule()
        .encode(x=x, y=alt.Y("ci_low:Q", title="requests/s"), y2="ci_high:Q", color=color)
        .transform_filter("isValid(datum.ci_low) && isValid(datum.ci_high)"),
    ]
    sla_rows = [
        {"load": s.sla.value, "text": f"SLA: {s.sla.param}={s.sla.value:g}"}
        for s in sweeps
        if s.sla is not None and s.sla.param == _load_param(s)
    ]
    if sla_rows:
        layers.append(
            alt.Chart(ds(sla_rows))
            .mark_rule(color="#111", strokeDash=[6, 3], strokeWidth=1.5)
            .encode(x=x)
        )
        layers.append(
            alt.Chart(ds(sla_rows))
            .mark_text(align="left", dx=5, y=8, fontWeight="bold")
            .encode(x=x, text="text:N")
        )
    chart = alt.layer(*layers, data=ds(rows)).properties(width=_WIDE - 120, height=300)
    has_goodput = any(r["what"] == "goodput" for r in rows)
    title = "Goodput and throughput vs load" if has_goodput else "Throughput vs load"
    note = None if has_goodput else "no goodput: the runs had no --goodput SLOs"
    return _chart(alt, ds, chart, "sweep-goodput", "sweep", title, note)


def sweep_pareto(sweeps: Sequence[Sweep]) -> Chart | None:
    """For sweeps over several parameters: throughput against latency, the points no other
    point beats on both (more throughput at no more latency) highlighted and joined."""
    alt = _alt()
    ds = _Datasets(alt)
    multi = [s for s in sweeps if s.mode == "list" and len(s.swept) > 1]
    if not multi:
        return None
    x_key, x_title = _throughput_axis(multi)
    y_key = _pareto_latency(multi)
    if y_key is None:
        return None
    rows = []
    for sweep in multi:
        points = [
            (point, xs.mean, ys.mean)
            for point in sweep.points
            if (xs := point.stat(x_key)) is not None and (ys := point.stat(y_key)) is not None
        ]
        for point, px, py in points:
            best = not any((ox >= px and oy <= py) and (ox > px or oy < py) for _, ox, oy in points)
            row = _point_row(sweep, point, _load_param(sweep), px, Stat(mean=py), True)
            rows.append(row | {"frontier": best, "series": sweep.name})
    if not rows:
        return None
    y_title = _key_title(y_key)
    names = [s.name for s in multi]
    x = alt.X("x:Q", title=x_title)
    y = alt.Y("y:Q", title=y_title)
    tooltip = _point_tooltip(alt, x_title, y_title) + ["frontier:N"]
    color = alt.Color("series:N", title="sweep", scale=alt.Scale(domain=names))
    layers = [
        alt.Chart()
        .mark_point(color="#aaa", size=40)
        .encode(x=x, y=y, tooltip=tooltip)
        .transform_filter("!datum.frontier"),
        alt.Chart()
        .mark_line()
        .encode(x=x, y=y, color=color, order="x:Q")
        .transform_filter("datum.frontier"),
        alt.Chart()
        .mark_point(filled=True, size=80)
        .encode(x=x, y=y, color=color, tooltip=tooltip)
        .transform_filter("datum.frontier"),
    ]
    chart = alt.layer(*layers, data=ds(rows)).properties(width=_WIDE - 120, height=300)
    note = "filled: non-dominated points (no other point has more throughput at no more latency)"
    return _chart(alt, ds, chart, "sweep-pareto", "sweep", f"Pareto: throughput vs {y_title}", note)


def sweep_point_cdfs(sweep: Sweep) -> Chart | None:
    """The TTFT CDF of each point of *sweep* (its first repeat), coloured by load."""
    alt = _alt()
    ds = _Datasets(alt)
    rows = []
    labels = []
    for point in sweep.points:
        run = next((r for r in point.runs if r.detailed), None)
        if run is None:
            continue
        values = sorted(_metric_values(run, "ttft"))
        n = len(values)
        if not n:
            continue
        labels.append(point.label)
        for i in _spread(n, CDF_POINTS // 2):
            rows.append({"point": point.label, "ms": values[i], "fraction": (i + 1) / n})
    if not rows:
        return None
    chart = (
        alt.Chart(ds(rows))
        .mark_line(interpolate="step-after")
        .encode(
            x=alt.X("ms:Q", title="TTFT (ms)"),
            y=alt.Y("fraction:Q", title="fraction of requests", axis=alt.Axis(format="%")),
            color=alt.Color(
                "point:O", title="point", sort=labels, scale=alt.Scale(scheme="viridis")
            ),
            tooltip=[
                "point:N",
                alt.Tooltip("ms:Q", format=".2f"),
                alt.Tooltip("fraction:Q", format=".1%"),
            ],
        )
        .properties(width=_WIDE - 300, height=_HEIGHT)
    )
    title = f"TTFT CDF per point: {sweep.name}"
    return _chart(
        alt,
        ds,
        chart,
        f"sweep-{_slug(sweep.name)}-ttft-cdf",
        "sweep",
        title,
        "first repeat of each point",
    )


# -- helpers: data ----------------------------------------------------------------------


def _metric_values(run: Run, metric: str) -> list[float]:
    """*metric* in ms over the run's successful requests (ITL: every token gap)."""
    ok = [r for r in run.requests or () if r.success]
    if metric == "ttft":
        return [r.ttft * 1000 for r in ok]
    if metric == "e2el":
        return [r.latency * 1000 for r in ok]
    if metric == "tpot":
        return [t * 1000 for t in (r.tpot for r in ok) if t is not None]
    return [x * 1000 for r in ok for x in r.itl]


def _spread(n: int, most: int) -> list[int]:
    """At most *most* indices into *n* items, evenly spread, first and last included."""
    if n <= most:
        return list(range(n))
    return sorted({round(k * (n - 1) / (most - 1)) for k in range(most)})


def _scatter_rows(
    runs: Sequence[Run], values: Callable[[RequestTiming], dict[str, float] | None]
) -> tuple[list[dict[str, Any]], str | None]:
    rows: list[dict[str, Any]] = []
    strides = []
    for run in runs:
        if not run.timed:
            continue
        ok = [(i, r) for i, r in enumerate(run.requests or ()) if r.success]
        stride = max(1, math.ceil(len(ok) / SCATTER_POINTS))
        strides.append(stride)
        for i, r in ok[::stride]:
            found = values(r)
            if found is not None:
                row: dict[str, Any] = {"run": run.name, "t": r.start, "request": i}
                rows.append(row | found)
    stride = max(strides, default=1)
    note = f"every {_ordinal(stride)} request shown" if stride > 1 else None
    return rows, note


def _timed_with_success(runs: Sequence[Run]) -> list[Run]:
    """The runs with start times and a successful request (a rate of nothing is noise)."""
    return [run for run in runs if run.timed and any(r.success for r in run.requests or ())]


def _time_grid(runs: Sequence[Run], buckets: int = BUCKETS) -> tuple[float, int]:
    """A round interval, at most about *buckets* of which cover the longest of *runs*,
    and how many do."""
    end = max(_run_end(run) for run in runs) or 1e-3
    step = nice_step(end / buckets)
    return step, _cover_end(end, step)


def _cover(run: Run, step: float) -> int:
    """How many intervals of *step* cover *run* (a shorter run's line stops at its end)."""
    return _cover_end(_run_end(run), step)


def _cover_end(end: float, step: float) -> int:
    return max(1, math.ceil(end / step - 1e-9))


def _run_end(run: Run) -> float:
    return max(((r.start or 0.0) + r.latency for r in run.requests or ()), default=0.0)


def _mean_in_flight(spans: Iterable[tuple[float, float]], step: float, count: int) -> list[float]:
    """The mean number of open spans in each interval: the time they cover, over its
    length (one pass over the sorted starts and ends)."""
    events = sorted([(s, 1) for s, e in spans if e > s] + [(e, -1) for s, e in spans if e > s])
    area = [0.0] * count
    open_now = 0
    previous = 0.0
    for t, change in events:
        if open_now:
            _add_span(area, previous, t, open_now, step)
        open_now += change
        previous = t
    return [a / step for a in area]


def _add_span(area: list[float], start: float, end: float, weight: int, step: float) -> None:
    b = int(start / step)
    while start < end and b < len(area):
        stop = min(end, (b + 1) * step)
        area[b] += (stop - start) * weight
        start = stop
        b += 1


def _token_rate(requests: Iterable[RequestTiming], step: float, count: int) -> list[float]:
    """Output tokens per second in each interval. A request's tokens are shared among
    its arrivals (a server may send several tokens in one event)."""
    tokens = [0.0] * count
    for r in requests:
        if not r.success or r.start is None:
            continue
        arrivals = len(r.itl) + 1
        each = (r.output_len or arrivals) / arrivals
        t = r.start + r.ttft
        for gap in (0.0, *r.itl):
            t += gap
            tokens[min(int(t / step), count - 1)] += each
    return [n / step for n in tokens]


def _server_series(runs: Sequence[Run]) -> tuple[list[tuple[str, str]], int]:
    """The series to draw, as (key, panel title), known series first in a set order,
    at most ``_SERVER_PANELS``; and how many were left out."""
    found: dict[str, str | None] = {}
    for run in runs:
        for series in run.server.series if run.server is not None else ():
            if series.points:
                found.setdefault(series.name, series.label)
    named = [k for k, label in found.items() if label]
    keys = named or list(found)

    def order(key: str) -> tuple[int, str]:
        label = found[key] or key
        return (_SERVER_ORDER.index(label) if label in _SERVER_ORDER else len(_SERVER_ORDER), key)

    keys.sort(key=order)
    shown = keys[:_SERVER_PANELS]
    titles = [found[k] or k for k in shown]
    out = []
    for key, title in zip(shown, titles, strict=True):
        same = [k for k, t in zip(shown, titles, strict=True) if t == title]
        if len(same) > 1:
            # Several label sets of one metric: name them by the labels that differ.
            labels = [dict(_LABEL.findall(k)) for k in same]
            mine = labels[same.index(key)]
            varying = sorted(n for n in mine if len({str(d.get(n)) for d in labels}) > 1)
            if varying:
                title += " [" + ", ".join(f"{n}={mine[n]}" for n in varying) + "]"
        out.append((key, title))
    return out, len(found) - len(shown)


_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


# The panels a reader looks for first (the bench's human names for the series).
_SERVER_ORDER = (
    "queue depth", "running requests", "KV-cache usage", "prefix-cache hit rate",
    "preemptions", "prompt tokens", "generation tokens", "server TTFT", "server ITL",
    "server TPOT", "server E2E latency", "queue time",
)  # fmt: skip
_SERVER_PANELS = 12


def _server_unit(series: ServerSeries) -> tuple[float, str]:
    """(scale, y axis title) for a series, from its kind, metric name and human name."""
    metric = series.name.split("{", 1)[0].lower()
    label = (series.label or "").lower()
    if series.kind == "histogram":
        if metric.endswith(("_seconds", "_duration")):
            return 1000.0, "mean (ms)"
        if metric.endswith("_us"):
            return 0.001, "mean (ms)"
        if metric.endswith("_ms"):
            return 1.0, "mean (ms)"
        return 1.0, "mean (tokens)" if "tokens" in label + metric else "mean (value)"
    if series.kind == "counter":
        if metric.endswith("_seconds_total") or "(s)" in label:
            return 1.0, "busy (s/s)"
        if "tokens" in label + metric:
            return 1.0, "tokens/s"
        if "request" in label + metric:
            return 1.0, "requests/s"
        return 1.0, "rate (/s)"
    unit = re.search(r"\(([^)]+)\)\s*$", series.label or "")
    if unit:
        return 1.0, unit.group(1)
    if any(w in label + metric for w in ("usage", "ratio", "_perc", "hit rate", "utilization")):
        return 1.0, "fraction"
    if metric.endswith("_bytes"):
        return 1.0, "bytes"
    if "tokens" in label + metric:
        return 1.0, "tokens"
    if any(w in label + metric for w in ("request", "queue", "batch", "reqs")):
        return 1.0, "requests"
    return 1.0, "value"


# -- helpers: sweeps --------------------------------------------------------------------


def _load_param(sweep: Sweep) -> str | None:
    """The swept parameter that is the load: the SLA's; the request rate of a saturation
    profile; else max_concurrency or request_rate, else the first numeric one."""
    if sweep.sla is not None:
        return sweep.sla.param
    if sweep.mode == "saturation":
        return "request_rate"
    for name in _LOAD_PARAMS:
        if name in sweep.swept:
            return name
    for name in sweep.swept:
        if all(_number(p.params.get(name)) is not None for p in sweep.points):
            return name
    return None


def _series(sweep: Sweep, point: SweepPoint, load: str | None, several_sweeps: bool) -> str:
    """The line a point is on: its sweep's, and in a list sweep over several parameters,
    one per value of the others (a saturation profile or an SLA search is one line)."""
    others = []
    if sweep.mode == "list":
        others = [f"{k}={v}" for k, v in point.params.items() if k != load and k in sweep.swept]
    parts = ([sweep.name] if several_sweeps else []) + others
    return ", ".join(parts) or sweep.name


def _order(sweep: Sweep, load: str | None) -> dict[int, int]:
    """Each point's place along its line (by ``id``): by load, points of no numeric load
    (a rate of inf) last, ties by throughput. Points are in the order they ran, which an
    SLA search does not keep sorted."""

    def key(point: SweepPoint) -> tuple[float, float]:
        tput = point.stat("request_throughput")
        value = _number(point.params.get(load)) if load else None
        if sweep.mode == "saturation":
            value = None  # rate inf twice (synchronous, throughput): throughput orders it
        return (math.inf if value is None else value, tput.mean if tput else 0.0)

    ranked = sorted(sweep.points, key=key)
    return {id(point): i for i, point in enumerate(ranked)}


def _point_row(
    sweep: Sweep, point: SweepPoint, load: str | None, x: float | None, y: Stat, several: bool
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "sweep": sweep.name,
        "series": _series(sweep, point, load, several),
        "label": point.label,
        "load": _number(point.params.get(load)) if load else None,
        "order": _order(sweep, load)[id(point)],
        "y": y.mean,
        # A latency or a rate is never negative, whatever a t interval of 2 runs says.
        "ci_low": None if y.ci_low is None else max(0.0, y.ci_low),
        "ci_high": y.ci_high,
        "n": y.n,
        "slo": {True: "met", False: "missed", None: "n/a"}[point.slo_ok],
    }
    if x is not None:
        row["x"] = x
    return row


def _point_tooltip(alt: Any, x_title: str, y_title: str) -> list[Any]:
    return [
        alt.Tooltip("label:N", title="point"),
        alt.Tooltip("sweep:N"),
        alt.Tooltip("x:Q", format=".2f", title=x_title),
        alt.Tooltip("y:Q", format=".2f", title=y_title),
        alt.Tooltip("n:Q", title="repeats"),
        alt.Tooltip("slo:N", title="SLOs"),
    ]


def _is_sla(sweep: Sweep, point: SweepPoint) -> bool:
    if sweep.sla is None:
        return False
    value = _number(point.params.get(sweep.sla.param))
    return value is not None and math.isclose(value, sweep.sla.value)


def _sweep_stats(sweep: Sweep, metric: str) -> list[str]:
    """The percentiles of *metric* the sweep has (median when there is no P50), or the
    mean when it has none."""
    found = {
        m.group(1)
        for key in sweep.metric_keys()
        if (m := _STAT_KEY.match(key)) and m.group(2) == metric
    }
    stats = [s for s in found if s.startswith("p")]
    if "median" in found and "p50" not in found:
        stats.append("median")
    if not stats and "mean" in found:
        stats.append("mean")
    return sorted(stats, key=_stat_rank)


def _slo_layers(
    alt: Any, ds: _Datasets, sweeps: Sequence[Sweep], metric: str, y_title: str
) -> list[Any]:
    rows = []
    for sweep in sweeps:
        for slo in sweep.slo:
            if slo.metric == metric and slo.limit_ms is not None:
                rows.append({"limit": slo.limit_ms, "text": "SLO: " + slo.text})
    if not rows:
        return []
    rows = [dict(t) for t in {tuple(r.items()) for r in rows}]
    data = ds(rows)
    return [
        alt.Chart(data)
        .mark_rule(color="#c0392b", strokeDash=[6, 4], strokeWidth=1.5)
        .encode(y=alt.Y("limit:Q", title=y_title)),
        alt.Chart(data)
        .mark_text(align="left", dx=4, dy=-6, color="#c0392b", x=0)
        .encode(y=alt.Y("limit:Q", title=y_title), text="text:N"),
    ]


def _throughput_axis(sweeps: Sequence[Sweep]) -> tuple[str, str]:
    every = all(p.stat("output_throughput") is not None for s in sweeps for p in s.points)
    if every:
        return "output_throughput", "output throughput (tok/s)"
    return "request_throughput", "request throughput (req/s)"


def _pareto_latency(sweeps: Sequence[Sweep]) -> str | None:
    keys = set(sweeps[0].metric_keys())
    candidates = [slo.key for s in sweeps for slo in s.slo if slo.key is not None]
    candidates += ["p99_e2el_ms", "median_e2el_ms", "p99_ttft_ms", "median_ttft_ms", "p99_tpot_ms"]
    return next((k for k in candidates if k in keys), None)


def _key_title(key: str) -> str:
    match = _STAT_KEY.match(key)
    if match is None:
        return key
    stat, metric = match.groups()
    return f"{stat} {METRICS[metric][0]} (ms)"


def _param_title(name: str) -> str:
    return {
        "max_concurrency": "max concurrency (requests)",
        "request_rate": "request rate (req/s)",
        "num_prompts": "prompts (requests)",
        "random_input_len": "input length (tokens)",
        "random_output_len": "output length (tokens)",
    }.get(name, name.replace("_", " "))


def _sweep_note(sweeps: Sequence[Sweep]) -> str | None:
    parts = []
    for sweep in sweeps:
        if sweep.sla is not None:
            parts.append(f"{sweep.name}: SLA at {sweep.sla.param}={sweep.sla.value:g} (diamond)")
    if any(
        m.n > 1 and m.ci_low is not None
        for s in sweeps
        for p in s.points
        for m in p.metrics.values()
    ):
        parts.append("vertical bars: confidence interval over the repeats")
    return "; ".join(parts) or None


# -- helpers: altair --------------------------------------------------------------------


def _alt() -> Any:
    try:
        import altair
    except ImportError:
        raise UsageError(
            "missing package",
            where="altair",
            why="anyio-llmreq report needs the report extra",
            hint="Install it with: pip install 'anyio-llmreq[report]'",
        ) from None
    return altair


def _names(runs: Sequence[Run]) -> list[str]:
    return [run.name for run in runs]


def _run_color(alt: Any, names: list[str], present: list[str]) -> Any:
    """Colour by run: each run keeps its colour (its place in *names*) in every chart,
    and a chart's legend lists only the runs it has data for."""
    colors = [_PALETTE[names.index(n) % len(_PALETTE)] for n in present]
    return alt.Color("run:N", title="run", scale=alt.Scale(domain=present, range=colors))


def _present(names: list[str], rows: Iterable[dict[str, Any]]) -> list[str]:
    found = {row["run"] for row in rows}
    return [n for n in names if n in found]


def _scatter(
    alt: Any,
    ds: _Datasets,
    runs: Sequence[Run],
    rows: list[dict[str, Any]],
    y: str,
    title: str,
    extra: Sequence[str] = (),
) -> Any:
    names = _names(runs)
    tooltip = [
        "run:N",
        "request:Q",
        alt.Tooltip("t:Q", format=".3f", title="start (s)"),
        alt.Tooltip(y, format=".2f", title=title),
    ] + [alt.Tooltip(f"{e}:Q", format=".2f") for e in extra]
    return (
        alt.Chart(ds(rows))
        .mark_circle(size=14, opacity=0.6)
        .encode(
            x=alt.X("t:Q", title=_TIME_TITLE),
            y=alt.Y(y, title=title),
            color=_run_color(alt, names, _present(names, rows)),
            tooltip=tooltip,
        )
        .properties(width=_WIDTH, height=_HEIGHT)
    )


def _time_line(
    alt: Any,
    ds: _Datasets,
    runs: Sequence[Run],
    rows: list[dict[str, Any]],
    title: str,
    step: float,
) -> Any:
    names = _names(runs)
    return (
        alt.Chart(ds(rows))
        .mark_line(interpolate="step-after")
        .encode(
            x=alt.X("t:Q", title=_TIME_TITLE),
            y=alt.Y("value:Q", title=title),
            color=_run_color(alt, names, _present(names, rows)),
            tooltip=[
                "run:N",
                alt.Tooltip("t:Q", title="from (s)"),
                alt.Tooltip("value:Q", format=".2f"),
            ],
        )
        .properties(width=_WIDTH, height=_HEIGHT)
    )


def _panel(
    alt: Any,
    ds: _Datasets,
    rows: list[dict[str, Any]],
    names: list[str],
    present: list[str],
    domain: list[float],
    title: str,
    unit: str,
    interpolate: str,
    *,
    axis: bool,
) -> Any:
    # Stacked panels share the time axis: only the bottom one labels it.
    x_axis = alt.Axis(title=_TIME_TITLE) if axis else alt.Axis(title=None, labels=False)
    return (
        alt.Chart(ds(rows))
        .mark_line(interpolate=interpolate, point=len(rows) < 60)
        .encode(
            x=alt.X("t:Q", axis=x_axis, scale=alt.Scale(domain=domain)),
            y=alt.Y("value:Q", title=unit),
            color=_run_color(alt, names, present),
            tooltip=[
                "run:N",
                alt.Tooltip("t:Q", format=".2f", title="t (s)"),
                alt.Tooltip("value:Q", format=".3g"),
            ],
        )
        .properties(
            width=_WIDE - 60,
            height=100,
            title=alt.TitleParams(text=title, fontSize=12, fontWeight="normal"),
        )
    )


class _Datasets:
    """A chart's data, kept out of altair (which checks every row of inline data, ~0.1 ms
    each) and set as the spec's top-level ``datasets``, referred to by name."""

    def __init__(self, alt: Any) -> None:
        self._alt = alt
        self.values: dict[str, list[dict[str, Any]]] = {}

    def __call__(self, rows: list[dict[str, Any]]) -> Any:
        name = f"data-{len(self.values)}"
        self.values[name] = rows
        return self._alt.Data(name=name)


def _chart(
    alt: Any,
    ds: _Datasets,
    chart: Any,
    id: str,
    section: str,
    title: str,
    note: str | None = None,
) -> Chart:
    params = alt.TitleParams(text=title, subtitle=note) if note else alt.TitleParams(text=title)
    spec: dict[str, Any] = chart.properties(title=params).to_dict(validate=False)
    spec["config"] = _CONFIG
    spec["datasets"] = ds.values
    return Chart(id=id, section=section, title=title, spec=spec)


def _unique_ids(charts: list[Chart]) -> list[Chart]:
    seen: set[str] = set()
    out = []
    for chart in charts:
        id, n = chart.id, 2
        while id in seen:
            id, n = f"{chart.id}-{n}", n + 1
        seen.add(id)
        out.append(attrs.evolve(chart, id=id))
    return out


def _stat_rank(stat: str) -> tuple[int, float]:
    if stat == "mean":
        return (0, 0.0)
    if stat == "median":
        return (1, 50.0)
    return (1, float(stat[1:]))


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"
