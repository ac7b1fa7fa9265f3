"""``anyio-llmreq report``: a self-contained HTML report (Vega-Lite charts, the JavaScript
inlined, no network needed to open it) from bench result files, vLLM's result files,
``--output-jsonl`` logs and sweep summaries, several overlaid to compare them.

==============  ==============================================================
module          what
==============  ==============================================================
``_load``       files -> ``ReportData`` (``Run``, ``Sweep``), kinds told by content
``_charts``     ``ReportData`` -> ``Chart`` (one function per chart, altair); the
                charts of one feature in their own module: ``_phases`` (where TTFT
                goes, reasoning), ``_turns`` (latency by turn), ``_trace`` (replay:
                offered vs achieved)
``_html``       the page: charts, tables, notes
``_export``     the inlined Vega JavaScript; charts as SVG/PNG files (vl-convert)
``_write``      ``write_report``: all of the above in one call
``_cli``        the ``report`` subcommand
==============  ==============================================================

Needs the ``report`` extra (``pip install 'anyio-llmreq[report]'``).
"""

from __future__ import annotations

from ._charts import Chart as Chart
from ._charts import build_charts as build_charts
from ._export import export_charts as export_charts
from ._html import render_html as render_html
from ._load import ReportData as ReportData
from ._load import RequestTiming as RequestTiming
from ._load import Run as Run
from ._load import ServerMetrics as ServerMetrics
from ._load import ServerSeries as ServerSeries
from ._load import Sla as Sla
from ._load import Slo as Slo
from ._load import Stat as Stat
from ._load import Sweep as Sweep
from ._load import SweepPoint as SweepPoint
from ._load import load_inputs as load_inputs
from ._write import Report as Report
from ._write import write_report as write_report

__all__ = (
    "Chart",
    "Report",
    "ReportData",
    "RequestTiming",
    "Run",
    "ServerMetrics",
    "ServerSeries",
    "Sla",
    "Slo",
    "Stat",
    "Sweep",
    "SweepPoint",
    "build_charts",
    "export_charts",
    "load_inputs",
    "render_html",
    "write_report",
)
