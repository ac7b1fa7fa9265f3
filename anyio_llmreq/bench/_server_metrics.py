"""Server metrics (``--server-metrics``): the server's Prometheus page scraped before,
during and after the run, and summed up beside the client's timings.

A scrape is one ``GET`` with a bounded time, made by a task of the bench's event loop
with its own HTTP client, so the measured requests share nothing with it but the loop;
a scrape that fails is counted and reported, never fatal. The pages fetched during the
run are kept compressed and parsed after it, with ``prometheus_client`` (the ``metrics``
extra): parsing while the requests stream would take the interpreter from the client.
What comes out (``ServerMetrics``):

* gauges as time series, with their mean and maximum over the run;
* counters as their increase over the run (``delta``), its rate per second, and the
  rate between consecutive scrapes as the time series;
* histograms as the observations made during the run: their count (``delta``), rate,
  mean (``sum / count``), the mean between consecutive scrapes as the time series, and
  percentiles estimated from the bucket increases by linear interpolation, as
  Prometheus' ``histogram_quantile`` does;
* vLLM's speculative-decoding result keys, from the ``vllm:spec_decode_*`` counters of
  the scrapes before and after the run, with ``vllm bench serve``'s formulas.

Times are seconds from the run's start, the origin of the per-request ``start_times``
(``time.perf_counter`` both). The series of known servers (vLLM, SGLang, TGI,
llama.cpp, Triton) carry a human name ("queue depth", "KV-cache usage", ...); every
other series is kept under its own name.
"""

from __future__ import annotations

import contextlib
import math
import time
import zlib
from collections.abc import AsyncIterator, Coroutine, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import anyio
import attrs

from ._config import UsageError
from ._redact import redact_url

if TYPE_CHECKING:
    import httpx

    from ._config import BenchConfig
    from ._execute import Execution
    from ._plan import Target
    from ._redact import Console

__all__ = [
    "DEFAULT_INTERVAL_MS",
    "KNOWN_SERIES",
    "Sample",
    "Scraper",
    "Series",
    "ServerMetrics",
    "check_flags",
    "histogram_quantile",
    "parse_exposition",
    "parse_pages",
    "require_prometheus_client",
    "scrape_server_metrics",
    "series_key",
    "spec_decode_result",
    "summarize",
]

T = TypeVar("T")
Kind = Literal["gauge", "counter", "histogram"]
Phase = Literal["before", "during", "after"]

DEFAULT_INTERVAL_MS = 1000.0
#: The least ``--server-metrics-interval``: faster scraping would load the server.
MIN_INTERVAL_MS = 10.0
#: Each scrape's time limit during the run: the interval, within these bounds (s).
_TIMEOUT_RANGE = (1.0, 5.0)
#: The scrapes before and after the run (and the probe) wait this long (s).
_EDGE_TIMEOUT = 5.0
QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}

_EXTRA_HINT = "Install it with: pip install 'anyio-llmreq[metrics]'"

