"""Report stage: the printed lines and the result JSON, in vLLM's formats. Pure.

Text is the one report now; another (HTML, ...) is one new module that reads the same
``BenchConfig``, ``WorkloadPlan``, ``Execution`` and ``Measured``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._models import RequestFuncOutput
from ._metrics import BenchmarkMetrics
from ._phases import detailed_lists
from ._redact import redact_url

if TYPE_CHECKING:
    from ._config import BenchConfig
    from ._execute import Execution
    from ._metrics import Measured
    from ._plan import WorkloadPlan
    from ._server_metrics import ServerMetrics

__all__ = [
    "DETAILED_KEYS",
    "METRIC_HEADERS",
    "benchmark_result_dict",
    "format_report",
    "intro_lines",
    "metric_stats",
    "outcome_lines",
    "percentile_word",
    "result_json",
    "run_header",
    "run_report",
]

_MAX_ERRORS_SHOWN = 10

_SOURCE_LABELS = {
    "usage": "server usage",
    "server": "server",
    "events": "server token events",
    "tokenizer": "tokenizer",
    "words": "whitespace words",
    "none": "none (counted as 1)",
}

#: Keys that only ``--save-detailed`` keeps (vLLM's list plus ours).
DETAILED_KEYS = (
    "input_lens",
    "input_lens_server",
    "output_lens",
    "start_times",
    "ttfts",
    "itls",
    "generated_texts",
    "errors",
    "scheduled_times",
    "client_queue_times",
    "request_ids",
    "session_ids",
    "turns",
    "http_phases",
    "ttfts_reasoning",
    "ttfts_content",
    "reasoning_tokens",
)

#: metric key -> (name, section header), in print order.
METRIC_HEADERS: dict[str, tuple[str, str]] = {
    "ttft": ("TTFT", "Time to First Token"),
    "tpot": ("TPOT", "Time per Output Token (excl. 1st token)"),
    "itl": ("ITL", "Inter-token Latency"),
    "e2el": ("E2EL", "End-to-end Latency"),
}


def percentile_word(p: float) -> str:
    """``99.0`` -> ``"99"``, ``99.9`` -> ``"99.9"`` (as vLLM names its keys)."""
    return str(int(p)) if int(p) == p else str(p)


def _line(label: str, value: Any) -> str:
    if isinstance(value, float):
        return f"{label:<40} {value:<10.2f}"
    return f"{label:<40} {value!s:<10}"


def format_report(
    metrics: BenchmarkMetrics,
    *,
    duration: float,
    selected_metrics: Sequence[str],
    max_concurrency: int | None = None,
    request_rate: float = math.inf,
    goodput: bool = False,
    pooling: bool = False,
) -> list[str]:
    """The lines vLLM prints after a run ("Serving Benchmark Result" ... ``=`` * 50)."""
    lines = ["{s:{c}^{n}}".format(s=" Serving Benchmark Result ", n=50, c="=")]
    lines.append(_line("Successful requests:", metrics.completed))
    lines.append(_line("Failed requests:", metrics.failed))
    if max_concurrency is not None:
        lines.append(_line("Maximum request concurrency:", max_concurrency))
    if request_rate != math.inf:
        lines.append(_line("Request rate configured (RPS):", float(request_rate)))
    lines.append(_line("Benchmark duration (s):", float(duration)))
    lines.append(_line("Total input tokens:", metrics.total_input))
    server = metrics.total_input_server
    if server is not None:
        # The server's own count, labelled, beside vLLM's (which is the client's).
        reported = metrics.input_server_reported
        partial = (
            f" ({reported}/{metrics.completed} requests)" if reported < metrics.completed else ""
        )
        lines.append(_line("Total input tokens (server):", f"{server}{partial}"))
    if pooling:
        lines.append(_line("Request throughput (req/s):", metrics.request_throughput))
        lines.append(_line("Total token throughput (tok/s):", metrics.total_token_throughput))
    else:
        lines.append(_line("Total generated tokens:", metrics.total_output))
        lines.append(_line("Request throughput (req/s):", metrics.request_throughput))
        if goodput:
            lines.append(_line("Request goodput (req/s):", metrics.request_goodput))
        lines.append(_line("Output token throughput (tok/s):", metrics.output_throughput))
        lines.append(
            _line("Peak output token throughput (tok/s):", metrics.max_output_tokens_per_s)
        )
        lines.append(_line("Peak concurrent requests:", float(metrics.max_concurrent_requests)))
        if metrics.rtfx > 0.0:
            lines.append(_line("RTFx (Inverse Real-Time Factor):", metrics.rtfx))
        lines.append(_line("Total token throughput (tok/s):", metrics.total_token_throughput))
    for key, (name, header) in METRIC_HEADERS.items():
        if key not in selected_metrics:
            continue
        lines.append("{s:{c}^{n}}".format(s=header, n=50, c="-"))
        lines.append(_line(f"Mean {name} (ms):", getattr(metrics, f"mean_{key}_ms")))
        lines.append(_line(f"Median {name} (ms):", getattr(metrics, f"median_{key}_ms")))
        for p, value in getattr(metrics, f"percentiles_{key}_ms"):
            lines.append(_line(f"P{percentile_word(p)} {name} (ms):", value))
    lines.append("=" * 50)
    return lines


def benchmark_result_dict(
    metrics: BenchmarkMetrics,
    outputs: Sequence[RequestFuncOutput],
    actual_output_lens: Sequence[int],
    *,
    duration: float,
    selected_metrics: Sequence[str],
    goodput: bool = False,
    pooling: bool = False,
    rps_change_events: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """What vLLM's ``benchmark()`` returns: aggregates, per-request lists, metric stats."""
    result: dict[str, Any] = {
        "duration": duration,
        "completed": metrics.completed,
        "failed": metrics.failed,
        "total_input_tokens": metrics.total_input,
    }
    if pooling:
        result.update(
            request_throughput=metrics.request_throughput,
            total_token_throughput=metrics.total_token_throughput,
            input_lens=[o.prompt_len for o in outputs],
            errors=[o.error for o in outputs],
        )
    else:
        result.update(
            total_output_tokens=metrics.total_output,
            request_throughput=metrics.request_throughput,
            request_goodput=metrics.request_goodput if goodput else None,
            output_throughput=metrics.output_throughput,
            total_token_throughput=metrics.total_token_throughput,
            input_lens=[o.prompt_len for o in outputs],
            output_lens=list(actual_output_lens),
            ttfts=[o.ttft for o in outputs],
            itls=[o.itl for o in outputs],
            start_times=[o.start_time for o in outputs],
            generated_texts=[o.generated_text for o in outputs],
            errors=[o.error for o in outputs],
            max_output_tokens_per_s=metrics.max_output_tokens_per_s,
            max_concurrent_requests=metrics.max_concurrent_requests,
            rtfx=metrics.rtfx,
        )
    if rps_change_events:
        result["rps_change_events"] = rps_change_events
    result.update(metric_stats(metrics, [k for k in METRIC_HEADERS if k in selected_metrics]))
    return result


