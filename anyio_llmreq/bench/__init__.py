"""The serving benchmark behind ``anyio-llmreq bench`` (vLLM ``benchmark_serving``
compatible), as a one-way pipeline of stages with typed data between them:

==============  ===============  =============================================
stage           module           in -> out
==============  ===============  =============================================
configuration   ``_config``      flags -> ``BenchConfig`` (``_cli`` derives the
                                 parser from its fields)
setup           ``_setup``       config -> server URL, ``Target``; ready check
                                 and warmup
workload plan   ``_plan``        config + target -> ``WorkloadPlan`` (datasets
                                 in ``_datasets``, schedule in ``_schedule``;
                                 conversations in ``_sessions``, trace times
                                 in ``_trace``)
execution       ``_execute``     plan -> ``Execution`` through an ``Executor``:
                                 ``_drive.LocalExecutor``,
                                 ``_workers.WorkerExecutor``,
                                 ``_ray.RayExecutor``; a multi-turn plan's
                                 sessions run turn by turn
                                 (``_sessions.run_session``)
records         ``_records``     each ``RequestRecord`` as it finishes (JSONL,
                                 progress), the result JSON file
server metrics  ``_server_       the server's Prometheus page before, during and
                metrics``        after the run -> ``server_metrics``
metrics         ``_metrics``     execution -> ``Measured`` (per turn:
                                 ``_sessions``; HTTP phases and reasoning:
                                 ``_phases``; replay lag: ``_trace``)
report          ``_report``      everything -> printed lines, result JSON
==============  ===============  =============================================

``_run`` drives a config through them once. A new dataset is a sampler module named
in ``_datasets._SAMPLERS`` (the ``hf``, multimodal and other vLLM datasets live in
``_hf_datasets``, ``_mm_datasets`` and ``_extra_datasets``); a new executor is one new
module with a class satisfying ``Executor`` that splits the plan with
``_workers.worker_specs`` and runs each share with ``_workers.drive_spec`` (as the
process and Ray executors do), passed as ``arun_benchmark(..., executor=...)``; the HTML
report (``anyio_llmreq.report``) reads the saved result JSON. Credentials are kept out of
every output by ``_redact``.
"""

from __future__ import annotations

from ._config import BenchConfig as BenchConfig
from ._config import default_endpoint as default_endpoint
from ._datasets import SampleRequest as SampleRequest
from ._drive import LocalExecutor as LocalExecutor
from ._execute import Execution as Execution
from ._execute import Executor as Executor
from ._execute import PhaseStats as PhaseStats
from ._execute import RequestRecord as RequestRecord
from ._metrics import BenchmarkMetrics as BenchmarkMetrics
from ._metrics import Measured as Measured
from ._metrics import calculate_metrics as calculate_metrics
from ._metrics import measure as measure
from ._metrics import parse_goodput as parse_goodput
from ._plan import ScheduledRequest as ScheduledRequest
from ._plan import Target as Target
from ._plan import WorkloadPlan as WorkloadPlan
from ._plan import plan_workload as plan_workload
from ._ray import RayExecutor as RayExecutor
from ._records import result_filename as result_filename
from ._report import format_report as format_report
from ._run import BenchmarkResult as BenchmarkResult
from ._run import arun_benchmark as arun_benchmark
from ._run import run_benchmark as run_benchmark
from ._schedule import RequestSchedule as RequestSchedule
from ._schedule import get_request_schedule as get_request_schedule
from ._selfcheck import SelfCheck as SelfCheck
from ._workers import WorkerExecutor as WorkerExecutor

__all__ = (
    "BenchConfig",
    "BenchmarkMetrics",
    "BenchmarkResult",
    "Execution",
    "Executor",
    "LocalExecutor",
    "Measured",
    "PhaseStats",
    "RayExecutor",
    "RequestRecord",
    "RequestSchedule",
    "SampleRequest",
    "ScheduledRequest",
    "SelfCheck",
    "Target",
    "WorkerExecutor",
    "WorkloadPlan",
    "arun_benchmark",
    "calculate_metrics",
    "default_endpoint",
    "format_report",
    "get_request_schedule",
    "measure",
    "parse_goodput",
    "plan_workload",
    "result_filename",
    "run_benchmark",
)
