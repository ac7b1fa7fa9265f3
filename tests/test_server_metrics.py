"""``--server-metrics``: Prometheus pages of vLLM, SGLang, TGI, llama.cpp and Triton
parsed and named, histogram percentiles as Prometheus estimates them, counters as
deltas and rates, vLLM's speculative-decoding keys, the mock server's ``/metrics``, and
runs against the embedded and a separate mock server, with endpoints that fail."""

from __future__ import annotations

import argparse
import io
import math
import socket
import sys
from typing import Any

import httpx
import pytest

from anyio_llmreq.bench import BenchConfig, arun_benchmark, run_benchmark
from anyio_llmreq.bench._cli import add_arguments, config_from_args
from anyio_llmreq.bench._config import UsageError
from anyio_llmreq.bench._server_metrics import (
    Sample,
    Scrape,
    SpecDecodeCounts,
    histogram_quantile,
    label_for,
    metrics_url,
    parse_exposition,
    require_prometheus_client,
    series_key,
    spec_decode_lines,
    spec_decode_result,
    summarize,
)
from anyio_llmreq.testing import MockBehaviour, MockServerThread, open_mock_server
from anyio_llmreq.testing._metrics import spec_decode_counts

# --- pages as the servers write them (their docs' examples, cut short) -------------------