#: Human names of the series of known servers, by metric name (a counter's without
#: ``_total``). Several servers' metrics share a name: the report groups by it.
KNOWN_SERIES: dict[str, str] = {
    # vLLM (vllm/v1/metrics/loggers.py, vllm/v1/spec_decode/metrics.py).
    "vllm:num_requests_waiting": "queue depth",
    "vllm:num_requests_running": "running requests",
    "vllm:num_requests_swapped": "swapped requests",
    "vllm:kv_cache_usage_perc": "KV-cache usage",
    "vllm:gpu_cache_usage_perc": "KV-cache usage",
    "vllm:cpu_cache_usage_perc": "CPU KV-cache usage",
    "vllm:prefix_cache_hits": "prefix-cache hits (tokens)",
    "vllm:prefix_cache_queries": "prefix-cache queries (tokens)",
    "vllm:gpu_prefix_cache_hits": "prefix-cache hits (tokens)",
    "vllm:gpu_prefix_cache_queries": "prefix-cache queries (tokens)",
    "vllm:num_preemptions": "preemptions",
    "vllm:prompt_tokens": "prompt tokens",
    "vllm:generation_tokens": "generation tokens",
    "vllm:request_success": "successful requests",
    "vllm:time_to_first_token_seconds": "server TTFT",
    "vllm:inter_token_latency_seconds": "server ITL",
    "vllm:time_per_output_token_seconds": "server TPOT",
    "vllm:request_time_per_output_token_seconds": "server TPOT",
    "vllm:e2e_request_latency_seconds": "server E2E latency",
    "vllm:request_queue_time_seconds": "queue time",
    "vllm:request_prefill_time_seconds": "prefill time",
    "vllm:request_decode_time_seconds": "decode time",
    "vllm:request_inference_time_seconds": "inference time",
    "vllm:request_prompt_tokens": "prompt tokens per request",
    "vllm:request_generation_tokens": "generation tokens per request",
    "vllm:iteration_tokens_total": "tokens per engine step",
    "vllm:spec_decode_num_drafts": "spec-decode drafts",
    "vllm:spec_decode_num_draft_tokens": "spec-decode draft tokens",
    "vllm:spec_decode_num_accepted_tokens": "spec-decode accepted tokens",
    "vllm:spec_decode_num_accepted_tokens_per_pos": "spec-decode accepted tokens by position",
    # SGLang (python/sglang/srt/metrics/collector.py).
    "sglang:num_queue_reqs": "queue depth",
    "sglang:num_running_reqs": "running requests",
    "sglang:token_usage": "KV-cache usage",
    "sglang:num_used_tokens": "KV-cache tokens",
    "sglang:cache_hit_rate": "prefix-cache hit rate",
    "sglang:gen_throughput": "server generation throughput (tok/s)",
    "sglang:spec_accept_length": "spec-decode acceptance length",
    "sglang:spec_accept_rate": "spec-decode acceptance rate",
    "sglang:prompt_tokens": "prompt tokens",
    "sglang:generation_tokens": "generation tokens",
    "sglang:cached_tokens": "prefix-cache hits (tokens)",
    "sglang:num_requests": "requests",
    "sglang:num_aborted_requests": "aborted requests",
    "sglang:time_to_first_token_seconds": "server TTFT",
    "sglang:inter_token_latency_seconds": "server ITL",
    "sglang:time_per_output_token_seconds": "server TPOT",
    "sglang:e2e_request_latency_seconds": "server E2E latency",
    "sglang:queue_time_seconds": "queue time",
    # TGI (docs/source/reference/metrics.md).
    "tgi_queue_size": "queue depth",
    "tgi_batch_current_size": "running requests",
    "tgi_batch_current_max_tokens": "batch token budget",
    "tgi_request_count": "requests",
    "tgi_request_success": "successful requests",
    "tgi_request_failure": "failed requests",
    "tgi_request_duration": "server E2E latency",
    "tgi_request_queue_duration": "queue time",
    "tgi_request_mean_time_per_token_duration": "server TPOT",
    "tgi_request_inference_duration": "inference time",
    "tgi_request_validation_duration": "validation time",
    "tgi_request_input_length": "prompt tokens per request",
    "tgi_request_generated_tokens": "generation tokens per request",
    "tgi_request_skipped_tokens": "speculated tokens per request",
    "tgi_batch_next_size": "next batch size",
    # llama.cpp (tools/server: GET /metrics with --metrics).
    "llamacpp:requests_processing": "running requests",
    "llamacpp:requests_deferred": "queue depth",
    "llamacpp:kv_cache_usage_ratio": "KV-cache usage",
    "llamacpp:kv_cache_tokens": "KV-cache tokens",
    "llamacpp:prompt_tokens": "prompt tokens",
    "llamacpp:tokens_predicted": "generation tokens",
    "llamacpp:prompt_seconds": "prompt processing time (s)",
    "llamacpp:tokens_predicted_seconds": "generation time (s)",
    "llamacpp:n_decode": "decode calls",
    "llamacpp:n_busy_slots_per_decode": "busy slots per decode",
    "llamacpp:prompt_tokens_seconds": "server prompt throughput (tok/s)",
    "llamacpp:predicted_tokens_seconds": "server generation throughput (tok/s)",
    "llamacpp:n_tokens_max": "longest sequence (tokens)",
    # Triton (docs/user_guide/metrics.md): cumulative durations are counters.
    "nv_inference_pending_request_count": "queue depth",
    "nv_inference_request_success": "successful requests",
    "nv_inference_request_failure": "failed requests",
    "nv_inference_count": "inferences",
    "nv_inference_exec_count": "model executions",
    "nv_inference_request_duration_us": "request time (us)",
    "nv_inference_queue_duration_us": "queue time (us)",
    "nv_inference_compute_input_duration_us": "input time (us)",
    "nv_inference_compute_infer_duration_us": "compute time (us)",
    "nv_inference_compute_output_duration_us": "output time (us)",
    "nv_inference_first_response_histogram_ms": "server TTFT",
    "nv_gpu_utilization": "GPU utilization",
    "nv_gpu_memory_used_bytes": "GPU memory used (bytes)",
    "nv_trt_llm_request_metrics": "TensorRT-LLM requests",
    "nv_trt_llm_kv_cache_block_metrics": "TensorRT-LLM KV-cache blocks",
}

#: Report order: these first (in this order), then the other named series by name.
_REPORT_ORDER = (
    "queue depth",
    "running requests",
    "KV-cache usage",
    "prefix-cache hit rate",
    "prefix-cache hits (tokens)",
    "prefix-cache queries (tokens)",
    "preemptions",
    "successful requests",
    "prompt tokens",
    "generation tokens",
    "server TTFT",
    "server ITL",
    "server TPOT",
    "server E2E latency",
    "queue time",
)


def label_for(metric: str) -> str | None:
    """The human name of a metric (a counter's with or without ``_total``), or None."""
    found = KNOWN_SERIES.get(metric)
    if found is None and metric.endswith("_total"):
        found = KNOWN_SERIES.get(metric[: -len("_total")])
    return found


# --- parsing ---------------------------------------------------------------------------


@attrs.frozen
class Sample:
    """One series of one scrape: a gauge or counter value, or a histogram's cumulative
    buckets ``((le, count), ...)``, count and sum."""

    kind: Kind
    #: The metric (family) name the human names are keyed by.
    metric: str
    #: The sample name on the page (a counter's ends in ``_total``) and its labels.
    name: str
    labels: Mapping[str, str]
    value: float = 0.0
    buckets: tuple[tuple[float, float], ...] = ()
    count: float = 0.0
    total: float = 0.0


