"""``run_benchmark``: one run through the stages, from a ``BenchConfig`` to a
``BenchmarkResult``, each stage entered once.

The order is vLLM's: resolve the server and model, load the tokenizer, plan the
workload (dataset, requests, schedule), optionally probe and warm up, execute, compute
the metrics, print the report and save the files. Nothing measured is lost on Ctrl-C
or SIGTERM: the executor stops with what finished, and the rest runs on that.
"""

from __future__ import annotations

from typing import IO, Any

import anyio
import attrs

from .._client import Client
from .._loops import loop_backend
from .._models import RequestFuncOutput
from ._config import BenchConfig, UsageError
from ._drive import run_client
from ._execute import Executor, RequestRecord
from ._limits import check_fd_budget, peak_streams, raise_fd_limit
from ._metrics import BenchmarkMetrics, measure
from ._plan import WorkloadPlan, attach_media, plan_workload
from ._records import RecordSink, write_result
from ._redact import Console, redact_url
from ._report import first_lines, intro_lines, outcome_lines, result_json, run_report
from ._selfcheck import SelfCheck
from ._server_metrics import require_prometheus_client, scrape_server_metrics
from ._setup import (
    check_environment,
    check_loop,
    get_ready,
    open_server,
    preload_counter,
    profile,
    resolve_target,
)
from ._tokens import TokenCounter, save_pending

__all__ = ["BenchmarkResult", "RunControls", "arun_benchmark", "run_benchmark"]


@attrs.frozen(kw_only=True)
class BenchmarkResult:
    """What a run measured.

    ``result`` is the result JSON as written (vLLM's keys plus ours; the per-request lists
    only with ``save_detailed``); ``records`` holds every finished request in request
    order; ``report`` the printed lines.
    """

    config: BenchConfig
    metrics: BenchmarkMetrics
    result: dict[str, Any]
    records: list[RequestRecord]
    self_check: SelfCheck
    report: list[str]
    duration: float
    interrupted: bool
    not_finished: int
    result_path: str | None
    base_url: str = attrs.field(repr=redact_url)
    model_id: str
    input_tokens_source: str
    #: The signal (SIGINT, SIGTERM) that stopped the run, if one did.
    stop_signal: int | None = None

    @property
    def outputs(self) -> list[RequestFuncOutput]:
        return [r.output for r in self.records]


@attrs.frozen(kw_only=True)
class RunControls:
    """How a caller steers a run: *stop_after* finished requests stop it (as Ctrl-C
    would); *handle_signals* lets SIGINT/SIGTERM stop it; *executor* replaces the one
    ``--workers`` selects."""

    stop_after: int | None = None
    handle_signals: bool = True
    executor: Executor | None = None


async def arun_benchmark(
    config: BenchConfig,
    *,
    stop_after: int | None = None,
    stdout: IO[str] | None = None,
    handle_signals: bool = True,
    executor: Executor | None = None,
) -> BenchmarkResult:
    """Run the benchmark described by *config* in the running event loop.

    *stop_after* stops the run (as Ctrl-C would) once that many requests finished.
    With *handle_signals*, SIGINT and SIGTERM stop the run the same way. *executor*
    runs the plan instead of the local or multi-process one ``config.workers`` selects.

    Raises:
        UsageError: a mistake in the flags, a file, the tokenizer, or the server they
            point at (the flag, file or URL, and what to try), found before the run.
        ConfigError: an unknown backend, or requests the backend can't build.
        RuntimeError: the ready check failed.
    """
    from .._compat import OPENAI_COMPATIBLE_BACKENDS
    from ..backends._registry import get_backend

    config.validate(set(OPENAI_COMPATIBLE_BACKENDS))
    get_backend(config.backend)  # ConfigError early for an unknown name
    check_environment(config)
    if config.server_metrics is not None:
        require_prometheus_client()
    raise_fd_limit()  # one socket per stream: 1024 (a common soft limit) is not enough
    console = Console(config.scrubber(), stdout, config.quiet)
    console.say_lines(first_lines(config))
    # Before any server starts: a tokenizer that can't load stops the bench at once.
    counter = preload_counter(config, console)
    controls = RunControls(stop_after=stop_after, handle_signals=handle_signals, executor=executor)
    failure: Exception | None = None
    async with open_server(config) as base_url:
        try:
            return await _run(config, base_url, console, controls, counter)
        except (ValueError, RuntimeError) as exc:
            # Re-raised below, outside the embedded server's task group, which would
            # wrap it in an exception group: the caller sees the error itself.
            failure = exc
    assert failure is not None
    if isinstance(failure, UsageError):
        raise failure.scrubbed(console.scrub.text) from None
    clean = console.scrub.exception(failure)
    if clean is failure:
        raise failure
    raise clean from None  # the original's message holds a secret: not even as context


