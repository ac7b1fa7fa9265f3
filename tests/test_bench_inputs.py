"""Datasets, flag parsing, config defaults and validation, endpoints, self-check."""

from __future__ import annotations

import json
import math

import pytest

from anyio_llmreq._cli import build_parser
from anyio_llmreq.bench import BenchConfig, default_endpoint
from anyio_llmreq.bench._cli import config_from_args
from anyio_llmreq.bench._datasets import (
    sample_custom,
    sample_prefix_repetition,
    sample_random,
    sample_requests,
    sample_sharegpt,
    sample_sonnet,
)
from anyio_llmreq.bench._selfcheck import evaluate_self_check
from anyio_llmreq.bench._tokens import WordCounter

WORDS = WordCounter()


def _args(*argv):
    return build_parser().parse_args(["bench", *argv])


def test_random_prompts_have_exact_word_lengths_and_ids():
    reqs = sample_random(
        WORDS, 50, input_len=100, output_len=20, range_ratio=0.5, prefix_len=10, seed=1,
        request_id_prefix="p-",
    )  # fmt: skip
    assert [r.request_id for r in reqs[:2]] == ["p-0", "p-1"]
    for r in reqs:
        assert r.prompt_len == len(r.prompt.split())
        assert 10 + 50 <= r.prompt_len <= 10 + 150
        assert 10 <= r.expected_output_len <= 30
    prefixes = {" ".join(r.prompt.split()[:10]) for r in reqs}
    assert len(prefixes) == 1
    assert sample_random(WORDS, 5, seed=3) == sample_random(WORDS, 5, seed=3)


def test_prefix_repetition_shares_prefixes():
    reqs = sample_prefix_repetition(
        WORDS, 12, prefix_len=8, suffix_len=4, num_prefixes=3, output_len=5
    )
    assert len(reqs) == 12
    assert len({" ".join(r.prompt.split()[:8]) for r in reqs}) == 3
    assert all(r.prompt_len == 12 and r.expected_output_len == 5 for r in reqs)


def test_sharegpt_filters_and_counts(tmp_path):
    data = [
        {"conversations": [{"value": "one two three four five"}, {"value": "a b c d e f"}]},
        {"conversations": [{"value": "too short"}, {"value": "a b c d"}]},
        {"conversations": [{"value": "only one turn"}]},
    ]
    path = tmp_path / "sg.json"
    path.write_text(json.dumps(data))
    reqs = sample_sharegpt(WORDS, 3, str(path))
    assert [(r.prompt_len, r.expected_output_len) for r in reqs] == [(5, 6)] * 3
    fixed = sample_sharegpt(WORDS, 1, str(path), output_len=2)
    assert fixed[0].expected_output_len == 2


def test_sonnet_and_custom(tmp_path):
    poem = tmp_path / "sonnet.txt"
    poem.write_text("".join(f"line number {i} of the poem\n" for i in range(40)))
    reqs = sample_sonnet(WORDS, 3, str(poem), input_len=60, output_len=7, prefix_len=20)
    assert all(r.prompt.startswith("Pick as many lines") for r in reqs)
    assert all(50 <= r.prompt_len <= 70 and r.expected_output_len == 7 for r in reqs)
    custom = tmp_path / "c.jsonl"
    custom.write_text('{"prompt": "a b c"}\n\n{"prompt": "d e", "output_tokens": 3}\n')
    reqs = sample_custom(WORDS, 3, str(custom), output_len=9, shuffle=False)
    # --custom-output-len wins over a line's output_tokens, as in vLLM (-1 takes them).
    assert [(r.prompt_len, r.expected_output_len) for r in reqs[:2]] == [(3, 9), (2, 9)]
    assert len(reqs) == 3
    with pytest.raises(ValueError, match="needs --dataset-path"):
        sample_requests("custom", WORDS, 1, path=None, seed=0, request_id_prefix="", options={})


