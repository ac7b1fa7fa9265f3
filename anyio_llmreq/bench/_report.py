"""The printed report, the result JSON and its file name, in vLLM's formats. Pure, apart
from ``save_result`` which writes the file atomically."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from .._models import RequestFuncOutput
from ._metrics import BenchmarkMetrics

__all__ = [
    "DETAILED_KEYS",
    "METRIC_HEADERS",
    "benchmark_result_dict",
    "format_report",
    "percentile_word",
    "result_filename",
    "save_result",
]

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
        lines.append(_line("Total Token throughput (tok/s):", metrics.total_token_throughput))
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
    for key in METRIC_HEADERS:
        if key not in selected_metrics:
            continue
        result[f"mean_{key}_ms"] = getattr(metrics, f"mean_{key}_ms")
        result[f"median_{key}_ms"] = getattr(metrics, f"median_{key}_ms")
        result[f"std_{key}_ms"] = getattr(metrics, f"std_{key}_ms")
        for p, value in getattr(metrics, f"percentiles_{key}_ms"):
            result[f"p{percentile_word(p)}_{key}_ms"] = value
    return result


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


def result_filename(
    *,
    backend: str,
    label: str | None,
    request_rate: float,
    max_concurrency: int | None,
    model_id: str,
    date: str,
    ramp_up: tuple[str, float, float] | None = None,
) -> str:
    """vLLM's default result file name."""
    prefix = label or backend
    concurrency = f"-concurrency{max_concurrency}" if max_concurrency is not None else ""
    base_model = model_id.split("/")[-1]
    if ramp_up is not None:
        strategy, start, end = ramp_up
        return (
            f"{prefix}-ramp-up-{strategy}-{start}qps-{end}qps{concurrency}-{base_model}-{date}.json"
        )
    return f"{prefix}-{request_rate}qps{concurrency}-{base_model}-{date}.json"


def save_result(path: str, result: Mapping[str, Any], *, append: bool = False) -> None:
    """Write *result* as JSON to *path* atomically (temp file + ``os.replace``).

    With *append*, the file's current content is kept and the JSON is added after a
    newline when the file is non-empty, as vLLM's ``--append-result`` does.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    previous = ""
    if append and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            previous = f.read()
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            if previous:
                f.write(previous)
                f.write("\n")
            json.dump(result, f, default=_json_default)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
