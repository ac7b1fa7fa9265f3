"""The report page: one HTML file with the Vega JavaScript, the specs and the styles
inline, so it opens anywhere with no network, and the tables (headline metrics, client
self-check, errors, sweep points) as plain HTML."""

from __future__ import annotations

import datetime
import html
import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from ..__version__ import __version__
from ._charts import METRICS, Chart, _stat_rank, short_error
from ._load import ReportData, Run, Sweep

__all__ = ["render_html"]

_KIND_TEXT = {"anyio-llmreq": "result", "vllm": "vLLM result", "jsonl": "per-request log"}

# (key, row title) of the headline table, before the latency statistics.
_HEADLINE = (
    ("model_id", "model"),
    ("backend", "backend"),
    ("date", "date"),
    ("request_rate", "request rate (req/s)"),
    ("max_concurrency", "max concurrency"),
    ("duration", "duration (s)"),
    ("completed", "successful requests"),
    ("failed", "failed requests"),
    ("total_input_tokens", "input tokens"),
    ("total_output_tokens", "output tokens"),
    ("request_throughput", "request throughput (req/s)"),
    ("request_goodput", "request goodput (req/s)"),
    ("output_throughput", "output throughput (tok/s)"),
    ("total_token_throughput", "total token throughput (tok/s)"),
    ("max_output_tokens_per_s", "peak output throughput (tok/s)"),
    ("max_concurrent_requests", "peak concurrent requests"),
)
_SELF_CHECK = (
    ("client_verdict", "verdict"),
    ("client_send_lag_p50_ms", "send lag P50 (ms)"),
    ("client_send_lag_p99_ms", "send lag P99 (ms)"),
    ("client_send_lag_max_ms", "send lag max (ms)"),
    ("client_loop_lag_p50_ms", "event-loop lag P50 (ms)"),
    ("client_loop_lag_p99_ms", "event-loop lag P99 (ms)"),
    ("client_loop_lag_max_ms", "event-loop lag max (ms)"),
    ("client_queue_time_p99_ms", "client queue time P99 (ms)"),
    ("client_cpu_fraction", "client CPU (cores)"),
    ("client_cpu_s", "client CPU time (s)"),
    ("client_processes", "client processes"),
    ("client_cpu_includes_server", "CPU includes the mock server"),
    ("loop", "event loop"),
    ("client_warnings", "warnings"),
    ("client_advice", "advice"),
)
_SECTIONS = (
    ("summary", "Summary"),
    ("distribution", "Latency distributions"),
    ("time", "Over the run"),
    ("errors", "Errors"),
    ("client", "Client self-check"),
    ("server", "Server metrics"),
)
_STAT = re.compile(r"^(mean|median|p\d+(?:\.\d+)?)_(ttft|tpot|itl|e2el)_ms$")

_CSS = """
:root { color-scheme: light; --ink: #1d1f21; --muted: #5f6368; --line: #e2e4e8;
  --ok: #1e7e34; --warn: #b35900; --bad: #b3261e; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--ink); background: #fafafa; }
main { max-width: 1180px; margin: 0 auto; padding: 20px 24px 60px; }
header h1 { font-size: 22px; margin: 0 0 4px; }
.meta, .note, figcaption { color: var(--muted); }
nav { margin: 10px 0 18px; display: flex; flex-wrap: wrap; gap: 6px 14px; }
nav a { color: #1a5fb4; text-decoration: none; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px;
  padding: 14px 18px; margin: 16px 0; }
h2 { font-size: 18px; margin: 2px 0 10px; }
h3 { font-size: 15px; margin: 18px 0 8px; }
.charts { display: flex; flex-wrap: wrap; gap: 18px 22px; align-items: flex-start; }
figure.chart { margin: 0; min-height: 60px; max-width: 100%; overflow-x: auto; }
.wide { overflow-x: auto; }
.tables { display: flex; flex-wrap: wrap; gap: 12px 28px; align-items: flex-start; }
.scroll { overflow-x: auto; max-height: 420px; overflow-y: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: right;
  vertical-align: top; }
th:first-child, td.text { text-align: left; }
td { white-space: nowrap; }
.ci { color: var(--muted); font-size: 12px; }
.charts { margin-top: 12px; }
thead th { position: sticky; top: 0; background: #f3f4f6; }
td.msg { text-align: left; max-width: 640px; white-space: pre-wrap; word-break: break-word; }
.ok { color: var(--ok); font-weight: 600; }
.warn { color: var(--warn); font-weight: 600; }
.bad { color: var(--bad); font-weight: 600; }
ul.notes { margin: 6px 0; padding-left: 20px; }
code { font-size: 12px; }
"""