def test_flags_map_onto_the_config():
    args = _args(
        "--backend", "openai-chat", "--base-url", "http://x:1", "--input-len", "64",
        "--output-len", "16", "--request-rate", "5", "--burstiness", "0.5",
        "--max-concurrency", "8", "--header", "X-A=1=2", "--header", "X-B=3",
        "--extra-body", '{"k": 1}', "--goodput", "ttft:500", "tpot:50",
        "--metadata", "a=1", "b=2", "--temperature", "0.5", "--top-k", "5",
        "--workers", "2", "--loop", "trio", "--timeout", "30", "--insecure",
    )  # fmt: skip
    config = config_from_args(args)
    assert config.input_len == 64 and config.output_len == 16
    assert config.headers == {"X-A": "1=2", "X-B": "3"}
    assert config.extra_body == {"k": 1}
    assert config.goodput == {"ttft": 500.0, "tpot": 50.0}
    assert config.metadata == {"a": "1", "b": "2"}
    assert config.sampling_params() == {"top_k": 5, "temperature": 0.5}
    assert (config.workers, config.loop, config.timeout, config.insecure) == (2, "trio", 30, True)
    assert not config.embedded
    assert config.resolved_base_url() == "http://x:1"


def test_defaults_embedded_and_remote():
    embedded = config_from_args(_args())
    assert embedded.backend == "openai"
    assert embedded.embedded
    assert embedded.resolved_num_prompts() == 200
    assert embedded.resolved_request_rate() == 10.0
    remote = config_from_args(_args("--port", "9000"))
    assert remote.resolved_base_url() == "http://127.0.0.1:9000"
    assert remote.resolved_num_prompts() == 1000
    assert remote.resolved_request_rate() == math.inf
    assert remote.percentile_metric_names() == ["ttft", "tpot", "itl"]
    assert BenchConfig(backend="openai-embeddings").percentile_metric_names() == ["e2el"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ramp_up_strategy": "linear", "ramp_up_start_rps": 1}, "both"),
        ({"ramp_up_strategy": "linear", "ramp_up_start_rps": 1, "ramp_up_end_rps": 5,
          "request_rate": 3.0}, "do not specify --request-rate"),
        ({"ramp_up_strategy": "linear", "ramp_up_start_rps": 5, "ramp_up_end_rps": 1}, "less"),
        ({"ramp_up_strategy": "exponential", "ramp_up_start_rps": 0, "ramp_up_end_rps": 1},
         "cannot be 0"),
        ({"backend": "tgi", "temperature": 0.1}, "openai-compatible"),
        ({"burstiness": 0.0}, "burstiness"),
        ({"percentile_metrics": "ttft,xyz"}, "xyz"),
    ],
)  # fmt: skip
def test_invalid_configs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BenchConfig(**kwargs).validate({"openai", "openai-chat", "vllm"})


def test_cli_reports_config_errors(capsys):
    from anyio_llmreq._cli import main

    assert main(["bench", "--goodput", "bad"]) == 2
    assert "service level objectives" in capsys.readouterr().err
    assert main(["bench", "--metadata", "novalue"]) == 2


@pytest.mark.parametrize(
    ("backend", "endpoint"),
    [
        ("openai", "/v1/completions"),
        ("vllm", "/v1/completions"),
        ("openai-chat", "/v1/chat/completions"),
        ("tgi", "/generate_stream"),
        ("tensorrt-llm", "/v2/models/m/generate_stream"),
        ("openai-audio", "/v1/audio/transcriptions"),
        ("openai-embeddings", "/v1/embeddings"),
        ("vllm-rerank", "/rerank"),
        ("vllm-pooling", "/pooling"),
    ],
)
def test_default_endpoints(backend, endpoint):
    assert default_endpoint(backend, "m") == endpoint


def test_self_check_verdict():
    ok = evaluate_self_check(
        send_lags=[0.001] * 100, loop_lags=[0.001] * 100, queue_times=[0.0],
        cpu_s=[0.2], wall_s=1.0,
    )  # fmt: skip
    assert not ok.saturated and ok.to_json()["client_saturated"] is False
    assert ok.send_lag_p99_ms == pytest.approx(1.0)
    bad = evaluate_self_check(
        send_lags=[0.02] * 100, loop_lags=[0.03] * 100, queue_times=[],
        cpu_s=[0.9, 0.1], wall_s=1.0, includes_server=True,
    )  # fmt: skip
    # Lag is the symptom (two warnings); the CPU names the cause in the advice.
    assert bad.saturated and len(bad.warnings) == 2 and bad.verdict == "client_busy"
    assert bad.cpu_fraction == pytest.approx(0.9)
    assert "--workers N" in bad.advice[0]
    assert any("WARNING" in line for line in bad.report_lines())
