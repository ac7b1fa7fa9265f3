"""The printed report, the result JSON keys, the file name and atomic saving."""

from __future__ import annotations

import json
import math
import os

import pytest

from anyio_llmreq import RequestFuncOutput
from anyio_llmreq.bench import calculate_metrics, format_report, result_filename
from anyio_llmreq.bench._records import save_result
from anyio_llmreq.bench._report import benchmark_result_dict, percentile_word, run_header

# vLLM NEW-HEAD's result keys (spec 4.6), for the default metrics and --metric-percentiles 99.
REFERENCE_KEYS = {
    "date", "endpoint_type", "label", "backend", "model_id", "tokenizer_id", "num_prompts",
    "request_rate", "burstiness", "max_concurrency",
    "duration", "completed", "failed", "total_input_tokens", "total_output_tokens",
    "request_throughput", "request_goodput", "output_throughput", "total_token_throughput",
    "input_lens", "output_lens", "ttfts", "itls", "start_times", "generated_texts", "errors",
    "max_output_tokens_per_s", "max_concurrent_requests", "rtfx",
    "mean_ttft_ms", "median_ttft_ms", "std_ttft_ms", "p99_ttft_ms",
    "mean_tpot_ms", "median_tpot_ms", "std_tpot_ms", "p99_tpot_ms",
    "mean_itl_ms", "median_itl_ms", "std_itl_ms", "p99_itl_ms",
}  # fmt: skip


def _metrics(percentiles=(99.0,)):
    outs = [
        RequestFuncOutput(success=True, latency=0.5, output_tokens=5, ttft=0.1,
                          itl=[0.1] * 4, prompt_len=10, start_time=1.0),
        RequestFuncOutput(success=False, error="boom", prompt_len=3),
    ]  # fmt: skip
    metrics, lens = calculate_metrics(outs, 2.0, selected_percentiles=percentiles)
    return metrics, lens, outs


def test_report_layout_is_vllms():
    metrics, _, _ = _metrics((99.0, 99.9))
    lines = format_report(
        metrics,
        duration=2.0,
        selected_metrics=["ttft", "tpot", "itl", "e2el"],
        max_concurrency=8,
        request_rate=4.0,
        goodput=True,
    )
    assert lines[0] == "{s:{c}^{n}}".format(s=" Serving Benchmark Result ", n=50, c="=")
    assert lines[0] == "============ Serving Benchmark Result ============"
    assert lines[1] == "{:<40} {:<10}".format("Successful requests:", 1)
    assert lines[2] == "{:<40} {:<10}".format("Failed requests:", 1)
    assert lines[3] == "{:<40} {:<10}".format("Maximum request concurrency:", 8)
    assert lines[4] == "{:<40} {:<10.2f}".format("Request rate configured (RPS):", 4.0)
    assert lines[5] == "{:<40} {:<10.2f}".format("Benchmark duration (s):", 2.0)
    labels = [line[:40].strip() for line in lines]
    assert labels[6:14] == [
        "Total input tokens:", "Total generated tokens:", "Request throughput (req/s):",
        "Request goodput (req/s):", "Output token throughput (tok/s):",
        "Peak output token throughput (tok/s):", "Peak concurrent requests:",
        "Total token throughput (tok/s):",
    ]  # fmt: skip
    assert "{s:{c}^{n}}".format(s="Time to First Token", n=50, c="-") in lines
    assert "{s:{c}^{n}}".format(s="End-to-end Latency", n=50, c="-") in lines
    assert "{:<40} {:<10.2f}".format("Mean TTFT (ms):", 100.0) in lines
    assert any(line.startswith("P99 TPOT (ms):") for line in lines)
    assert any(line.startswith("P99.9 E2EL (ms):") for line in lines)
    assert lines[-1] == "=" * 50


def test_report_hides_optional_lines():
    metrics, _, _ = _metrics()
    lines = format_report(metrics, duration=2.0, selected_metrics=["ttft"])
    text = "\n".join(lines)
    assert "Maximum request concurrency" not in text
    assert "Request rate configured" not in text
    assert "goodput" not in text
    assert "RTFx" not in text
    assert "Inter-token Latency" not in text