def series_key(name: str, labels: Mapping[str, str]) -> str:
    """``name{a="1",b="2"}`` (labels sorted), or ``name`` without labels."""
    if not labels:
        return name
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def parse_exposition(text: str) -> dict[str, Sample]:
    """The series of one Prometheus text page, by ``series_key``.

    Counters are keyed by their ``_total`` sample, histograms by their metric name;
    ``_created`` timestamps are dropped; a summary's quantiles are gauges and its
    ``_sum``/``_count`` counters; an untyped series is a counter when its name ends in
    ``_total``, else a gauge.

    Raises:
        ValueError: the text is not a metrics page.
    """
    from prometheus_client.parser import text_string_to_metric_families

    families = list(text_string_to_metric_families(text))
    typed = {f.name for f in families if f.type in ("counter", "histogram", "summary")}
    out: dict[str, Sample] = {}
    for family in families:
        kind = family.type
        if kind in ("gauge", "unknown", "untyped", "info", "stateset"):
            # A counter's creation time, written as a gauge family of its own.
            if family.name.endswith("_created") and family.name[: -len("_created")] in typed:
                continue
            for s in family.samples:
                sample_kind: Kind = "counter" if s.name.endswith("_total") else "gauge"
                if kind in ("gauge", "info", "stateset"):
                    sample_kind = "gauge"
                out[series_key(s.name, s.labels)] = Sample(
                    sample_kind, family.name, s.name, dict(s.labels), float(s.value)
                )
        elif kind == "counter":
            for s in family.samples:
                if s.name.endswith("_total"):
                    out[series_key(s.name, s.labels)] = Sample(
                        "counter", family.name, s.name, dict(s.labels), float(s.value)
                    )
        elif kind == "summary":
            for s in family.samples:
                if s.name.endswith("_created"):
                    continue
                sample_kind = "gauge" if s.name == family.name else "counter"
                out[series_key(s.name, s.labels)] = Sample(
                    sample_kind, family.name, s.name, dict(s.labels), float(s.value)
                )
        elif kind == "histogram":
            out.update(_histograms(family.name, family.samples))
    return out


