"""Metrics stage: vLLM's ``calculate_metrics``, plus the token-count source, and
``measure``, which turns an ``Execution`` into everything the report shows.

Pure: numbers in, numbers out. Times in ``RequestFuncOutput`` are seconds; the ``*_ms``
fields are milliseconds.
"""

from __future__ import annotations

import argparse
import math
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import attrs

from .._models import RequestFuncOutput
from ._selfcheck import SelfCheck

if TYPE_CHECKING:
    from ._config import BenchConfig
    from ._execute import Execution
    from ._phases import PhaseSummary
    from ._plan import WorkloadPlan
    from ._sessions import SessionMetrics
    from ._trace import TraceReplay

__all__ = [
    "GOODPUT_METRICS",
    "BenchmarkMetrics",
    "Measured",
    "calculate_metrics",
    "measure",
    "parse_goodput",
    "peak_metrics",
]

MILLISECONDS_TO_SECONDS_CONVERSION = 1000
GOODPUT_METRICS = ("ttft", "tpot", "e2el")


@attrs.frozen(kw_only=True)
class BenchmarkMetrics:
    """The aggregate figures of one run (vLLM's ``BenchmarkMetrics`` field names).

    ``percentiles_X_ms`` are ``(p, value)`` pairs. ``output_tokens_sources`` counts, per
    successful request, where its output token count came from: ``"usage"`` (the
    server), ``"events"`` (token events), ``"tokenizer"``, ``"words"`` (whitespace
    words) or ``"none"`` (no counter: 1, as vLLM).

    ``total_input`` is vLLM's: the requests' ``prompt_len`` (the client's count; the
    server's for pooling backends). ``total_input_server`` sums the server's
    ``usage.prompt_tokens`` over the ``input_server_reported`` successful requests that
    reported one; ``None`` when none did.
    """

    completed: int
    failed: int
    total_input: int
    total_output: int
    request_throughput: float
    request_goodput: float
    output_throughput: float
    total_token_throughput: float
    mean_ttft_ms: float
    median_ttft_ms: float
    std_ttft_ms: float
    percentiles_ttft_ms: list[tuple[float, float]]
    mean_tpot_ms: float
    median_tpot_ms: float
    std_tpot_ms: float
    percentiles_tpot_ms: list[tuple[float, float]]
    mean_itl_ms: float
    median_itl_ms: float
    std_itl_ms: float
    percentiles_itl_ms: list[tuple[float, float]]
    mean_e2el_ms: float
    median_e2el_ms: float
    std_e2el_ms: float
    percentiles_e2el_ms: list[tuple[float, float]]
    max_output_tokens_per_s: float = 0.0
    max_concurrent_requests: int = 0
    rtfx: float = 0.0
    output_tokens_sources: dict[str, int] = attrs.Factory(dict)
    total_input_server: int | None = None
    input_server_reported: int = 0


def parse_goodput(slo_pairs: Iterable[str]) -> dict[str, float]:
    """Parse ``--goodput`` values (``KEY:VALUE``, milliseconds) into a dict.

    Raises:
        argparse.ArgumentTypeError: a bad format, an unknown name or a negative value.
    """
    config: dict[str, float] = {}
    try:
        for pair in slo_pairs:
            name, text = pair.split(":")
            config[name] = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            "Invalid format found for service level objectives. "
            'Specify service level objectives for goodput as "KEY:VALUE" '
            "pairs, where the key is a metric name, and the value is a "
            "number in milliseconds."
        ) from err
    for name, value in config.items():
        if name not in GOODPUT_METRICS:
            raise argparse.ArgumentTypeError(
                f"Invalid metric name found, {name}: {value}. "
                "The service level objective name should be one of "
                f"{GOODPUT_METRICS}."
            )
        if value < 0:
            raise argparse.ArgumentTypeError(
                f"Invalid value found, {name}: {value}. "
                "The service level objective value should be non-negative."
            )
    return config


def peak_metrics(outputs: Sequence[RequestFuncOutput]) -> tuple[float, int]:
    """Peak output tokens per second and peak concurrent requests (vLLM's one-second
    buckets over successful requests; every output event counts as one token)."""
    import numpy as np

    ok = [o for o in outputs if o.success]
    if not ok:
        return 0.0, 0
    t0 = min(o.start_time for o in ok)
    t_end = max(o.start_time + o.latency for o in ok)
    n = int(np.ceil(t_end - t0)) + 1
    tokens = np.zeros(n)
    concurrent = np.zeros(n)
    for o in ok:
        t = o.start_time + o.ttft
        times = [t]
        for gap in o.itl:
            t += gap
            times.append(t)
        for tt in times:
            bucket = int(tt - t0)
            if 0 <= bucket < n:
                tokens[bucket] += 1
        first = int(o.start_time - t0)
        last = int((o.start_time + o.latency) - t0)
        for s in range(first, last + 1):
            concurrent[s] += 1
    return float(np.max(tokens)), int(np.max(concurrent))