def metric_stats(
    metrics: BenchmarkMetrics, keys: Sequence[str], *, std: bool = True
) -> dict[str, float]:
    """The result's ``mean_/median_/std_/p<N>_<key>_ms`` entries of each metric in *keys*
    (``std_`` left out without *std*)."""
    stats: dict[str, float] = {}
    for key in keys:
        stats[f"mean_{key}_ms"] = getattr(metrics, f"mean_{key}_ms")
        stats[f"median_{key}_ms"] = getattr(metrics, f"median_{key}_ms")
        if std:
            stats[f"std_{key}_ms"] = getattr(metrics, f"std_{key}_ms")
        for p, value in getattr(metrics, f"percentiles_{key}_ms"):
            stats[f"p{percentile_word(p)}_{key}_ms"] = value
    return stats


def run_header(
    *,
    date: str,
    backend: str,
    label: str | None,
    model_id: str,
    tokenizer_id: str,
    num_prompts: int,
    metadata: Mapping[str, str],
    request_rate: float,
    burstiness: float,
    max_concurrency: int | None,
    ramp_up: tuple[str, float, float] | None = None,
) -> dict[str, Any]:
    """The keys vLLM's ``main`` puts in front of the benchmark result."""
    header: dict[str, Any] = {
        "date": date,
        "endpoint_type": backend,
        "label": label,
        "backend": backend,
        "model_id": model_id,
        "tokenizer_id": tokenizer_id,
        "num_prompts": num_prompts,
    }
    header.update(metadata)
    header["request_rate"] = request_rate if request_rate < math.inf else "inf"
    header["burstiness"] = burstiness
    header["max_concurrency"] = max_concurrency
    if ramp_up is not None:
        header["ramp_up_strategy"], header["ramp_up_start_rps"], header["ramp_up_end_rps"] = ramp_up
    return header


#: The first line of a run against the embedded server: nobody should mistake its
#: figures for their server's (``vllm bench serve`` would go to 127.0.0.1:8000).
EMBEDDED_BANNER = (
    "*** NO SERVER GIVEN: MEASURING THE EMBEDDED MOCK SERVER, NOT A REAL ONE. "
    "Pass --base-url URL (or --host/--port) to benchmark your server. ***"
)