_EMBED = """
(function () {
  var specs = JSON.parse(document.getElementById("report-specs").textContent);
  var options = {renderer: "svg",
    actions: {export: true, source: false, compiled: false, editor: false}};
  Object.keys(specs).forEach(function (id) {
    var el = document.getElementById(id);
    vegaEmbed(el, specs[id], options).catch(function (err) {
      el.textContent = "This chart could not be drawn: " + err;
      console.error(err);
    });
  });
})();
"""


def render_html(
    data: ReportData,
    charts: Sequence[Chart],
    *,
    bundle: str | None = None,
    title: str | None = None,
    now: datetime.datetime | None = None,
) -> str:
    """The report page for *data* and its *charts*, with *bundle* (the Vega JavaScript,
    default ``javascript_bundle()``) inlined."""
    if bundle is None:
        from ._export import javascript_bundle

        bundle = javascript_bundle()
    title = title or _default_title(data)
    now = now or datetime.datetime.now().astimezone()
    by_section: dict[str, list[Chart]] = {}
    for chart in charts:
        by_section.setdefault(chart.section, []).append(chart)
    body = [_header(title, data, now)]
    body.append(_inputs(data))
    if data.sweeps:
        body.append(_sweeps(data.sweeps, by_section.get("sweep", [])))
    if data.runs:
        body.append(_runs(data.runs, by_section))
    specs = {f"chart-{chart.id}": chart.spec for chart in charts}
    specs_json = json.dumps(specs, allow_nan=False, separators=(",", ":")).replace("<", "\\u003c")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta name="generator" content="anyio-llmreq ' + _e(__version__) + '">',
            f"<title>{_e(title)}</title>",
            f"<style>{_CSS}</style>",
            "</head>",
            "<body>",
            "<main>",
            *body,
            f'<footer class="note">Made by anyio-llmreq {_e(__version__)}. Charts drawn '
            "with Vega-Lite, embedded in this file: it needs no network.</footer>",
            "</main>",
            "<noscript><p>The charts need JavaScript. <code>anyio-llmreq report --svg DIR"
            "</code> writes them as image files.</p></noscript>",
            f'<script type="application/json" id="report-specs">{specs_json}</script>',
            f"<script>{bundle}</script>",
            f"<script>{_EMBED}</script>",
            "</body>",
            "</html>",
        ]
    )


# -- page parts -------------------------------------------------------------------------


def _default_title(data: ReportData) -> str:
    names = [s.name for s in data.sweeps] + [r.name for r in data.runs]
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    return f"Benchmark report: {shown}"


def _header(title: str, data: ReportData, now: datetime.datetime) -> str:
    links = [("inputs", "Inputs")]
    if data.sweeps:
        links.append(("sweeps", "Sweeps"))
    if data.runs:
        links.append(("runs", "Runs"))
    nav = " ".join(f'<a href="#{id}">{_e(text)}</a>' for id, text in links)
    stamp = now.strftime("%Y-%m-%d %H:%M %Z").strip()
    return (
        f"<header><h1>{_e(title)}</h1>"
        f'<p class="meta">Made {_e(stamp)} from {len(data.runs)} run(s) and '
        f"{len(data.sweeps)} sweep(s).</p><nav>{nav}</nav></header>"
    )