def _stats(values: list[float], percentiles: Sequence[float]) -> tuple[Any, ...]:
    import numpy as np

    data: Any = values or 0
    scale = MILLISECONDS_TO_SECONDS_CONVERSION
    return (
        float(np.mean(data)) * scale,
        float(np.median(data)) * scale,
        float(np.std(data)) * scale,
        [(float(p), float(np.percentile(data, p)) * scale) for p in percentiles],
    )


def calculate_metrics(
    outputs: Sequence[RequestFuncOutput],
    dur_s: float,
    *,
    count_tokens: Callable[[str], int] | None = None,
    count_source: str = "tokenizer",
    selected_percentiles: Sequence[float] = (99.0,),
    goodput_config: Mapping[str, float] | None = None,
    input_lens: Sequence[int] | None = None,
) -> tuple[BenchmarkMetrics, list[int]]:
    """Compute vLLM's metrics for *outputs* (in request order) over *dur_s* seconds.

    A successful request's output length is its ``output_tokens`` when non-zero, else
    ``count_tokens(generated_text)`` (labelled *count_source*), else 1. Input lengths are
    ``outputs[i].prompt_len`` (vLLM NEW-HEAD) unless *input_lens* is given (legacy);
    the server's counts (``prompt_tokens``) are summed apart, never mixed in.
    Returns the metrics and the per-request output lengths (0 for failures).

    Warns:
        UserWarning: every request failed.
    """
    actual_output_lens: list[int] = []
    sources: Counter[str] = Counter()
    total_input = 0
    total_server = 0
    server_reported = 0
    completed = 0
    good_completed = 0
    itls: list[float] = []
    tpots: list[float] = []
    all_tpots: list[float] = []
    ttfts: list[float] = []
    e2els: list[float] = []
    audio_duration = 0.0
    for i, out in enumerate(outputs):
        if not out.success:
            actual_output_lens.append(0)
            continue
        output_len = out.output_tokens
        if output_len:
            sources[out.output_tokens_source or "server"] += 1
        elif count_tokens is not None:
            output_len = count_tokens(out.generated_text)
            sources[count_source] += 1
        else:
            output_len = 1
            sources["none"] += 1
        actual_output_lens.append(output_len)
        total_input += input_lens[i] if input_lens is not None else out.prompt_len
        if out.prompt_tokens is not None:
            total_server += out.prompt_tokens
            server_reported += 1
        tpot = 0.0
        if output_len > 1:
            tpot = (out.latency - out.ttft) / (output_len - 1)
            tpots.append(tpot)
        all_tpots.append(tpot)
        itls.extend(out.itl)
        ttfts.append(out.ttft)
        e2els.append(out.latency)
        audio_duration += out.input_audio_duration
        completed += 1

    if goodput_config:
        valid: list[list[float]] = []
        slos: list[float] = []
        if "ttft" in goodput_config:
            valid.append(ttfts)
            slos.append(goodput_config["ttft"] / MILLISECONDS_TO_SECONDS_CONVERSION)
        if "tpot" in goodput_config:
            valid.append(all_tpots)
            slos.append(goodput_config["tpot"] / MILLISECONDS_TO_SECONDS_CONVERSION)
        if "e2el" in goodput_config:
            valid.append(e2els)
            slos.append(goodput_config["e2el"] / MILLISECONDS_TO_SECONDS_CONVERSION)
        for req in zip(*valid, strict=True):
            if all(s >= r for s, r in zip(slos, req, strict=True)):
                good_completed += 1

    if completed == 0:
        warnings.warn(
            "All requests failed. This is likely due to a misconfiguration "
            "on the benchmark arguments.",
            stacklevel=2,
        )
    peak_tokens, peak_concurrency = peak_metrics(outputs)
    total_output = sum(actual_output_lens)
    dur = dur_s if dur_s > 0 else float("nan")
    ttft = _stats(ttfts, selected_percentiles)
    tpot_s = _stats(tpots, selected_percentiles)
    itl = _stats(itls, selected_percentiles)
    e2el = _stats(e2els, selected_percentiles)
    metrics = BenchmarkMetrics(
        completed=completed,
        failed=len(outputs) - completed,
        total_input=total_input,
        total_output=total_output,
        request_throughput=completed / dur,
        request_goodput=good_completed / dur,
        output_throughput=total_output / dur,
        total_token_throughput=(total_input + total_output) / dur,
        mean_ttft_ms=ttft[0],
        median_ttft_ms=ttft[1],
        std_ttft_ms=ttft[2],
        percentiles_ttft_ms=ttft[3],
        mean_tpot_ms=tpot_s[0],
        median_tpot_ms=tpot_s[1],
        std_tpot_ms=tpot_s[2],
        percentiles_tpot_ms=tpot_s[3],
        mean_itl_ms=itl[0],
        median_itl_ms=itl[1],
        std_itl_ms=itl[2],
        percentiles_itl_ms=itl[3],
        mean_e2el_ms=e2el[0],
        median_e2el_ms=e2el[1],
        std_e2el_ms=e2el[2],
        percentiles_e2el_ms=e2el[3],
        max_output_tokens_per_s=peak_tokens,
        max_concurrent_requests=peak_concurrency,
        rtfx=audio_duration / dur if audio_duration else 0.0,
        output_tokens_sources=dict(sources),
        total_input_server=total_server if server_reported else None,
        input_server_reported=server_reported,
    )
    return metrics, actual_output_lens


