"""The serving benchmark behind ``anyio-llmreq bench`` (vLLM ``benchmark_serving``
compatible): arrival schedule, run, metrics, report and result files."""

from __future__ import annotations

from ._config import BenchConfig as BenchConfig
from ._config import default_endpoint as default_endpoint
from ._datasets import SampleRequest as SampleRequest
from ._drive import RequestRecord as RequestRecord
from ._metrics import BenchmarkMetrics as BenchmarkMetrics
from ._metrics import calculate_metrics as calculate_metrics
from ._metrics import parse_goodput as parse_goodput
from ._report import format_report as format_report
from ._report import result_filename as result_filename
from ._run import BenchmarkResult as BenchmarkResult
from ._run import arun_benchmark as arun_benchmark
from ._run import run_benchmark as run_benchmark
from ._schedule import RequestSchedule as RequestSchedule
from ._schedule import get_request_schedule as get_request_schedule
from ._selfcheck import SelfCheck as SelfCheck

__all__ = (
    "BenchConfig",
    "BenchmarkMetrics",
    "BenchmarkResult",
    "RequestRecord",
    "RequestSchedule",
    "SampleRequest",
    "SelfCheck",
    "arun_benchmark",
    "calculate_metrics",
    "default_endpoint",
    "format_report",
    "get_request_schedule",
    "parse_goodput",
    "result_filename",
    "run_benchmark",
)