def _histograms(metric: str, samples: Iterable[Any]) -> dict[str, Sample]:
    """A histogram family's series: one per label set other than ``le``."""
    parts: dict[str, dict[str, Any]] = {}
    for s in samples:
        labels = {k: v for k, v in s.labels.items() if k != "le"}
        key = series_key(metric, labels)
        part = parts.setdefault(key, {"labels": labels, "buckets": [], "count": None, "sum": 0.0})
        if s.name == metric + "_bucket":
            part["buckets"].append((float(s.labels["le"]), float(s.value)))
        elif s.name == metric + "_count":
            part["count"] = float(s.value)
        elif s.name == metric + "_sum":
            part["sum"] = float(s.value)
    out = {}
    for key, part in parts.items():
        buckets = tuple(sorted(part["buckets"]))
        count = part["count"]
        if count is None:
            count = buckets[-1][1] if buckets else 0.0
        out[key] = Sample(
            "histogram", metric, metric, part["labels"], buckets=buckets, count=count,
            total=part["sum"],
        )  # fmt: skip
    return out


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The *q* quantile of cumulative *buckets* ``((le, count), ...)`` as Prometheus'
    ``histogram_quantile`` estimates it: linear interpolation inside the bucket the rank
    falls in (from 0 for the first bucket), the largest finite bound when it falls in
    the ``+Inf`` bucket; None without observations or a ``+Inf`` bucket."""
    ordered = sorted(buckets)
    if len(ordered) < 2 or ordered[-1][0] != math.inf:
        return None
    fixed: list[tuple[float, float]] = []
    most = 0.0
    for le, count in ordered:
        most = max(most, count)  # counts read at different moments may dip: as Prometheus
        fixed.append((le, most))
    total = fixed[-1][1]
    if total <= 0:
        return None
    rank = q * total
    b = next((i for i, (_, c) in enumerate(fixed[:-1]) if c >= rank), len(fixed) - 1)
    if b == len(fixed) - 1:
        return fixed[-2][0]
    if b == 0 and fixed[0][0] <= 0:
        return fixed[0][0]
    start, end, count = 0.0, fixed[b][0], fixed[b][1]
    if b > 0:
        start = fixed[b - 1][0]
        count -= fixed[b - 1][1]
        rank -= fixed[b - 1][1]
    return start + (end - start) * (rank / count)


# --- the summary -----------------------------------------------------------------------


@attrs.frozen
class Series:
    """One series over the run (see the module docstring for what each field holds)."""

    kind: Kind
    label: str | None
    metric: str
    labels: Mapping[str, str]
    points: list[tuple[float, float]]
    mean: float | None
    max: float | None
    delta: float | None = None
    rate: float | None = None
    percentiles: dict[str, float] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "label": self.label,
            "points": [[t, v] for t, v in self.points],
            "mean": self.mean,
            "max": self.max,
            "delta": self.delta,
            "rate": self.rate,
            "percentiles": self.percentiles,
        }


@attrs.frozen
class Failure:
    """A scrape that got no page: when (s from the run's start), where, why."""

    t_s: float
    url: str
    error: str

    def to_json(self) -> dict[str, Any]:
        return {"t_s": self.t_s, "url": self.url, "error": self.error}


@attrs.frozen
class SpecDecodeCounts:
    """The ``vllm:spec_decode_*_total`` counters of one page, as ``vllm bench serve``'s
    ``fetch_spec_decode_metrics`` reads them (summed over label sets)."""

    num_drafts: int
    num_draft_tokens: int
    num_accepted_tokens: int
    accepted_per_pos: dict[int, int]

    @classmethod
    def from_samples(cls, samples: Iterable[Sample]) -> SpecDecodeCounts | None:
        drafts = draft_tokens = accepted = 0
        per_pos: dict[int, int] = {}
        found = False
        for s in samples:
            name = s.name
            if s.kind == "histogram" or not name.startswith("vllm:spec_decode"):
                continue
            if not name.endswith("_total"):
                continue
            found = True
            value = int(s.value) if math.isfinite(s.value) else 0
            # The same substring tests, in the same order, as vLLM's.
            if "num_drafts" in name:
                drafts += value
            elif "num_draft_tokens" in name:
                draft_tokens += value
            elif "num_accepted_tokens_per_pos" in name:
                pos = s.labels.get("position")
                if pos is not None and pos.lstrip("-").isdigit():
                    per_pos[int(pos)] = per_pos.get(int(pos), 0) + value
            elif "num_accepted_tokens" in name:
                accepted += value
        if not found:
            return None
        return cls(drafts, draft_tokens, accepted, per_pos)

    def __add__(self, other: SpecDecodeCounts) -> SpecDecodeCounts:
        per_pos = dict(self.accepted_per_pos)
        for pos, n in other.accepted_per_pos.items():
            per_pos[pos] = per_pos.get(pos, 0) + n
        return SpecDecodeCounts(
            self.num_drafts + other.num_drafts,
            self.num_draft_tokens + other.num_draft_tokens,
            self.num_accepted_tokens + other.num_accepted_tokens,
            per_pos,
        )


def spec_decode_result(
    before: SpecDecodeCounts | None, after: SpecDecodeCounts | None
) -> dict[str, Any] | None:
    """``vllm bench serve``'s ``spec_decode_*`` result keys from the counters before and
    after the run; None (no keys) when either page lacked them or nothing was drafted."""
    if before is None or after is None:
        return None
    drafts = after.num_drafts - before.num_drafts
    draft_tokens = after.num_draft_tokens - before.num_draft_tokens
    accepted = after.num_accepted_tokens - before.num_accepted_tokens
    per_pos: list[float] = []
    if drafts > 0:
        for pos in sorted(set(before.accepted_per_pos) | set(after.accepted_per_pos)):
            was = before.accepted_per_pos.get(pos, 0)
            per_pos.append((after.accepted_per_pos.get(pos, was) - was) / drafts)
    if draft_tokens <= 0:
        return None
    return {
        "spec_decode_acceptance_rate": (accepted / draft_tokens) * 100,
        "spec_decode_acceptance_length": 1 + accepted / drafts if drafts > 0 else 0.0,
        "spec_decode_num_drafts": int(drafts),
        "spec_decode_draft_tokens": int(draft_tokens),
        "spec_decode_accepted_tokens": int(accepted),
        "spec_decode_per_position_acceptance_rates": per_pos,
    }


def spec_decode_lines(keys: Mapping[str, Any]) -> list[str]:
    """``vllm bench serve``'s "Speculative Decoding" section."""
    lines = ["{s:{c}^{n}}".format(s="Speculative Decoding", n=50, c="-")]
    lines.append(
        "{:<40} {:<10.2f}".format("Acceptance rate (%):", keys["spec_decode_acceptance_rate"])
    )
    lines.append(
        "{:<40} {:<10.2f}".format("Acceptance length:", keys["spec_decode_acceptance_length"])
    )
    lines.append("{:<40} {:<10}".format("Drafts:", int(keys["spec_decode_num_drafts"])))
    lines.append("{:<40} {:<10}".format("Draft tokens:", int(keys["spec_decode_draft_tokens"])))
    lines.append(
        "{:<40} {:<10}".format("Accepted tokens:", int(keys["spec_decode_accepted_tokens"]))
    )
    per_pos = keys.get("spec_decode_per_position_acceptance_rates") or []
    if per_pos:
        lines.append("Per-position acceptance (%):")
        for i, rate in enumerate(per_pos):
            lines.append("{:<40} {:<10.2f}".format(f"  Position {i}:", rate * 100))
    return lines


@attrs.frozen
class ServerMetrics:
    """What the scrapes of one run found: the result's ``server_metrics`` (``to_json``),
    the ``spec_decode_*`` keys, and the report's sections."""

    endpoints: list[str]
    interval_s: float
    scrapes: int
    failures: list[Failure]
    series: dict[str, Series]
    spec_decode: dict[str, Any] | None = None
    #: Said before the run when the default endpoint did not answer.
    notes: list[str] = attrs.Factory(list)

    def to_json(self) -> dict[str, Any]:
        """The result's ``server_metrics``."""
        return {
            "endpoints": list(self.endpoints),
            "interval_s": self.interval_s,
            "scrapes": self.scrapes,
            "failures": [f.to_json() for f in self.failures],
            "series": {key: s.to_json() for key, s in self.series.items()},
        }

    def result_keys(self) -> dict[str, Any]:
        """Top-level result keys: ``server_metrics`` and vLLM's ``spec_decode_*``."""
        keys: dict[str, Any] = {"server_metrics": self.to_json()}
        if self.spec_decode is not None:
            keys.update(self.spec_decode)
        return keys

    def report_lines(self) -> list[str]:
        """The Speculative Decoding section (when the counters exist) and the Server
        Metrics section: the named series and the failed scrapes."""
        lines = spec_decode_lines(self.spec_decode) if self.spec_decode is not None else []
        lines.append("{s:{c}^{n}}".format(s="Server Metrics", n=50, c="-"))
        if not self.endpoints:
            lines.append(_line("Scraped:", "nothing (no endpoint answered)"))
            return lines
        every = f"every {self.interval_s * 1000:g} ms"
        lines.append(_line("Scrapes (failed):", f"{self.scrapes} ({len(self.failures)}), {every}"))
        for label, series in _report_series(self.series):
            lines.append(_series_line(label, series))
        return lines


def _line(label: str, value: str) -> str:
    return f"{label:<40} {value}"


def _num(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.2f}" if x == 0 or abs(x) >= 0.1 else f"{x:.3g}"


def _count(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.2f}"


def _series_line(label: str, s: Series) -> str:
    name = label[:1].upper() + label[1:]
    if s.kind == "gauge":
        return _line(f"{name} mean/max:", f"{_num(s.mean)} / {_num(s.max)}")
    if s.kind == "counter":
        return _line(f"{name} total, per s:", f"{_count(s.delta)}, {_num(s.rate)}")
    scale, unit = _histogram_unit(s.metric)
    if s.percentiles is None:
        return _line(f"{name} P50/P90/P99{unit}:", "n/a (no observations)")
    values = " / ".join(f"{s.percentiles[p] * scale:.2f}" for p in QUANTILES)
    return _line(f"{name} P50/P90/P99{unit}:", values)


def _histogram_unit(metric: str) -> tuple[float, str]:
    """How to print a histogram's values: seconds and microseconds in ms, as the
    client's latencies above."""
    if metric.endswith(("_seconds", "_duration")):
        return 1000.0, " (ms)"
    if metric.endswith("_us"):
        return 0.001, " (ms)"
    if metric.endswith("_ms"):
        return 1.0, " (ms)"
    return 1.0, ""


def _report_series(series: Mapping[str, Series]) -> list[tuple[str, Series]]:
    """The named series to print, in report order, each label suffixed with the labels
    that tell apart the series of one metric; a counter or histogram that did not move
    is left out when another series of its metric did."""
    by_metric: dict[str, list[Series]] = {}
    for s in series.values():
        # vLLM's spec-decode counters have their own section, as vLLM prints it.
        if s.label is not None and not s.metric.startswith("vllm:spec_decode"):
            by_metric.setdefault(s.metric, []).append(s)
    rows: list[tuple[int, str, str, Series]] = []
    for group in by_metric.values():
        moved = [s for s in group if s.kind == "gauge" or s.delta]
        shown = moved if moved and len(moved) < len(group) else group
        names = {k for s in shown for k in s.labels}
        varying = sorted(k for k in names if len({s.labels.get(k) for s in shown}) > 1)
        for s in shown:
            base = s.label or s.metric
            label = base
            if varying:
                label += " [" + ",".join(f"{k}={s.labels.get(k, '')}" for k in varying) + "]"
            order = _REPORT_ORDER.index(base) if base in _REPORT_ORDER else len(_REPORT_ORDER)
            rows.append((order, base, label, s))
    rows.sort(key=lambda r: r[:3])
    return [(label, s) for _, _, label, s in rows]


# --- from scrapes to series -----------------------------------------------------------


@attrs.frozen
class Scrape:
    """One attempt: when (``time.perf_counter``, midway between asking and answer),
    which endpoint, and its series or why there are none. A page fetched during the
    run is kept as it came (``page``, zlib-compressed) and parsed after it
    (``parse_pages``)."""

    endpoint: int
    t: float
    phase: Phase
    samples: dict[str, Sample] | None
    error: str | None = None
    page: bytes | None = attrs.field(default=None, repr=False)


def parse_pages(scrapes: Sequence[Scrape]) -> list[Scrape]:
    """*scrapes* with their kept pages parsed (an unchanged page once): a page that is
    not Prometheus text becomes a failed scrape."""
    out: list[Scrape] = []
    last: tuple[bytes, dict[str, Sample]] | None = None
    for s in scrapes:
        if s.page is None:
            out.append(s)
            continue
        if last is not None and last[0] == s.page:
            out.append(attrs.evolve(s, samples=last[1], page=None))
            continue
        try:
            samples = parse_exposition(zlib.decompress(s.page).decode("utf-8", "replace"))
        except Exception as exc:
            out.append(attrs.evolve(s, error=f"not a metrics page: {_one_line(exc)}", page=None))
            continue
        last = (s.page, samples)
        out.append(attrs.evolve(s, samples=samples, page=None))
    return out


def summarize(
    scrapes: Sequence[Scrape],
    endpoints: Sequence[str],
    *,
    run_start: float,
    run_end: float,
    interval_s: float,
    notes: Sequence[str] = (),
    probe_failures: Sequence[Scrape] = (),
    probe_urls: Sequence[str] = (),
) -> ServerMetrics:
    """The run's ``ServerMetrics`` from its scrapes (*run_start*/*run_end* on
    ``time.perf_counter``); with several endpoints each series gains an ``instance``
    label. *probe_failures* are the default endpoint's failed probes (at *probe_urls*)."""
    failures = [
        Failure(_t(s.t, run_start), redact_url(probe_urls[s.endpoint]), s.error or "")
        for s in probe_failures
    ]
    failures += [
        Failure(_t(s.t, run_start), redact_url(endpoints[s.endpoint]), s.error or "")
        for s in scrapes
        if s.samples is None
    ]
    failures.sort(key=lambda f: f.t_s)
    instances = _instances(endpoints) if len(endpoints) > 1 else None
    series: dict[str, Series] = {}
    before: list[SpecDecodeCounts] = []
    after: list[SpecDecodeCounts] = []
    for index in range(len(endpoints)):
        ok = sorted(
            (s for s in scrapes if s.endpoint == index and s.samples is not None), key=lambda s: s.t
        )
        if not ok:
            continue
        extra = {"instance": instances[index]} if instances is not None else {}
        for key, built in _endpoint_series(ok, run_start, run_end, extra).items():
            series[key] = built
        # vLLM's keys need the pages right before and right after the run.
        if ok[0].phase == "before" and ok[-1].phase == "after":
            first = SpecDecodeCounts.from_samples((ok[0].samples or {}).values())
            last = SpecDecodeCounts.from_samples((ok[-1].samples or {}).values())
            if first is not None and last is not None:
                before.append(first)
                after.append(last)
    spec = None
    if before:
        spec = spec_decode_result(_sum_counts(before), _sum_counts(after))
    return ServerMetrics(
        endpoints=[redact_url(u) for u in endpoints],
        interval_s=interval_s,
        scrapes=len(scrapes) + len(probe_failures),
        failures=failures,
        series=dict(sorted(series.items())),
        spec_decode=spec,
        notes=list(notes),
    )


def _sum_counts(counts: Sequence[SpecDecodeCounts]) -> SpecDecodeCounts:
    total = counts[0]
    for c in counts[1:]:
        total = total + c
    return total


def _t(t: float, origin: float) -> float:
    return round(t - origin, 4)


def _instances(endpoints: Sequence[str]) -> list[str]:
    """Each endpoint's ``instance`` label: host:port, or the whole URL where two share
    one."""
    hosts = [urlsplit(u).netloc.rpartition("@")[2] for u in endpoints]
    return [
        h if hosts.count(h) == 1 else redact_url(u) for h, u in zip(hosts, endpoints, strict=True)
    ]


def _endpoint_series(
    scrapes: Sequence[Scrape], run_start: float, run_end: float, extra: Mapping[str, str]
) -> dict[str, Series]:
    """Every series one endpoint's successful *scrapes* (in time order) show."""
    keys: dict[str, None] = {}
    for s in scrapes:
        keys.update(dict.fromkeys(s.samples or {}))
    out: dict[str, Series] = {}
    for key in keys:
        seen: list[tuple[float, Sample]] = []
        baseline: float | None = None
        for s in scrapes:
            sample = (s.samples or {}).get(key)
            if sample is not None:
                seen.append((s.t, sample))
            elif not seen:
                baseline = s.t  # absent before: it started at zero after this scrape
        first = seen[0][1]
        labels = {**first.labels, **extra}
        out_key = series_key(first.name, labels) if extra else key
        label = label_for(first.metric)
        if first.kind == "gauge":
            out[out_key] = _gauge(seen, run_start, run_end, label, labels)
        elif first.kind == "counter":
            out[out_key] = _counter(seen, baseline, run_start, label, labels)
        else:
            out[out_key] = _histogram(seen, baseline, run_start, label, labels)
    return out


def _gauge(
    seen: Sequence[tuple[float, Sample]],
    run_start: float,
    run_end: float,
    label: str | None,
    labels: Mapping[str, str],
) -> Series:
    finite = [(t, s.value) for t, s in seen if math.isfinite(s.value)]
    points = [(_t(t, run_start), v) for t, v in finite]
    # The run's own values; the scrapes just before and after only when none fell in it.
    values = [v for t, v in finite if run_start <= t <= run_end] or [v for _, v in finite]
    return Series(
        "gauge",
        label,
        seen[0][1].metric,
        labels,
        points,
        mean=sum(values) / len(values) if values else None,
        max=max(values) if values else None,
    )


def _counter(
    seen: Sequence[tuple[float, Sample]],
    baseline: float | None,
    run_start: float,
    label: str | None,
    labels: Mapping[str, str],
) -> Series:
    history = [(t, s.value) for t, s in seen if math.isfinite(s.value)]
    if baseline is not None:
        history.insert(0, (baseline, 0.0))
    points = []
    delta = 0.0
    for (t0, v0), (t1, v1) in zip(history, history[1:], strict=False):
        step = v1 - v0 if v1 >= v0 else v1  # a drop is a restart from zero
        delta += step
        if t1 > t0:
            points.append((_t(t1, run_start), step / (t1 - t0)))
    span = history[-1][0] - history[0][0] if len(history) > 1 else 0.0
    rate = delta / span if span > 0 else None
    return Series(
        "counter",
        label,
        seen[0][1].metric,
        labels,
        points,
        mean=rate,
        max=max((v for _, v in points), default=None),
        delta=delta if len(history) > 1 else None,
        rate=rate,
    )


def _histogram_step(s0: Sample, s1: Sample) -> tuple[dict[float, float], float, float]:
    """The observations between two pages: by bucket, their count and sum. A count that
    drops, or buckets that change, is a restart from zero."""
    restarted = s1.count < s0.count or [le for le, _ in s1.buckets] != [le for le, _ in s0.buckets]
    if restarted:
        return dict(s1.buckets), s1.count, s1.total
    was = dict(s0.buckets)
    by_bucket = {le: c - was[le] for le, c in s1.buckets}
    return by_bucket, s1.count - s0.count, s1.total - s0.total


def _histogram(
    seen: Sequence[tuple[float, Sample]],
    baseline: float | None,
    run_start: float,
    label: str | None,
    labels: Mapping[str, str],
) -> Series:
    history = list(seen)
    first = seen[0][1]
    if baseline is not None:
        empty = tuple((le, 0.0) for le, _ in first.buckets)
        history.insert(0, (baseline, attrs.evolve(first, buckets=empty, count=0.0, total=0.0)))
    increase = dict.fromkeys((le for le, _ in first.buckets), 0.0)
    count = total = 0.0
    points = []
    for (_, s0), (t1, s1) in zip(history, history[1:], strict=False):
        by_bucket, step_count, step_total = _histogram_step(s0, s1)
        for le, n in by_bucket.items():
            if le in increase:  # bounds the first page lacked can't be compared
                increase[le] += n
        count += step_count
        total += step_total
        if step_count > 0:
            points.append((_t(t1, run_start), step_total / step_count))
    moved = len(history) > 1
    span = history[-1][0] - history[0][0]
    percentiles = None
    if moved and count > 0:
        found = {p: histogram_quantile(q, list(increase.items())) for p, q in QUANTILES.items()}
        if all(v is not None for v in found.values()):
            percentiles = {p: float(v) for p, v in found.items() if v is not None}
    return Series(
        "histogram",
        label,
        first.metric,
        labels,
        points,
        mean=total / count if count > 0 else None,
        max=max((v for _, v in points), default=None),
        delta=count if moved else None,
        rate=count / span if span > 0 else None,
        percentiles=percentiles,
    )


# --- scraping --------------------------------------------------------------------------


def require_prometheus_client() -> None:
    """``--server-metrics`` parses pages with ``prometheus_client`` (the metrics extra).

    Raises:
        UsageError: it is not installed.
    """
    try:
        import prometheus_client.parser  # noqa: F401
    except ImportError:
        raise UsageError(
            "missing package",
            where="--server-metrics",
            why="prometheus-client is not installed",
            hint=_EXTRA_HINT,
        ) from None


def check_flags(urls: Sequence[str] | None, interval_ms: float) -> None:
    """``--server-metrics`` URLs (http or https, with a host) and the interval.

    Raises:
        UsageError: the first bad value.
    """
    if not interval_ms >= MIN_INTERVAL_MS:
        raise UsageError(
            "invalid value",
            where="--server-metrics-interval",
            why=f"must be at least {MIN_INTERVAL_MS:g} ms, got {interval_ms:g}",
            hint="Use e.g. --server-metrics-interval 1000 (once a second).",
        )
    for url in urls or ():
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError as exc:
            raise UsageError(
                f"invalid URL {redact_url(url)!r}", where="--server-metrics", why=str(exc)
            ) from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(
                f"invalid URL {redact_url(url)!r}",
                where="--server-metrics",
                why="expected an http:// or https:// URL with a host",
                hint="Use e.g. --server-metrics http://127.0.0.1:8000/metrics.",
            )


def metrics_url(url: str) -> str:
    """*url*, with ``/metrics`` as its path when it names none."""
    parts = urlsplit(url)
    if parts.path in ("", "/"):
        parts = parts._replace(path="/metrics")
    return urlunsplit(parts)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.rpartition("@")[2]


@attrs.define
class Scraper:
    """Scrapes *endpoints* (``(url, headers)``) every *interval* seconds while a run goes
    on, and once before and after it. ``endpoints`` empty: does nothing."""

    endpoints: list[tuple[str, dict[str, str]]]
    interval: float
    client: httpx.AsyncClient | None = None
    scrapes: list[Scrape] = attrs.Factory(list)
    notes: list[str] = attrs.Factory(list)
    probe_failures: list[Scrape] = attrs.Factory(list)
    probe_urls: list[str] = attrs.Factory(list)
    _started: float = 0.0

    @property
    def timeout(self) -> float:
        low, high = _TIMEOUT_RANGE
        return min(max(self.interval, low), high)

    async def scrape(self, index: int, phase: Phase, limit: float) -> Scrape:
        """One bounded scrape of endpoint *index*; never raises ``Exception``."""
        url, headers = self.endpoints[index]
        body, error = None, None
        asked = time.perf_counter()
        with anyio.move_on_after(limit) as scope:
            try:
                assert self.client is not None
                response = await self.client.get(url, headers=headers)
                if response.status_code == 200:
                    body = response.content
                else:
                    error = f"HTTP {response.status_code}"
            except Exception as exc:
                error = _one_line(exc)
        answered = time.perf_counter()
        if scope.cancelled_caught:
            error = f"no answer within {limit:g} s"
        t = (asked + answered) / 2
        if body is None:
            return Scrape(index, t, phase, None, error)
        # Parsing a large page takes tens of milliseconds of the interpreter, which a
        # worker thread would still take from the event loop: during the run the page
        # is only kept (compressed: ~20x, ~0.2 ms for 80 kB) and parsed after it.
        kept = Scrape(index, t, phase, None, None, zlib.compress(body, 1))
        if phase == "during":
            return kept
        return (await anyio.to_thread.run_sync(parse_pages, [kept]))[0]

    async def scrape_all(self, phase: Phase, limit: float) -> None:
        """Scrape every endpoint at once and keep what came back."""
        found: list[Scrape] = []

        async def one(index: int) -> None:
            found.append(await self.scrape(index, phase, limit))

        if len(self.endpoints) == 1:
            await one(0)
        else:
            async with anyio.create_task_group() as tg:
                for index in range(len(self.endpoints)):
                    tg.start_soon(one, index)
        self.scrapes += sorted(found, key=lambda s: s.endpoint)

    async def _periodic(self) -> None:
        """A scrape every interval on a fixed grid; a late one skips the ticks it
        missed rather than catching up with a burst."""
        due = self._started + self.interval
        while True:
            await anyio.sleep(max(due - time.perf_counter(), 0.0))
            await self.scrape_all("during", self.timeout)
            now = time.perf_counter()
            while due <= now:
                due += self.interval

    async def during(self, run: Coroutine[Any, Any, T]) -> T:
        """Await *run* (the executor) while scraping; its exception, if any, comes out
        as it is (not in an exception group)."""
        if not self.endpoints:
            return await run
        result: list[T] = []
        failure: Exception | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._periodic)
            try:
                result.append(await run)
            except Exception as exc:
                failure = exc
            tg.cancel_scope.cancel()
        if failure is not None:
            raise failure
        return result[0]

    async def finish(self, execution: Execution) -> ServerMetrics:
        """Scrape once more and sum the run up (its start is the executor's: the end
        of its last process less the duration)."""
        if self.endpoints:
            await self.scrape_all("after", _EDGE_TIMEOUT)
        ends = [s.end for s in execution.stats]
        run_end = max(ends) if ends else self._started + execution.duration
        run_start = run_end - execution.duration
        scrapes = await anyio.to_thread.run_sync(parse_pages, self.scrapes)
        return summarize(
            scrapes,
            [u for u, _ in self.endpoints],
            run_start=run_start,
            run_end=run_end,
            interval_s=self.interval,
            notes=self.notes,
            probe_failures=self.probe_failures,
            probe_urls=self.probe_urls,
        )