VLLM = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B"} 3.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-8B"} 1.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="meta-llama/Llama-3.1-8B"} 0.25
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="meta-llama/Llama-3.1-8B"} 1234.0
# HELP vllm:prompt_tokens_created Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_created gauge
vllm:prompt_tokens_created{engine="0",model_name="meta-llama/Llama-3.1-8B"} 1.7e+09
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="stop",model_name="meta-llama/Llama-3.1-8B"} 5.0
vllm:request_success_total{engine="0",finished_reason="length",model_name="meta-llama/Llama-3.1-8B"} 7.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_sum{engine="0",model_name="meta-llama/Llama-3.1-8B"} 2.5
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="meta-llama/Llama-3.1-8B"} 10.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.5",model_name="meta-llama/Llama-3.1-8B"} 30.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="1.0",model_name="meta-llama/Llama-3.1-8B"} 40.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B"} 40.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="meta-llama/Llama-3.1-8B"} 40.0
# HELP vllm:spec_decode_num_drafts_total Number of spec decoding drafts.
# TYPE vllm:spec_decode_num_drafts_total counter
vllm:spec_decode_num_drafts_total{engine="0",model_name="meta-llama/Llama-3.1-8B"} 100.0
# HELP vllm:spec_decode_num_draft_tokens_total Number of draft tokens.
# TYPE vllm:spec_decode_num_draft_tokens_total counter
vllm:spec_decode_num_draft_tokens_total{engine="0",model_name="meta-llama/Llama-3.1-8B"} 300.0
# HELP vllm:spec_decode_num_accepted_tokens_total Number of accepted tokens.
# TYPE vllm:spec_decode_num_accepted_tokens_total counter
vllm:spec_decode_num_accepted_tokens_total{engine="0",model_name="meta-llama/Llama-3.1-8B"} 150.0
# HELP vllm:spec_decode_num_accepted_tokens_per_pos_total Accepted tokens per draft position.
# TYPE vllm:spec_decode_num_accepted_tokens_per_pos_total counter
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="meta-llama/Llama-3.1-8B",position="0"} 90.0
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="meta-llama/Llama-3.1-8B",position="1"} 60.0
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="meta-llama/Llama-3.1-8B",position="2"} 0.0
"""  # noqa: E501

SGLANG = """\
# HELP sglang:prompt_tokens_total Number of prefill tokens processed.
# TYPE sglang:prompt_tokens_total counter
sglang:prompt_tokens_total{model_name="meta-llama/Llama-3.1-8B-Instruct"} 8.128902e+06
# HELP sglang:token_usage The token usage
# TYPE sglang:token_usage gauge
sglang:token_usage{model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.28
# HELP sglang:cache_hit_rate The cache hit rate
# TYPE sglang:cache_hit_rate gauge
sglang:cache_hit_rate{model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.007507552643049313
# HELP sglang:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE sglang:time_to_first_token_seconds histogram
sglang:time_to_first_token_seconds_sum{model_name="meta-llama/Llama-3.1-8B-Instruct"} 2.3518979474117756e+06
sglang:time_to_first_token_seconds_bucket{le="0.04",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.0
sglang:time_to_first_token_seconds_bucket{le="1.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 27.0
sglang:time_to_first_token_seconds_bucket{le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 11008.0
sglang:time_to_first_token_seconds_count{model_name="meta-llama/Llama-3.1-8B-Instruct"} 11008.0
# HELP sglang:num_running_reqs The number of running requests
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="meta-llama/Llama-3.1-8B-Instruct"} 162.0
# HELP sglang:num_queue_reqs The number of requests in the waiting queue
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{model_name="meta-llama/Llama-3.1-8B-Instruct"} 2826.0
"""  # noqa: E501

# TGI (metrics-exporter-prometheus): counters without ``_total``, histograms with buckets.
TGI = """\
# TYPE tgi_request_count counter
tgi_request_count 12
# TYPE tgi_request_success counter
tgi_request_success 11
# TYPE tgi_queue_size gauge
tgi_queue_size 4
# TYPE tgi_batch_current_size gauge
tgi_batch_current_size 8
# TYPE tgi_request_queue_duration histogram
tgi_request_queue_duration_bucket{le="0.001"} 2
tgi_request_queue_duration_bucket{le="0.01"} 9
tgi_request_queue_duration_bucket{le="+Inf"} 12
tgi_request_queue_duration_sum 0.5
tgi_request_queue_duration_count 12
"""

# llama.cpp (llama-server --metrics): ``nan`` before the first generation.
LLAMACPP = """\
# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 512
# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 39080
# HELP llamacpp:predicted_tokens_seconds Average generation throughput in tokens/s.
# TYPE llamacpp:predicted_tokens_seconds gauge
llamacpp:predicted_tokens_seconds nan
# HELP llamacpp:kv_cache_usage_ratio KV-cache usage. 1 means 100 percent usage.
# TYPE llamacpp:kv_cache_usage_ratio gauge
llamacpp:kv_cache_usage_ratio 0.5
# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 1
# HELP llamacpp:requests_deferred Number of requests deferred.
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 4
"""

TRITON = """\
# HELP nv_inference_request_success Number of successful inference requests, all batch sizes
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="ensemble",version="1"} 42
# HELP nv_inference_queue_duration_us Cumulative inference queuing duration in microseconds
# TYPE nv_inference_queue_duration_us counter
nv_inference_queue_duration_us{model="ensemble",version="1"} 1234
# HELP nv_inference_pending_request_count Instantaneous number of pending requests
# TYPE nv_inference_pending_request_count gauge
nv_inference_pending_request_count{model="ensemble",version="1"} 3
# HELP nv_gpu_utilization GPU utilization rate [0.0 - 1.0)
# TYPE nv_gpu_utilization gauge
nv_gpu_utilization{gpu_uuid="GPU-abc"} 0.5
"""


def _kinds(page: str) -> dict[str, tuple[str, str | None]]:
    return {key: (s.kind, label_for(s.metric)) for key, s in parse_exposition(page).items()}


def test_vllm_page_named_and_typed():
    found = _kinds(VLLM)
    m = 'engine="0",model_name="meta-llama/Llama-3.1-8B"'
    assert found[f"vllm:num_requests_running{{{m}}}"] == ("gauge", "running requests")
    assert found[f"vllm:num_requests_waiting{{{m}}}"] == ("gauge", "queue depth")
    assert found[f"vllm:kv_cache_usage_perc{{{m}}}"] == ("gauge", "KV-cache usage")
    assert found[f"vllm:prompt_tokens_total{{{m}}}"] == ("counter", "prompt tokens")
    key = 'vllm:request_success_total{engine="0",finished_reason="stop",model_name="meta-llama/Llama-3.1-8B"}'  # noqa: E501
    assert found[key] == ("counter", "successful requests")
    assert found[f"vllm:time_to_first_token_seconds{{{m}}}"] == ("histogram", "server TTFT")
    # The counter's creation time is not a series.
    assert not any("_created" in k for k in found)
    ttft = parse_exposition(VLLM)[f"vllm:time_to_first_token_seconds{{{m}}}"]
    assert ttft.buckets == ((0.1, 10.0), (0.5, 30.0), (1.0, 40.0), (math.inf, 40.0))
    assert (ttft.count, ttft.total) == (40.0, 2.5)


def test_sglang_page_named_and_typed():
    found = _kinds(SGLANG)
    m = 'model_name="meta-llama/Llama-3.1-8B-Instruct"'
    assert found[f"sglang:num_queue_reqs{{{m}}}"] == ("gauge", "queue depth")
    assert found[f"sglang:num_running_reqs{{{m}}}"] == ("gauge", "running requests")
    assert found[f"sglang:token_usage{{{m}}}"] == ("gauge", "KV-cache usage")
    assert found[f"sglang:cache_hit_rate{{{m}}}"] == ("gauge", "prefix-cache hit rate")
    assert found[f"sglang:prompt_tokens_total{{{m}}}"] == ("counter", "prompt tokens")
    assert found[f"sglang:time_to_first_token_seconds{{{m}}}"] == ("histogram", "server TTFT")


def test_tgi_page_named_and_typed():
    found = _kinds(TGI)
    assert found["tgi_queue_size"] == ("gauge", "queue depth")
    assert found["tgi_batch_current_size"] == ("gauge", "running requests")
    # A counter is keyed as Prometheus names its sample, with _total.
    assert found["tgi_request_count_total"] == ("counter", "requests")
    assert found["tgi_request_success_total"] == ("counter", "successful requests")
    assert found["tgi_request_queue_duration"] == ("histogram", "queue time")


def test_llamacpp_page_named_and_typed():
    found = _kinds(LLAMACPP)
    assert found["llamacpp:requests_processing"] == ("gauge", "running requests")
    assert found["llamacpp:requests_deferred"] == ("gauge", "queue depth")
    assert found["llamacpp:kv_cache_usage_ratio"] == ("gauge", "KV-cache usage")
    assert found["llamacpp:prompt_tokens_total"] == ("counter", "prompt tokens")
    assert found["llamacpp:tokens_predicted_total"] == ("counter", "generation tokens")
    assert math.isnan(parse_exposition(LLAMACPP)["llamacpp:predicted_tokens_seconds"].value)


def test_triton_page_named_and_typed():
    found = _kinds(TRITON)
    m = 'model="ensemble",version="1"'
    assert found[f"nv_inference_pending_request_count{{{m}}}"] == ("gauge", "queue depth")
    assert found[f"nv_inference_request_success_total{{{m}}}"] == (
        "counter",
        "successful requests",
    )
    assert found[f"nv_inference_queue_duration_us_total{{{m}}}"] == ("counter", "queue time (us)")
    assert found['nv_gpu_utilization{gpu_uuid="GPU-abc"}'] == ("gauge", "GPU utilization")


def test_unknown_series_are_kept_raw():
    page = "# TYPE my_gauge gauge\nmy_gauge 2\nmy_untyped_total 3\nother 4\n"
    found = _kinds(page)
    assert found == {
        "my_gauge": ("gauge", None),
        "my_untyped_total": ("counter", None),
        "other": ("gauge", None),
    }


def test_a_page_that_is_not_prometheus_text_is_an_error():
    with pytest.raises(ValueError):
        parse_exposition("<html><body>Not found</body></html>\n")


# --- histogram percentiles, as Prometheus' histogram_quantile ---------------------------

BUCKETS = [(0.1, 10.0), (0.5, 30.0), (1.0, 40.0), (math.inf, 40.0)]


def test_percentiles_interpolate_inside_the_bucket():
    # p50: rank 20 is 10 into (0.1, 0.5], which holds 20: 0.1 + 0.4 * 10/20.
    assert histogram_quantile(0.5, BUCKETS) == pytest.approx(0.3)
    # p90: rank 36 is 6 into (0.5, 1.0], which holds 10: 0.5 + 0.5 * 6/10.
    assert histogram_quantile(0.9, BUCKETS) == pytest.approx(0.8)
    assert histogram_quantile(0.99, BUCKETS) == pytest.approx(0.98)
    # The first bucket starts at 0.
    assert histogram_quantile(0.25, BUCKETS) == pytest.approx(0.1 * 10 / 10)
    assert histogram_quantile(0.05, BUCKETS) == pytest.approx(0.1 * 2 / 10)


def test_percentiles_at_the_edges():
    # In the +Inf bucket: the largest finite bound.
    assert histogram_quantile(0.5, [(0.1, 1.0), (math.inf, 10.0)]) == 0.1
    # A first bucket with a bound at or below zero: that bound.
    assert histogram_quantile(0.5, [(0.0, 5.0), (1.0, 6.0), (math.inf, 6.0)]) == 0.0
    # Counts that dip (read at different moments) are made monotonic first.
    assert histogram_quantile(0.5, [(1.0, 4.0), (2.0, 3.0), (math.inf, 4.0)]) == 0.5
    # Nothing to estimate from.
    assert histogram_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None
    assert histogram_quantile(0.5, [(0.1, 3.0), (1.0, 5.0)]) is None  # no +Inf bucket
    assert histogram_quantile(0.5, [(math.inf, 3.0)]) is None


# --- counters, gauges and histograms over a run -----------------------------------------


def _page(**values: float) -> dict[str, Sample]:
    return {
        name: Sample("counter" if name.endswith("_total") else "gauge", name, name, {}, value)
        for name, value in values.items()
    }


def _hist(buckets: list[tuple[float, float]], total: float) -> dict[str, Sample]:
    return {
        "h_seconds": Sample(
            "histogram", "h_seconds", "h_seconds", {}, buckets=tuple(buckets),
            count=buckets[-1][1], total=total,
        )
    }  # fmt: skip


def _scrapes(*pages: dict[str, Sample] | None, t0: float = 100.0) -> list[Scrape]:
    phases = ["before"] + ["during"] * (len(pages) - 2) + ["after"]
    return [
        Scrape(0, t0 + i, phase, page, None if page is not None else "HTTP 500")  # type: ignore[arg-type]
        for i, (phase, page) in enumerate(zip(phases, pages, strict=True))
    ]


def _summary(scrapes: list[Scrape], start: float = 100.5, end: float = 102.5):
    return summarize(scrapes, ["http://s/metrics"], run_start=start, run_end=end, interval_s=1.0)


def test_counters_as_delta_rate_and_rates_between_scrapes():
    scrapes = _scrapes(_page(c_total=10), _page(c_total=15), _page(c_total=15), _page(c_total=25))
    c = _summary(scrapes).series["c_total"]
    assert c.kind == "counter"
    assert c.delta == 15 and c.rate == pytest.approx(5.0)  # 15 over 3 s
    assert c.points == [(0.5, 5.0), (1.5, 0.0), (2.5, 10.0)]  # t from the run's start
    assert c.mean == pytest.approx(5.0) and c.max == 10.0
    assert c.percentiles is None


def test_counter_restarts_and_late_series():
    # A drop is a restart from zero (Prometheus' increase()).
    restart = _summary(_scrapes(_page(c_total=10), _page(c_total=15), _page(c_total=3)))
    assert restart.series["c_total"].delta == 8
    # Absent from the first page: created during the run, from zero.
    late = _summary(_scrapes(_page(x=1), _page(x=1, c_total=4), _page(x=1, c_total=6)))
    assert late.series["c_total"].delta == 6
    # Seen once only: no delta, no rate.
    once = _summary(_scrapes(_page(c_total=4), None, None))
    assert once.series["c_total"].delta is None and once.series["c_total"].rate is None
    assert [f.error for f in once.failures] == ["HTTP 500", "HTTP 500"]
    assert once.scrapes == 3


def test_gauges_mean_and_max_over_the_run():
    scrapes = _scrapes(_page(g=9), _page(g=1), _page(g=3), _page(g=8), t0=100.0)
    # Run from 100.5 to 102.5: the scrapes at 101 and 102 are in it.
    g = _summary(scrapes).series["g"]
    assert g.kind == "gauge"
    assert g.points == [(-0.5, 9.0), (0.5, 1.0), (1.5, 3.0), (2.5, 8.0)]
    assert g.mean == 2.0 and g.max == 3.0
    assert g.delta is None and g.rate is None
    # A run shorter than the interval: the scrapes around it.
    short = _summary(_scrapes(_page(g=2), _page(g=4)), start=100.2, end=100.4)
    assert short.series["g"].mean == 3.0 and short.series["g"].max == 4.0


def test_non_finite_gauge_values_are_left_out():
    g = _summary(_scrapes(_page(g=math.nan), _page(g=2), _page(g=4))).series["g"]
    assert g.points == [(0.5, 2.0), (1.5, 4.0)]
    assert g.mean == 3.0 and g.max == 4.0


def test_histograms_as_the_observations_of_the_run():
    before = _hist([(0.1, 1.0), (0.5, 2.0), (1.0, 2.0), (math.inf, 2.0)], total=0.3)
    middle = _hist([(0.1, 6.0), (0.5, 12.0), (1.0, 12.0), (math.inf, 12.0)], total=2.3)
    after = _hist([(0.1, 11.0), (0.5, 32.0), (1.0, 42.0), (math.inf, 42.0)], total=14.3)
    h = _summary(_scrapes(before, middle, after)).series["h_seconds"]
    assert h.kind == "histogram"
    # The increases (10, 30, 40, 40) are BUCKETS: their percentiles.
    assert h.delta == 40 and h.rate == pytest.approx(20.0)
    assert h.percentiles == pytest.approx({"p50": 0.3, "p90": 0.8, "p99": 0.98})
    assert h.mean == pytest.approx(14.0 / 40)
    assert h.points == [(0.5, pytest.approx(0.2)), (1.5, pytest.approx(0.4))]
    assert h.max == pytest.approx(0.4)
    # A count that drops is a restart from zero: the later page's observations count.
    restarted = _hist([(0.1, 1.0), (0.5, 3.0), (1.0, 4.0), (math.inf, 4.0)], total=1.0)
    again = _summary(_scrapes(after, restarted)).series["h_seconds"]
    assert again.delta == 4 and again.mean == 0.25
    # No observation during the run: no percentiles.
    still = _summary(_scrapes(before, before)).series["h_seconds"]
    assert still.delta == 0 and still.percentiles is None and still.mean is None


def test_several_endpoints_get_an_instance_label():
    scrapes = [
        Scrape(0, 100.0, "before", _page(g=1), None),
        Scrape(1, 100.0, "before", _page(g=2), None),
        Scrape(0, 101.0, "after", _page(g=3), None),
        Scrape(1, 101.0, "after", None, "HTTP 503"),
    ]
    found = summarize(
        scrapes,
        ["http://a:1/metrics", "http://user:secret@b:2/metrics"],
        run_start=100.0,
        run_end=101.0,
        interval_s=1.0,
    )
    assert set(found.series) == {'g{instance="a:1"}', 'g{instance="b:2"}'}
    assert found.endpoints[1] != "http://user:secret@b:2/metrics"  # no password shown
    assert "secret" not in repr(found.to_json())
    assert found.failures[0].error == "HTTP 503" and found.failures[0].t_s == 1.0


def test_result_json_has_the_agreed_shape():
    scrapes = _scrapes(_page(g=1, c_total=1), _page(g=2, c_total=3))
    data = _summary(scrapes, start=100.0, end=101.0).to_json()
    assert set(data) == {"endpoints", "interval_s", "scrapes", "failures", "series"}
    for series in data["series"].values():
        assert set(series) == {
            "kind", "label", "points", "mean", "max", "delta", "rate", "percentiles",
        }  # fmt: skip
        assert all(isinstance(p, list) and len(p) == 2 for p in series["points"])


# --- speculative decoding, as vllm bench serve computes it -------------------------------


def test_spec_decode_counts_read_as_vllm_reads_them():
    counts = SpecDecodeCounts.from_samples(parse_exposition(VLLM).values())
    assert counts == SpecDecodeCounts(100, 300, 150, {0: 90, 1: 60, 2: 0})
    assert SpecDecodeCounts.from_samples(parse_exposition(SGLANG).values()) is None
    # Two engines: summed, as vLLM sums every line.
    two = VLLM + VLLM.replace('engine="0"', 'engine="1"').replace("# ", "# X")
    doubled = SpecDecodeCounts.from_samples(parse_exposition(two).values())
    assert doubled == SpecDecodeCounts(200, 600, 300, {0: 180, 1: 120, 2: 0})


def test_spec_decode_result_uses_vllm_formulas():
    before = SpecDecodeCounts(10, 30, 20, {0: 12, 1: 8})
    after = SpecDecodeCounts(110, 330, 170, {0: 102, 1: 68, 2: 0})
    keys = spec_decode_result(before, after)
    assert keys == {
        "spec_decode_acceptance_rate": 50.0,  # 150 accepted of 300 drafted, in %
        "spec_decode_acceptance_length": 2.5,  # 1 + 150 / 100 drafts
        "spec_decode_num_drafts": 100,
        "spec_decode_draft_tokens": 300,
        "spec_decode_accepted_tokens": 150,
        "spec_decode_per_position_acceptance_rates": [0.9, 0.6, 0.0],
    }
    # Nothing drafted, or a page without the counters: no keys (vLLM's None).
    assert spec_decode_result(after, after) is None
    assert spec_decode_result(None, after) is None
    lines = spec_decode_lines(keys)
    assert lines == [
        "---------------Speculative Decoding---------------",
        "{:<40} {:<10.2f}".format("Acceptance rate (%):", 50.0),
        "{:<40} {:<10.2f}".format("Acceptance length:", 2.5),
        "{:<40} {:<10}".format("Drafts:", 100),
        "{:<40} {:<10}".format("Draft tokens:", 300),
        "{:<40} {:<10}".format("Accepted tokens:", 150),
        "Per-position acceptance (%):",
        "{:<40} {:<10.2f}".format("  Position 0:", 90.0),
        "{:<40} {:<10.2f}".format("  Position 1:", 60.0),
        "{:<40} {:<10.2f}".format("  Position 2:", 0.0),
    ]


def test_mock_spec_decode_arithmetic():
    # 8 tokens: 1 from the prefill, then steps of a + 1 = 3 tokens: 3 drafts.
    assert spec_decode_counts(8, (4, 2)) == (3, 12, 6)
    assert spec_decode_counts(1, (4, 2)) == (0, 0, 0)
    assert spec_decode_counts(5, (3, 0)) == (4, 12, 0)


# --- the mock server's /metrics ----------------------------------------------------------


def test_mock_metrics_page_parses_and_counts_what_it_served():
    with MockServerThread(MockBehaviour(spec_decode=(4, 2), output_len=10)) as server:
        url = server.base_url
        for _ in range(3):
            body = {"model": "m", "prompt": "a b c", "max_tokens": 7, "stream": True}
            httpx.post(url + "/v1/completions", json=body).raise_for_status()
        httpx.post(url + "/v1/completions", json={"model": "m", "prompt": "a b"})
        page = httpx.get(url + "/metrics")
        assert page.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert server.stats.requests == 4  # a scrape is not a request
        assert server.errors == []
    found = parse_exposition(page.text)
    labels = 'engine="0",model_name="mock-model"'
    assert found[f"vllm:prompt_tokens_total{{{labels}}}"].value == 3 * 3 + 2
    assert found[f"vllm:generation_tokens_total{{{labels}}}"].value == 3 * 7 + 10
    success = 'vllm:request_success_total{engine="0",finished_reason="%s",model_name="mock-model"}'
    assert found[success % "length"].value == 3 and found[success % "stop"].value == 1
    assert found[f"vllm:time_to_first_token_seconds{{{labels}}}"].count == 4
    assert found[f"vllm:e2e_request_latency_seconds{{{labels}}}"].count == 4
    assert found[f"vllm:num_requests_running{{{labels}}}"].value == 0
    counts = SpecDecodeCounts.from_samples(found.values())
    drafts = 3 * spec_decode_counts(7, (4, 2))[0] + spec_decode_counts(10, (4, 2))[0]
    assert counts == SpecDecodeCounts(
        drafts, 4 * drafts, 2 * drafts, {0: drafts, 1: drafts, 2: 0, 3: 0}
    )


def test_mock_metrics_show_running_requests():
    # The first token at once, the second in 30 s: the request is running meanwhile.
    with MockServerThread(MockBehaviour(itl=30.0, output_len=2)) as server:
        body = {"prompt": "x", "stream": True}
        with httpx.stream("POST", server.base_url + "/v1/completions", json=body) as stream:
            assert next(stream.iter_lines()).startswith("data:")
            page = parse_exposition(httpx.get(server.base_url + "/metrics").text)
        # Without spec_decode, vLLM shows no spec-decode counters.
        assert SpecDecodeCounts.from_samples(page.values()) is None
    running = next(s for s in page.values() if s.name == "vllm:num_requests_running")
    assert running.value == 1


# --- flags --------------------------------------------------------------------------------


def _config(*argv: str) -> BenchConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args(list(argv)))


def test_flags():
    assert _config().server_metrics is None
    assert _config("--server-metrics").server_metrics == ()
    two = _config("--server-metrics", "http://a:1/metrics", "http://b:2")
    assert two.server_metrics == ("http://a:1/metrics", "http://b:2")
    assert _config().server_metrics_interval == 1000.0
    assert _config("--server-metrics-interval", "250").server_metrics_interval == 250.0
    hidden = _config("--server-metrics", "http://u:pw@a:1/metrics")
    assert "pw" not in repr(hidden)
    assert metrics_url("http://b:2") == "http://b:2/metrics"
    assert metrics_url("http://b:2/") == "http://b:2/metrics"
    assert metrics_url("http://b:2/prom") == "http://b:2/prom"


@pytest.mark.parametrize(
    ("argv", "where"),
    [
        (["--server-metrics", "--server-metrics-interval", "5"], "--server-metrics-interval"),
        (["--server-metrics", "ftp://host/metrics"], "--server-metrics"),
        (["--server-metrics", "localhost:8000/metrics"], "--server-metrics"),
        (["--server-metrics", "http://host:99999/metrics"], "--server-metrics"),
    ],
)
def test_bad_flags_are_usage_errors(argv, where):
    with pytest.raises(UsageError) as info:
        _config(*argv).validate(set())
    assert info.value.where == where


def test_missing_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.setitem(sys.modules, "prometheus_client.parser", None)
    with pytest.raises(UsageError) as info:
        require_prometheus_client()
    assert "pip install 'anyio-llmreq[metrics]'" in str(info.value)
    with pytest.raises(UsageError, match=r"anyio-llmreq\[metrics\]"):
        run_benchmark(BenchConfig(server_metrics=(), num_prompts=1, quiet=True))


# --- whole runs ----------------------------------------------------------------------------

FAST: dict[str, Any] = {
    "num_prompts": 12, "mock_ttft": 0.0, "mock_itl": 0.0, "random_input_len": 16,
    "random_output_len": 8, "request_rate": math.inf, "disable_tqdm": True,
    "server_metrics_interval": 10.0,
}  # fmt: skip
LABELS = 'engine="0",model_name="mock-model"'
MOCK = {"engine": "0", "model_name": "mock-model"}


def test_embedded_run_puts_server_metrics_in_the_result():
    out = io.StringIO()
    result = run_benchmark(BenchConfig(server_metrics=(), **FAST), stdout=out)
    data = result.result
    sm = data["server_metrics"]
    assert sm["endpoints"] == [result.base_url + "/metrics"]
    assert sm["interval_s"] == 0.01 and sm["failures"] == [] and sm["scrapes"] >= 2
    series = sm["series"]
    # The server counted what the client measured.
    prompt = series[f"vllm:prompt_tokens_total{{{LABELS}}}"]
    assert prompt["label"] == "prompt tokens" and prompt["kind"] == "counter"
    assert prompt["delta"] == data["total_input_tokens"] == 12 * 16
    assert series[f"vllm:generation_tokens_total{{{LABELS}}}"]["delta"] == 12 * 8
    success = series[
        series_key("vllm:request_success_total", {**MOCK, "finished_reason": "length"})
    ]
    assert success["delta"] == data["completed"] == 12
    ttft = series[f"vllm:time_to_first_token_seconds{{{LABELS}}}"]
    assert ttft["label"] == "server TTFT" and ttft["delta"] == 12
    assert set(ttft["percentiles"]) == {"p50", "p90", "p99"}
    running = series[f"vllm:num_requests_running{{{LABELS}}}"]
    assert running["label"] == "running requests" and running["kind"] == "gauge"
    # Times from the run's start: the first scrape before it, the last after it.
    assert running["points"][0][0] < 0 < data["duration"] < running["points"][-1][0]
    # No speculative decoding on this server: no keys.
    assert not any(key.startswith("spec_decode") for key in data)
    text = out.getvalue()
    assert "Server metrics: scraping " in text
    assert "------------------Server Metrics------------------" in text
    assert "Prompt tokens total, per s:" in text and "Server TTFT P50/P90/P99 (ms):" in text
    assert "Speculative Decoding" not in text
    # The sections come before the self-check and the closing line.
    assert text.index("Server Metrics") < text.index("Client self-check")


@pytest.mark.anyio
async def test_spec_decode_keys_against_a_separate_server(anyio_backend):
    loop: Any = "uvloop" if anyio_backend[1].get("use_uvloop") else anyio_backend[0]
    out = io.StringIO()
    async with open_mock_server(MockBehaviour(spec_decode=(4, 2)), record=False) as server:
        # Earlier traffic: the keys cover the run only.
        async with httpx.AsyncClient() as http:
            await http.post(server.base_url + "/v1/completions", json={"prompt": "x"})
        config = BenchConfig(
            base_url=server.base_url, tokenizer_mode="words", loop=loop,
            server_metrics=(server.base_url + "/metrics",), ignore_eos=True, **FAST,
        )  # fmt: skip
        result = await arun_benchmark(config, stdout=out, handle_signals=False)
    data = result.result
    # 8 tokens a request: the first from the prefill, then 3 drafts of 4, 2 accepted each.
    drafts = 12 * 3
    assert data["spec_decode_num_drafts"] == drafts
    assert data["spec_decode_draft_tokens"] == 4 * drafts
    assert data["spec_decode_accepted_tokens"] == 2 * drafts
    assert data["spec_decode_acceptance_rate"] == 50.0
    assert data["spec_decode_acceptance_length"] == 3.0
    assert data["spec_decode_per_position_acceptance_rates"] == [1.0, 1.0, 0.0, 0.0]
    text = out.getvalue()
    assert "---------------Speculative Decoding---------------" in text
    assert "{:<40} {:<10.2f}".format("Acceptance rate (%):", 50.0) in text
    assert "{:<40} {:<10}".format("Drafts:", drafts) in text
    assert "{:<40} {:<10.2f}".format("  Position 1:", 100.0) in text
    assert "Spec-decode" not in text  # the counters have that section, not a line each
    drafted = data["server_metrics"]["series"][f"vllm:spec_decode_num_drafts_total{{{LABELS}}}"]
    assert drafted["label"] == "spec-decode drafts" and drafted["delta"] == drafts


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_failing_endpoints_are_reported_and_the_run_succeeds():
    dead = f"http://127.0.0.1:{_closed_port()}/metrics"
    out = io.StringIO()
    with MockServerThread(record=False) as server:
        good = server.base_url + "/metrics"
        missing = server.base_url + "/nothing-here"
        config = BenchConfig(
            base_url=server.base_url, tokenizer_mode="words",
            server_metrics=(good, dead, missing), **FAST,
        )  # fmt: skip
        result = run_benchmark(config, stdout=out)
    assert result.metrics.completed == 12
    sm = result.result["server_metrics"]
    assert sm["endpoints"] == [good, dead, missing]
    by_url = {f["url"] for f in sm["failures"]}
    assert by_url == {dead, missing}
    assert all("\n" not in f["error"] for f in sm["failures"])
    assert {f["error"] for f in sm["failures"] if f["url"] == missing} == {"HTTP 404"}
    assert any("Connect" in f["error"] for f in sm["failures"] if f["url"] == dead)
    # Several endpoints: the series say which one they came from (the whole URL, as
    # two of them share a host).
    assert series_key("vllm:num_requests_running", {**MOCK, "instance": good}) in sm["series"]
    text = out.getvalue()
    failed = len(sm["failures"])
    assert f"Scrapes (failed):                        {sm['scrapes']} ({failed})" in text


def test_a_default_endpoint_that_does_not_answer_is_said_and_skipped():
    out = io.StringIO()
    with MockServerThread(record=False) as server:
        # Under a path prefix the mock has no /prefix/metrics (its routes end alike).
        config = BenchConfig(
            base_url=server.base_url + "/prefix", model="mock-model", tokenizer_mode="words",
            server_metrics=(), **FAST,
        )  # fmt: skip
        result = run_benchmark(config, stdout=out)
    assert result.metrics.completed == 12
    sm = result.result["server_metrics"]
    assert sm["endpoints"] == [] and sm["series"] == {}
    (failure,) = sm["failures"]
    assert failure["url"] == server.base_url + "/prefix/metrics"
    assert failure["error"] == "HTTP 404" and failure["t_s"] < 0
    text = out.getvalue()
    (said,) = [line for line in text.splitlines() if line.startswith("Server metrics:")]
    assert "did not answer (HTTP 404)" in said
    assert "Scraped:                                 nothing" in text


def test_report_lines_name_the_series():
    running = "vllm:num_requests_running"

    def page(a: float, b: float, hits: float) -> dict[str, Sample]:
        pages = {
            series_key(running, {"engine": e}): Sample("gauge", running, running, {"engine": e}, v)
            for e, v in (("0", a), ("1", b))
        }
        pages["vllm:prefix_cache_hits_total"] = Sample(
            "counter", "vllm:prefix_cache_hits", "vllm:prefix_cache_hits_total", {}, hits
        )
        pages["raw_gauge"] = Sample("gauge", "raw_gauge", "raw_gauge", {}, 1.0)
        return pages

    found = _summary(_scrapes(page(0, 0, 10), page(2, 4, 30), page(4, 6, 50)))
    lines = found.report_lines()
    assert lines[0] == "------------------Server Metrics------------------"
    assert lines[1] == "{:<40} {}".format("Scrapes (failed):", "3 (0), every 1000 ms")
    assert lines[2:] == [
        "{:<40} {}".format("Running requests [engine=0] mean/max:", "3.00 / 4.00"),
        "{:<40} {}".format("Running requests [engine=1] mean/max:", "5.00 / 6.00"),
        "{:<40} {}".format("Prefix-cache hits (tokens) total, per s:", "40, 20.00"),
    ]  # unnamed series stay in the result only
    assert "raw_gauge" in found.to_json()["series"]