def _inputs(data: ReportData) -> str:
    rows = []
    for sweep in data.sweeps:
        n = sum(len(p.runs) for p in sweep.points)
        rows.append(
            [
                _text(sweep.source),
                _text("sweep"),
                _text(sweep.name),
                _num(len(sweep.points)),
                _text(f"{n} result file(s)"),
            ]  # fmt: skip
        )
    for run in data.runs:
        detail = "per-request lists" if run.detailed else "summary only"
        if run.detailed and not run.timed:
            detail = "per-request lists, no start times"
        if run.server is not None:
            detail += ", server metrics"
        rows.append(
            [
                _text(run.source),
                _text(_KIND_TEXT[run.kind]),
                _text(run.name),
                _num(len(run.requests) if run.requests is not None else _requests(run)),
                _text(detail),
            ]  # fmt: skip
        )
    table = _table(["file", "kind", "name", "requests / points", "has"], rows)
    notes = _notes(data)
    return (
        f'<section id="inputs"><h2>Inputs</h2><div class="scroll">{table}</div>'
        + (f'<ul class="notes">{notes}</ul>' if notes else "")
        + "</section>"
    )


def _notes(data: ReportData) -> str:
    notes = []
    summary_only = [r.name for r in data.runs if not r.detailed]
    if summary_only:
        notes.append(
            f"{_names(summary_only)}: no per-request lists (the bench's --save-detailed "
            "writes them), so summary charts only: no distributions, nothing over time."
        )
    untimed = [r.name for r in data.runs if r.detailed and not r.timed]
    if untimed:
        notes.append(
            f"{_names(untimed)}: no request start times (older vLLM result files), so "
            "nothing over time."
        )
    from_results = [r.name for r in data.runs if r.detailed and r.kind != "jsonl"]
    if from_results:
        notes.append(
            "Per-request E2EL from a result file is the last token's arrival (TTFT plus "
            "the ITLs): the files hold no per-request latency."
        )
    for run in data.runs:
        if run.server is not None and run.server.failures:
            notes.append(
                f"{_e(run.name)}: {len(run.server.failures)} server metrics scrape(s) "
                f"failed, e.g. {_e(short_error(run.server.failures[0], 200))}"
            )
    return "".join(f"<li>{n}</li>" for n in notes)


def _sweeps(sweeps: Sequence[Sweep], charts: Sequence[Chart]) -> str:
    parts = ['<section id="sweeps"><h2>Sweeps</h2>']
    for sweep in sweeps:
        parts.append(f"<h3>{_e(sweep.name)}</h3>")
        facts = [f"mode <b>{_e(sweep.mode)}</b>"]
        if sweep.swept:
            facts.append("swept " + ", ".join(f"<code>{_e(s)}</code>" for s in sweep.swept))
        if sweep.slo:
            facts.append("SLOs: " + "; ".join(_e(s.text) for s in sweep.slo))
        if sweep.sla is not None:
            facts.append(
                f'<span class="ok">SLA: {_e(sweep.sla.param)} = {sweep.sla.value:g}'
                "</span> (the highest load that met every SLO)"
            )
        elif sweep.mode == "sla":
            facts.append('<span class="bad">no load met every SLO</span>')
        if sweep.stopped:
            facts.append(f"stopped: {_e(sweep.stopped)}")
        parts.append(f"<p>{'. '.join(facts)}.</p>")
        parts.append(f'<div class="scroll">{_points_table(sweep)}</div>')
    parts.append(_chart_divs(charts))
    parts.append("</section>")
    return "".join(parts)