def _one_line(exc: BaseException) -> str:
    from ._drive import one_line_error

    return one_line_error(exc)


class _Off:
    """The scraper of a run without ``--server-metrics``."""

    async def during(self, run: Coroutine[Any, Any, T]) -> T:
        return await run

    async def finish(self, execution: Execution) -> None:
        return None


@contextlib.asynccontextmanager
async def scrape_server_metrics(
    config: BenchConfig, target: Target, console: Console
) -> AsyncIterator[Scraper | _Off]:
    """The run's scraper: with ``--server-metrics``, its endpoints scraped once (the
    default one, ``<base-url>/metrics``, dropped with one line when it does not answer);
    ``during(run)`` scrapes while the run goes on and ``finish(execution)`` sums it up.
    Without the flag, a scraper that does nothing."""
    if config.server_metrics is None:
        yield _Off()
        return
    import httpx

    require_prometheus_client()
    interval = config.server_metrics_interval / 1000.0
    explicit = [metrics_url(u) for u in config.server_metrics]
    urls = explicit or [target.base_url.rstrip("/") + "/metrics"]
    headers = _headers(config)
    endpoints = [(u, headers if _origin(u) == _origin(target.base_url) else {}) for u in urls]
    async with httpx.AsyncClient(verify=target.verify, timeout=_EDGE_TIMEOUT) as client:
        scraper = Scraper(endpoints, interval, client)
        await scraper.scrape_all("before", _EDGE_TIMEOUT)
        if not explicit and scraper.scrapes[0].samples is None:
            # The default endpoint is a guess: without an answer, none.
            probe = scraper.scrapes.pop()
            scraper.probe_failures.append(probe)
            scraper.probe_urls.append(urls[0])
            scraper.endpoints = []
            scraper.notes.append(
                f"Server metrics: {redact_url(urls[0])} did not answer ({probe.error}); "
                "not scraping (name an endpoint with --server-metrics URL)."
            )
        else:
            shown = ", ".join(redact_url(u) for u in urls)
            scraper.notes.append(f"Server metrics: scraping {shown} every {interval * 1000:g} ms")
        console.say_lines(scraper.notes)
        scraper._started = time.perf_counter()
        yield scraper


def _headers(config: BenchConfig) -> dict[str, str]:
    """The requests' headers and bearer key: only for an endpoint on the server's own
    origin, so a credential never travels to another host."""
    from .._engine import add_bearer
    from ..backends._base import api_key_from_env

    return add_bearer(dict(config.headers), api_key_from_env())