@attrs.frozen(kw_only=True)
class Measured:
    """The metrics of one execution, with what the report says about how they were
    measured: the client's self-check, ramp-up events, and warnings (one line each)."""

    metrics: BenchmarkMetrics
    actual_output_lens: list[int]
    self_check: SelfCheck
    rps_change_events: list[dict[str, Any]] | None
    warnings: tuple[str, ...]
    #: ``--dataset-name trace``: how far the sends lagged the trace.
    trace_replay: TraceReplay | None = None
    #: ``--dataset-name multi-turn``: conversations and each turn index's figures.
    sessions: SessionMetrics | None = None
    #: The requests' HTTP phases and reasoning timings, summed up.
    phases: PhaseSummary | None = None


def measure(config: BenchConfig, plan: WorkloadPlan, execution: Execution) -> Measured:
    """The metrics of *execution* (finished requests only) as *config* selects them."""
    from ._phases import summarize_phases
    from ._schedule import rps_change_events
    from ._selfcheck import after_burst, evaluate_self_check, since

    records = execution.records
    goodput = dict(config.goodput) if config.goodput else None
    counter = plan.target.counter
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics, actual_output_lens = calculate_metrics(
            [r.output for r in records],
            execution.duration,
            count_tokens=counter.count,
            count_source=counter.kind,
            selected_percentiles=config.percentiles(),
            goodput_config=goodput,
        )
    events = None
    if plan.ramp_up is not None:
        # Stamped when each request left (the schedule's offset for those that didn't).
        dispatch = {r.index: r.dispatched for r in records}
        # Sessions: the schedule holds one arrival per session, its first turn.
        arrivals = [s.turns[0].scheduled for s in plan.sessions] or plan.requests
        times = [
            execution.wall_start + timedelta(seconds=dispatch.get(s.index, s.delay))
            for s in arrivals
        ]
        events = rps_change_events(plan.schedule.rates, plan.ramp_up[1], times)
    send_lags = [r.send_lag for r in records]
    # --request-rate inf: every request is due at t=0, so the send lag is the time the
    # client takes to issue them, and the loop is busy issuing meanwhile, by design.
    burst = math.isinf(plan.request_rate) and plan.ramp_up is None
    issue_s = max(send_lags, default=0.0) if burst else 0.0
    loop_lags: list[float] = []
    for s in execution.stats:
        if len(s.loop_lag_starts) == len(s.loop_lags):
            loop_lags += since(s.loop_lags, s.loop_lag_starts, issue_s)
        else:
            loop_lags += after_burst(s.loop_lags, issue_s)
    check = evaluate_self_check(
        send_lags=send_lags,
        loop_lags=loop_lags,
        queue_times=[r.output.client_queue_time for r in records],
        cpu_s=execution.cpu_s,
        wall_s=execution.duration,
        includes_server=config.embedded,
        burst=burst,
        completed=metrics.completed,
        workers=plan.workers,
    )
    trace = None
    if config.dataset_name == "trace":
        from ._trace import replay_stats

        send = (check.send_lag_p50_ms, check.send_lag_p99_ms, check.send_lag_max_ms)
        trace = replay_stats(plan, records, time_scale=config.time_scale, send=send)
    sessions = None
    if plan.sessions:
        from ._sessions import session_metrics

        sessions = session_metrics(plan, execution, counter.count, counter.kind)
    return Measured(
        metrics=metrics,
        actual_output_lens=actual_output_lens,
        self_check=check,
        rps_change_events=events,
        warnings=tuple(str(w.message) for w in caught),
        trace_replay=trace,
        sessions=sessions,
        phases=summarize_phases([r.output for r in records], config.percentiles()),
    )