def test_report_puts_the_servers_input_total_beside_vllms():
    outs = [
        RequestFuncOutput(success=True, latency=0.5, output_tokens=5, ttft=0.1,
                          prompt_len=10, prompt_tokens=13),
        RequestFuncOutput(success=True, latency=0.5, output_tokens=5, ttft=0.1, prompt_len=10),
    ]  # fmt: skip
    metrics, _ = calculate_metrics(outs, 2.0)
    lines = format_report(metrics, duration=2.0, selected_metrics=[])
    at = lines.index("{:<40} {:<10}".format("Total input tokens:", 20))
    assert lines[at + 1] == "{:<40} {:<10}".format(
        "Total input tokens (server):", "13 (1/2 requests)"
    )
    outs[1].prompt_tokens = 9
    metrics, _ = calculate_metrics(outs, 2.0)
    lines = format_report(metrics, duration=2.0, selected_metrics=[])
    assert "{:<40} {:<10}".format("Total input tokens (server):", "22") in lines


def test_percentile_word():
    assert percentile_word(99.0) == "99"
    assert percentile_word(99.9) == "99.9"
    assert percentile_word(50) == "50"


def test_result_has_every_reference_key():
    metrics, lens, outs = _metrics()
    result = run_header(
        date="20250101-000000",
        backend="openai",
        label=None,
        model_id="org/model",
        tokenizer_id="org/model",
        num_prompts=2,
        metadata={"gpu": "h100"},
        request_rate=math.inf,
        burstiness=1.0,
        max_concurrency=None,
    )
    result.update(
        benchmark_result_dict(
            metrics, outs, lens, duration=2.0, selected_metrics=["ttft", "tpot", "itl"]
        )
    )
    assert REFERENCE_KEYS <= set(result)
    assert set(result) - REFERENCE_KEYS == {"gpu"}
    assert result["request_rate"] == "inf"
    assert result["request_goodput"] is None
    assert result["output_lens"] == [5, 0]
    assert result["errors"] == ["", "boom"]
    assert list(result)[:3] == ["date", "endpoint_type", "label"]
    json.dumps(result)


def test_ramp_up_header_and_events():
    metrics, lens, outs = _metrics()
    header = run_header(
        date="d",
        backend="vllm",
        label="x",
        model_id="m",
        tokenizer_id="m",
        num_prompts=1,
        metadata={},
        request_rate=math.inf,
        burstiness=1.0,
        max_concurrency=4,
        ramp_up=("linear", 1, 10),
    )
    assert (header["ramp_up_strategy"], header["ramp_up_start_rps"], header["ramp_up_end_rps"]) == (
        "linear",
        1,
        10,
    )
    body = benchmark_result_dict(
        metrics,
        outs,
        lens,
        duration=1.0,
        selected_metrics=["e2el"],
        rps_change_events=[{"rps": 1, "timestamp": "t"}],
    )
    assert body["rps_change_events"] == [{"rps": 1, "timestamp": "t"}]
    assert "p99_e2el_ms" in body and "p99_ttft_ms" not in body


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"request_rate": math.inf, "max_concurrency": None},
         "openai-infqps-Llama-3-8B-20250101-120000.json"),
        ({"request_rate": 10.0, "max_concurrency": 64},
         "openai-10.0qps-concurrency64-Llama-3-8B-20250101-120000.json"),
        ({"request_rate": math.inf, "max_concurrency": None, "label": "mine"},
         "mine-infqps-Llama-3-8B-20250101-120000.json"),
        ({"request_rate": math.inf, "max_concurrency": 8, "ramp_up": ("linear", 1, 20)},
         "openai-ramp-up-linear-1qps-20qps-concurrency8-Llama-3-8B-20250101-120000.json"),
    ],
)  # fmt: skip
def test_result_filename(kwargs, name):
    kwargs.setdefault("label", None)
    assert (
        result_filename(
            backend="openai", model_id="meta/Llama-3-8B", date="20250101-120000", **kwargs
        )
        == name
    )


def test_save_result_is_atomic_and_appends(tmp_path):
    path = tmp_path / "sub" / "r.json"
    save_result(str(path), {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    save_result(str(path), {"b": 2}, append=True)
    assert path.read_text() == '{"a": 1}\n{"b": 2}'
    save_result(str(path), {"c": 3})
    assert json.loads(path.read_text()) == {"c": 3}
    assert os.listdir(path.parent) == ["r.json"]  # no temp file left


def test_save_result_leaves_the_old_file_on_error(tmp_path):
    path = tmp_path / "r.json"
    save_result(str(path), {"a": 1})
    with pytest.raises(TypeError):
        save_result(str(path), {"bad": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["r.json"]