async def _run(
    config: BenchConfig,
    base_url: str,
    console: Console,
    controls: RunControls,
    counter: tuple[TokenCounter, str] | None,
) -> BenchmarkResult:
    target = await resolve_target(config, base_url, console, counter)
    plan = plan_workload(config, target)
    burst = plan.ramp_up is None
    peak = peak_streams(len(plan.requests), plan.max_concurrency, plan.request_rate, burst)
    # The embedded server's end of each connection is in this process too.
    both_ends = config.embedded and plan.workers == 1
    check_fd_budget(peak, plan.workers, per_stream=2 if both_ends else 1)
    plan = await anyio.to_thread.run_sync(attach_media, plan)
    console.say_lines(intro_lines(config, plan))
    with RecordSink(config, console.scrub, len(plan.requests)) as sink:
        async with run_client(plan.timeouts, target.verify) as client:
            await get_ready(config, client, plan, console)
            if config.profile:
                await profile(config, target, "start", console)
            async with scrape_server_metrics(config, target, console) as scraper:
                sink.start_progress()
                executor = controls.executor or _executor(config, plan, client, controls)
                execution = await scraper.during(executor.run(plan, sink))
                if plan.sessions:
                    from ._sessions import turns_not_sent

                    skipped = turns_not_sent(plan, execution.records)
                    execution = attrs.evolve(execution, skipped=skipped)
                server = await scraper.finish(execution)
            if config.profile:
                # Even after Ctrl-C: a server left profiling fills its disk.
                with anyio.move_on_after(30, shield=True):
                    await profile(config, target, "stop", console)
    measured = measure(config, plan, execution)
    console.say_lines(outcome_lines(execution, measured))
    report = run_report(config, plan, execution, measured, server=server)
    console.say_lines(report)
    result = console.scrub.data(result_json(config, plan, execution, measured, server=server))
    path = write_result(config, plan, execution, result)
    if path is not None:
        console.say(f"Saved the result to {path}")
    # A first load's tokenizer cache is checked and written now, after the measured part.
    await anyio.to_thread.run_sync(save_pending)
    outcome = BenchmarkResult(
        config=config,
        metrics=measured.metrics,
        result=result,
        records=execution.records,
        self_check=measured.self_check,
        report=report,
        duration=execution.duration,
        interrupted=execution.interrupted,
        not_finished=execution.not_finished,
        result_path=path,
        base_url=base_url,
        model_id=target.model_id,
        input_tokens_source=target.counter.kind,
        stop_signal=execution.stop_signal,
    )
    if config.report is not None:
        # The page draws distributions and timelines from the per-request lists, which
        # the result file holds only with --save-detailed.
        full = attrs.evolve(config, save_detailed=True)
        detailed = result_json(full, plan, execution, measured, server=server)
        await anyio.to_thread.run_sync(_write_report, console.scrub.data(detailed), config.report)
        console.say(f"Wrote the report to {config.report}")
    return outcome


def _write_report(result: dict[str, Any], path: str) -> None:
    from ..report import write_report

    write_report(result, path)


def _executor(
    config: BenchConfig, plan: WorkloadPlan, client: Client, controls: RunControls
) -> Executor:
    """Ray actors (``--executor ray``); else in this process with the warmed-up client,
    or across ``plan.workers`` processes."""
    if config.executor == "ray":
        from ._ray import RayExecutor, require_ray

        require_ray()  # before anything else: a missing extra is a usage error
        return RayExecutor(
            address=config.ray_address,
            workers_per_node=config.workers_per_node,
            stop_after=controls.stop_after,
            handle_signals=controls.handle_signals,
        )
    if plan.workers == 1:
        from ._drive import LocalExecutor

        return LocalExecutor(
            client, stop_after=controls.stop_after, handle_signals=controls.handle_signals
        )
    from ._workers import WorkerExecutor

    return WorkerExecutor(handle_signals=controls.handle_signals)


def run_benchmark(
    config: BenchConfig, *, stop_after: int | None = None, stdout: IO[str] | None = None
) -> BenchmarkResult:
    """Run the benchmark described by *config* in a new event loop (``config.loop``).

    See ``arun_benchmark`` for the arguments and errors.
    """
    check_loop(config.loop)  # before anyio.run would fail to import it
    backend, options = loop_backend(config.loop)

    async def main() -> BenchmarkResult:
        return await arun_benchmark(config, stop_after=stop_after, stdout=stdout)

    return anyio.run(main, backend=backend, backend_options=options)