#: ``vllm bench serve``'s warning when no ``--temperature`` is given (vLLM #32723).
TEMPERATURE_WARNING = (
    "WARNING: no --temperature given: requests carry no temperature, so the server "
    "decides (model/API specific), as vllm bench serve does. For greedy sampling, the "
    "legacy benchmark_serving.py default, pass --temperature 0."
)


def first_lines(config: BenchConfig) -> list[str]:
    """What a run says before anything else: the embedded-server banner, and the
    temperature warning for generation on a real server."""
    if config.embedded:
        return [EMBEDDED_BANNER]
    if config.temperature is None and not config.is_pooling:
        return [TEMPERATURE_WARNING]
    return []


def intro_lines(config: BenchConfig, plan: WorkloadPlan) -> list[str]:
    """What is about to run: target, model, load and client."""
    target = plan.target
    where = redact_url(target.base_url) + plan.endpoint
    if config.embedded:
        where += " (embedded mock server)"
    rate_text = "inf" if plan.request_rate == math.inf else f"{plan.request_rate:g}"
    if plan.ramp_up is not None:
        rate_text = f"{plan.ramp_up[0]} ramp-up {plan.ramp_up[1]}->{plan.ramp_up[2]}"
    load = f"request rate {rate_text} req/s, burstiness {config.burstiness:g}"
    if plan.sessions:  # the schedule's arrivals are conversations, not requests
        load = f"conversation rate {rate_text}/s, burstiness {config.burstiness:g}"
    if config.dataset_name == "trace":
        from ._trace import trace_load_text

        load = trace_load_text(config, plan)
    lines = [
        f"Benchmarking {plan.backend} at {where}, model {target.model_name}",
        f"{_prompt_count(plan)} ({config.dataset_name}), {load}, "
        f"max concurrency {config.max_concurrency}, loop {config.loop}, "
        f"workers {plan.workers}",
    ]
    if plan.sessions:
        lines.append(_sessions_line(config, plan))
    if config.embedded:
        lines.append(
            f"Embedded mock server: TTFT {config.mock_ttft * 1000:g} ms, ITL "
            f"{config.mock_itl * 1000:g} ms; tokens are whitespace words, no tokenizer "
            "download (pass --base-url to benchmark a real server)"
        )
    return lines


def _prompt_count(plan: WorkloadPlan) -> str:
    if plan.sessions:
        return f"{len(plan.sessions)} conversations, {len(plan.requests)} turns"
    return f"{len(plan.requests)} prompts"


def _sessions_line(config: BenchConfig, plan: WorkloadPlan) -> str:
    """How a multi-turn run sends its turns (the rate is the conversations' arrivals)."""
    turns = [len(s.turns) for s in plan.sessions]
    history = "recorded answers" if plan.recorded_answers else "the server's answers"
    active = plan.max_active_conversations
    cap = "no cap on" if active is None else f"at most {active}"
    return (
        f"Multi-turn: {min(turns)}-{max(turns)} turns a conversation, history with {history}, "
        f"think time {config.think_time or 0} s, {cap} conversations under way"
    )


def outcome_lines(execution: Execution, measured: Measured) -> list[str]:
    """Before the report: the first errors, whether the run was cut short, warnings."""
    lines = []
    errors = [r.output.error for r in execution.records if not r.output.success]
    errors = [e for e in errors if e]
    if errors:
        lines.append(f"{len(errors)} request(s) failed. First errors:")
        lines += [f"  {err}" for err in errors[:_MAX_ERRORS_SHOWN]]
    if execution.interrupted:
        lines.append(
            f"Interrupted: {len(execution.records)} of {execution.planned} requests finished; "
            f"the report covers those ({execution.not_finished} in flight or never sent are "
            "left out)."
        )
    if execution.skipped:
        lines.append(
            f"{execution.skipped} turn(s) not sent: a failed turn stopped their conversation."
        )
    lines += execution.notes
    lines += [f"WARNING: {w}" for w in measured.warnings]
    return lines


