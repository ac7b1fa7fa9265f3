"""calculate_metrics, goodput and peak figures against hand-computed values."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from anyio_llmreq import RequestFuncOutput
from anyio_llmreq.bench import calculate_metrics, parse_goodput
from anyio_llmreq.bench._metrics import peak_metrics


def _out(ttft, itl, latency, tokens=0, prompt=10, start=0.0, text="", source="usage"):
    return RequestFuncOutput(
        generated_text=text,
        success=True,
        latency=latency,
        output_tokens=tokens,
        ttft=ttft,
        itl=list(itl),
        prompt_len=prompt,
        start_time=start,
        output_tokens_source=source if tokens else "",
    )


def _outputs():
    return [
        # tpot = (0.5 - 0.1) / 4 = 0.1
        _out(0.1, [0.1, 0.1, 0.1, 0.1], 0.5, tokens=5, prompt=10, start=0.0),
        # no usage: 3 whitespace words -> tpot = (0.4 - 0.2) / 2 = 0.1
        _out(0.2, [0.1, 0.1], 0.4, text="a b c", prompt=20, start=0.5),
        # one token: tpot 0, not in tpots
        _out(0.3, [], 0.3, tokens=1, prompt=30, start=1.2),
        RequestFuncOutput(success=False, error="boom", prompt_len=40),
    ]


def test_metrics_match_hand_computed_values():
    metrics, lens = calculate_metrics(
        _outputs(),
        2.0,
        count_tokens=lambda t: len(t.split()),
        count_source="words",
        selected_percentiles=[50, 99],
    )
    assert lens == [5, 3, 1, 0]
    assert metrics.completed == 3 and metrics.failed == 1
    assert metrics.total_input == 60  # failures don't count
    assert metrics.total_output == 9
    assert metrics.request_throughput == pytest.approx(1.5)
    assert metrics.output_throughput == pytest.approx(4.5)
    assert metrics.total_token_throughput == pytest.approx(34.5)
    assert metrics.mean_ttft_ms == pytest.approx(200.0)
    assert metrics.median_ttft_ms == pytest.approx(200.0)
    assert metrics.std_ttft_ms == pytest.approx(np.std([0.1, 0.2, 0.3]) * 1000)
    assert metrics.percentiles_ttft_ms == [
        (50.0, pytest.approx(200.0)),
        (99.0, pytest.approx(np.percentile([0.1, 0.2, 0.3], 99) * 1000)),
    ]
    assert metrics.mean_tpot_ms == pytest.approx(100.0)
    assert metrics.mean_itl_ms == pytest.approx(100.0)
    assert metrics.mean_e2el_ms == pytest.approx(400.0)
    assert metrics.percentiles_e2el_ms[1][1] == pytest.approx(
        np.percentile([0.5, 0.4, 0.3], 99) * 1000
    )
    assert metrics.output_tokens_sources == {"usage": 2, "words": 1}


def test_percentile_is_numpy_linear_interpolation():
    outs = [_out(t, [], t, tokens=1) for t in (0.010, 0.020, 0.030, 0.040)]
    metrics, _ = calculate_metrics(outs, 1.0, selected_percentiles=[25, 99.9])
    assert metrics.percentiles_ttft_ms[0][1] == pytest.approx(17.5)
    assert metrics.percentiles_ttft_ms[1][1] == pytest.approx(39.97)


def test_without_a_counter_an_unknown_output_counts_as_one():
    metrics, lens = calculate_metrics([_out(0.1, [0.1], 0.2, text="x y z")], 1.0)
    assert lens == [1]
    assert metrics.output_tokens_sources == {"none": 1}
    assert metrics.mean_tpot_ms == 0.0  # one token: no TPOT


def test_legacy_input_lens_override_prompt_len():
    metrics, _ = calculate_metrics(_outputs()[:1], 1.0, input_lens=[7])
    assert metrics.total_input == 7


def test_server_prompt_counts_are_summed_apart():
    outs = _outputs()
    outs[0].prompt_tokens = 12  # the server counts differently from the client
    outs[2].prompt_tokens = 33
    outs[3].prompt_tokens = 99  # a failure: counts in neither total
    metrics, _ = calculate_metrics(outs, 1.0)
    assert metrics.total_input == 60  # vLLM's: the requests' prompt_len
    assert (metrics.total_input_server, metrics.input_server_reported) == (45, 2)
    metrics, _ = calculate_metrics(_outputs(), 1.0)
    assert (metrics.total_input_server, metrics.input_server_reported) == (None, 0)


@pytest.mark.parametrize(
    ("slo", "good"),
    [
        ({"ttft": 200}, 2),  # 0.1 and 0.2 are <= 0.2 (inclusive)
        ({"ttft": 199}, 1),
        ({"tpot": 100}, 3),  # tpots 0.1, 0.1 and 0 for the one-token request
        ({"tpot": 99}, 1),
        ({"e2el": 400, "ttft": 250}, 1),  # second (0.2, 0.4) only; third e2el .3 but ttft .3
        ({"ttft": 1000, "tpot": 1000, "e2el": 1000}, 3),
    ],
)
def test_goodput_counts_requests_meeting_every_slo(slo, good):
    metrics, _ = calculate_metrics(
        _outputs(), 2.0, count_tokens=lambda t: len(t.split()), goodput_config=slo
    )
    assert metrics.request_goodput == pytest.approx(good / 2.0)


def test_parse_goodput():
    assert parse_goodput(["ttft:500", "tpot:50"]) == {"ttft": 500.0, "tpot": 50.0}
    for bad in (["ttft=5"], ["ttft:x"], ["itl:5"], ["ttft:-1"]):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_goodput(bad)


def test_all_failed_warns_and_gives_zeros():
    with pytest.warns(UserWarning, match="All requests failed"):
        metrics, lens = calculate_metrics([RequestFuncOutput(error="x")], 1.0)
    assert lens == [0]
    assert metrics.completed == 0 and metrics.failed == 1
    assert metrics.mean_ttft_ms == 0.0 and metrics.percentiles_itl_ms == [(99.0, 0.0)]
    assert metrics.max_output_tokens_per_s == 0.0 and metrics.max_concurrent_requests == 0


def test_peak_metrics_use_one_second_buckets():
    outs = [
        # tokens at 0.5, 0.7, 1.2: buckets 0, 0, 1; spans seconds 0..1
        _out(0.5, [0.2, 0.5], 1.2, tokens=3, start=0.0),
        # tokens at 0.6, 0.8: bucket 0; spans seconds 0..0
        _out(0.4, [0.2], 0.8, tokens=2, start=0.2),
        # starts at 2.1: token 2.2 bucket 2; spans seconds 2..2
        _out(0.1, [], 0.1, tokens=1, start=2.1),
    ]
    assert peak_metrics(outs) == (4.0, 2)