def _points_table(sweep: Sweep) -> str:
    params = list(dict.fromkeys(k for p in sweep.points for k in p.params))
    wanted = [
        "request_throughput", "output_throughput", "request_goodput", "p99_ttft_ms",
        "median_tpot_ms", "p99_itl_ms", "p99_e2el_ms",
    ]  # fmt: skip
    wanted += [s.key for s in sweep.slo if s.key is not None and s.key not in wanted]
    keys = [k for k in wanted if any(p.stat(k) is not None for p in sweep.points)]
    rows = []
    for point in sweep.points:
        row = [_text(_param(point.params.get(name))) for name in params]
        for key in keys:
            stat = point.stat(key)
            if stat is None:
                row.append(_text("–"))
            elif stat.ci_low is not None and stat.ci_high is not None and stat.n > 1:
                spread = (stat.ci_high - stat.ci_low) / 2
                row.append(
                    f'<td>{_e(_fmt(stat.mean))} <span class="ci">± {_e(_fmt(spread))}</span></td>'
                )
            else:
                row.append(_num(stat.mean))
        row.append(_num(max((s.n for s in point.metrics.values()), default=len(point.runs))))
        row.append(_verdict({True: "met", False: "missed", None: "–"}[point.slo_ok]))
        rows.append(row)
    heads = params + [_key_title(k) for k in keys] + ["repeats", "SLOs"]
    return _table(heads, rows)


def _runs(runs: Sequence[Run], by_section: dict[str, list[Chart]]) -> str:
    parts = ['<section id="runs"><h2>Runs</h2>']
    for section, heading in _SECTIONS:
        charts = by_section.get(section, [])
        extra = ""
        if section == "summary":
            extra = f'<div class="wide">{_headline(runs)}</div>'
        elif section == "errors":
            extra = _errors(runs)
        elif section == "client":
            extra = _self_check(runs)
        if not charts and not extra:
            continue
        parts.append(f'<h3 id="runs-{section}">{heading}</h3>{extra}{_chart_divs(charts)}')
    parts.append("</section>")
    return "".join(parts)


def _headline(runs: Sequence[Run]) -> str:
    """The run facts and throughputs (a row each, a column per run) beside the latency
    statistics (a row per metric and run, a column per statistic)."""
    keys = [(k, t) for k, t in _HEADLINE if any(_present(r.summary.get(k)) for r in runs)]
    rows = [[_text(title)] + [_value(r.summary.get(key)) for r in runs] for key, title in keys]
    facts = _table(["metric"] + [r.name for r in runs], rows)
    found: dict[tuple[str, str], None] = {}
    for run in runs:
        for key in run.summary:
            match = _STAT.match(key)
            if match and run.number(key) is not None:
                found[(match.group(2), match.group(1))] = None
    stats = sorted({stat for _, stat in found}, key=_stat_rank)
    latency_rows = []
    for metric in METRICS:
        if not any(m == metric for m, _ in found):
            continue
        for run in runs:
            cells = [_text(METRICS[metric][0]), _text(run.name)]
            cells += [_value(run.number(f"{stat}_{metric}_ms")) for stat in stats]
            latency_rows.append(cells)
    if not latency_rows:
        return facts
    latency = _table(["latency (ms)", "run"] + stats, latency_rows)
    return f'<div class="tables">{facts}{latency}</div>'


def _self_check(runs: Sequence[Run]) -> str:
    ours = [r for r in runs if r.kind == "anyio-llmreq"]
    if not ours:
        return (
            '<p class="note">The client self-check comes with anyio-llmreq result files '
            "(vLLM's and the per-request logs have none).</p>"
        )
    keys = [(k, t) for k, t in _SELF_CHECK if any(_present(r.summary.get(k)) for r in ours)]
    rows = []
    for key, title in keys:
        cells = [_text(title)]
        for run in ours:
            value = run.summary.get(key)
            cells.append(_verdict(value) if key == "client_verdict" else _value(value))
        rows.append(cells)
    table = _table(["self-check"] + [r.name for r in ours], rows)
    others = [r.name for r in runs if r.kind != "anyio-llmreq"]
    note = (
        f'<p class="note">{_names(others)}: no self-check (not an anyio-llmreq result).</p>'
        if others
        else ""
    )
    return (
        '<p class="note">Is the client itself the bottleneck? Send lag: how late requests '
        "left against their schedule; event-loop lag: how late a timer woke while requests "
        "were in flight. Over the limits, the latencies include client delay.</p>"
        f'<div class="scroll">{table}</div>{note}'
    )


