"""``anyio-llmreq sweep``: the serving benchmark over many points, each one run through
``anyio_llmreq.bench.arun_benchmark``.

==============  ================  ================================================
part            module            what
==============  ================  ================================================
points          ``_space``        list sweeps and their cartesian product
statistics      ``_stats``        means and Student t 95% intervals over repeats
SLOs, search    ``_sla``          SLO parsing and evaluation; doubling + bisection
saturation      ``_saturation``   the synchronous/throughput/rates profile, and the
                                  signs of an over-saturated server
running         ``_run``          points through the bench, files, resume, console
command line    ``_cli``          every bench flag plus the sweep's
==============  ================  ================================================

Files: ``DIR/points/<point>-run<k>.json`` (the bench's result format, with the
per-request lists) and ``DIR/sweep.json``, rewritten after every point::

    {"kind": "anyio-llmreq-sweep", "version": 1, "mode": "list"|"saturation"|"sla",
     "swept": [names], "slo": [{"metric", "stat", "limit_ms"} | {"metric": "goodput",
     "min_fraction"}], "points": [{"params", "files", "metrics": {key: {"mean",
     "ci_low", "ci_high", "n"}}, "slo_ok"}], "sla": {"param", "value"} | null,
     "stopped": reason | null}
"""

from __future__ import annotations

from ._run import SLASearch as SLASearch
from ._run import SweepConfig as SweepConfig
from ._run import SweepPoint as SweepPoint
from ._run import SweepResult as SweepResult
from ._run import arun_sweep as arun_sweep
from ._run import run_sweep as run_sweep
from ._saturation import over_saturation as over_saturation
from ._saturation import saturation_rates as saturation_rates
from ._sla import BracketSearch as BracketSearch
from ._sla import GoodputSLO as GoodputSLO
from ._sla import LatencySLO as LatencySLO
from ._sla import Tolerance as Tolerance
from ._sla import parse_slo as parse_slo
from ._space import ParameterSpace as ParameterSpace
from ._stats import MetricSummary as MetricSummary
from ._stats import mean_ci as mean_ci
from ._stats import t_critical as t_critical

__all__ = (
    "BracketSearch",
    "GoodputSLO",
    "LatencySLO",
    "MetricSummary",
    "ParameterSpace",
    "SLASearch",
    "SweepConfig",
    "SweepPoint",
    "SweepResult",
    "Tolerance",
    "arun_sweep",
    "mean_ci",
    "over_saturation",
    "parse_slo",
    "run_sweep",
    "saturation_rates",
    "t_critical",
)