def run_report(
    config: BenchConfig,
    plan: WorkloadPlan,
    execution: Execution,
    measured: Measured,
    *,
    server: ServerMetrics | None = None,
) -> list[str]:
    """vLLM's report, with where the token counts came from, the server's metrics
    (``--server-metrics``: speculative decoding as vLLM prints it, then the scraped
    series) and the self-check."""
    metrics = measured.metrics
    lines = format_report(
        metrics,
        duration=execution.duration,
        selected_metrics=config.percentile_metric_names(),
        max_concurrency=config.max_concurrency,
        request_rate=plan.request_rate,
        goodput=bool(config.goodput),
        pooling=config.is_pooling,
    )
    extra_lines = [
        f"{'Output token counts from:':<40} "
        f"{_source_text(metrics.output_tokens_sources, metrics.completed)}",
        f"{'Input token counts from:':<40} " + _input_source_text(config, plan, metrics),
    ]
    server_lines = server.report_lines() if server is not None else []
    trace = measured.trace_replay
    trace_lines = trace.report_lines() if trace is not None else []
    if measured.sessions is not None:
        trace_lines += measured.sessions.report_lines()
    phase_lines = measured.phases.report_lines() if measured.phases is not None else []
    lines[-1:-1] = (
        extra_lines + phase_lines + server_lines + trace_lines + measured.self_check.report_lines()
    )
    return lines


def result_json(
    config: BenchConfig,
    plan: WorkloadPlan,
    execution: Execution,
    measured: Measured,
    *,
    server: ServerMetrics | None = None,
) -> dict[str, Any]:
    """The result file's content: vLLM's keys, then ours (not yet scrubbed); with
    ``--server-metrics``, ``server_metrics`` and vLLM's ``spec_decode_*`` keys."""
    metrics = measured.metrics
    records = execution.records
    outputs = [r.output for r in records]
    target = plan.target
    result = run_header(
        date=execution.date,
        backend=config.backend,
        label=config.label,
        model_id=target.model_id,
        tokenizer_id=target.tokenizer_id,
        num_prompts=len(plan.sessions) if plan.sessions else config.resolved_num_prompts(),
        metadata=config.metadata,
        request_rate=plan.request_rate,
        burstiness=config.burstiness,
        max_concurrency=config.max_concurrency,
        ramp_up=plan.ramp_up,
    )
    result.update(
        benchmark_result_dict(
            metrics,
            outputs,
            measured.actual_output_lens,
            duration=execution.duration,
            selected_metrics=config.percentile_metric_names(),
            goodput=bool(config.goodput),
            pooling=config.is_pooling,
            rps_change_events=measured.rps_change_events,
        )
    )
    result.update(
        # Beside vLLM's total_input_tokens (the client's counts): the server's
        # usage.prompt_tokens, None when no successful request reported one.
        total_input_tokens_server=metrics.total_input_server,
        input_tokens_server_reported=metrics.input_server_reported,
        input_lens_server=[o.prompt_tokens for o in outputs],
        scheduled_times=[r.scheduled for r in records],
        client_queue_times=[r.output.client_queue_time for r in records],
        request_ids=[r.request_id for r in records],
        output_tokens_source=metrics.output_tokens_sources,
        input_tokens_source=target.counter.kind,
        **measured.self_check.to_json(),
        loop=config.loop,
        workers=len(execution.stats) or 1,
        embedded_server=config.embedded,
        base_url=redact_url(target.base_url),
        interrupted=execution.interrupted,
        not_finished=execution.not_finished,
    )
    result.update(execution.result_keys)
    if measured.phases is not None:
        result.update(measured.phases.result_keys())
    if config.save_detailed:
        result.update(detailed_lists(outputs))
    if server is not None:
        result.update(server.result_keys())
    if measured.trace_replay is not None:
        result["trace_replay"] = measured.trace_replay.to_json()
    if measured.sessions is not None:
        result.update(measured.sessions.result_keys())
        result["session_ids"] = [r.session_id for r in records]
        result["turns"] = [r.turn for r in records]
    if not config.save_detailed:
        for key in DETAILED_KEYS:
            result.pop(key, None)
    return result


def _input_source_text(config: BenchConfig, plan: WorkloadPlan, metrics: BenchmarkMetrics) -> str:
    """Where "Total input tokens" came from: the client's counter (vLLM's rule), or for
    pooling backends the server's usage, which vLLM puts in ``prompt_len``."""
    if plan.target.counter.kind != "words":
        counted = f"tokenizer {plan.target.tokenizer_id}"
    elif plan.target.embedded:
        counted = "whitespace words (the mock server's rule)"
    else:
        # Against a real server words are the user's choice, not the server's rule.
        counted = "whitespace words (--tokenizer-mode words)"
    if config.is_pooling and metrics.input_server_reported:
        reported = metrics.input_server_reported
        if reported >= metrics.completed:
            return "server usage (pooling, as vLLM)"
        return f"server usage ({reported}/{metrics.completed}), else {counted}"
    return counted


def _source_text(sources: dict[str, int], completed: int) -> str:
    if not sources:
        return "n/a"
    return ", ".join(
        f"{_SOURCE_LABELS.get(k, k)} ({v}/{completed})"
        for k, v in sorted(sources.items(), key=lambda kv: -kv[1])
    )