def _errors(runs: Sequence[Run]) -> str:
    groups: dict[tuple[str, str], list[float]] = {}
    failed_total = 0
    for run in runs:
        failed_total += int(run.number("failed") or 0)
        for r in run.requests or ():
            if not r.success:
                groups.setdefault((run.name, r.error or "(no message)"), []).append(
                    r.start if r.start is not None else math.nan
                )
    if not groups:
        if failed_total:
            return (
                f'<p class="note">{failed_total} request(s) failed; the files have no '
                "per-request errors (--save-detailed writes them).</p>"
            )
        return '<p class="note">No request failed.</p>'
    rows = []
    ordered = sorted(groups.items(), key=lambda item: -len(item[1]))
    for (name, message), starts in ordered[:50]:
        timed = [t for t in starts if not math.isnan(t)]
        rows.append(
            [
                _text(name),
                _num(len(starts)),
                _num(min(timed)) if timed else _text("–"),
                _num(max(timed)) if timed else _text("–"),
                f'<td class="msg">{_e(message[:1000])}</td>',
            ]  # fmt: skip
        )
    more = (
        f'<p class="note">{len(ordered) - 50} more distinct messages not shown.</p>'
        if len(ordered) > 50
        else ""
    )
    table = _table(["run", "failed", "first at (s)", "last at (s)", "error"], rows)
    return f'<div class="scroll">{table}</div>{more}'


def _chart_divs(charts: Iterable[Chart]) -> str:
    divs = "".join(
        f'<figure class="chart" id="chart-{_e(c.id)}" aria-label="{_e(c.title)}"></figure>'
        for c in charts
    )
    return f'<div class="charts">{divs}</div>' if divs else ""


# -- cells ------------------------------------------------------------------------------


def _table(heads: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in heads)
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _text(text: str) -> str:
    return f'<td class="text">{_e(text)}</td>'


def _cell(text: str) -> str:
    return f"<td>{_e(text)}</td>"


def _num(value: float | int) -> str:
    return _cell(_fmt(value))


def _value(value: Any) -> str:
    if value is None or value == []:
        return _cell("–")
    if isinstance(value, bool):
        return _cell("yes" if value else "no")
    if isinstance(value, (int, float)):
        return _num(value)
    if isinstance(value, list):
        return f'<td class="msg">{_e("; ".join(str(v) for v in value))}</td>'
    return _text(str(value))


def _verdict(value: Any) -> str:
    text = str(value) if value is not None else "–"
    css = {"kept_up": "ok", "met": "ok", "missed": "bad", "no_success": "bad"}.get(text, "warn")
    if text in ("–", "n/a"):
        css = ""
    return f'<td class="text {css}">{_e(text.replace("_", " "))}</td>'


def _fmt(value: float | int) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return "inf" if value > 0 else "–"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _param(value: Any) -> str:
    return "–" if value is None else str(value)


def _present(value: Any) -> bool:
    return value is not None and value != [] and value != ""


def _requests(run: Run) -> int:
    return int((run.number("completed") or 0) + (run.number("failed") or 0))


def _key_title(key: str) -> str:
    match = _STAT.match(key)
    if match is None:
        return {
            "request_throughput": "request throughput (req/s)",
            "output_throughput": "output throughput (tok/s)",
            "request_goodput": "goodput (req/s)",
        }.get(key, key)
    stat, metric = match.groups()
    return f"{stat} {METRICS[metric][0]} (ms)"


def _names(names: Sequence[str]) -> str:
    return ", ".join(f"<b>{_e(n)}</b>" for n in names)


def _e(text: str) -> str:
    return html.escape(text, quote=True)
