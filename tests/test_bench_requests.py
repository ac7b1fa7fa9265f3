"""What the bench puts in each request and record: --timeout, the input token totals
(the client's, as vLLM, and the server's beside them), and requests that can't be built."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from anyio_llmreq import Client, RequestFuncInput
from anyio_llmreq.bench import BenchConfig, arun_benchmark, run_benchmark
from anyio_llmreq.bench._datasets import SampleRequest
from anyio_llmreq.bench._drive import drive, one_line_error
from anyio_llmreq.bench._plan import ScheduledRequest
from anyio_llmreq.bench._plan import build_inputs as _build_inputs
from anyio_llmreq.testing import MockBehaviour, open_mock_server


def _config(**kwargs: object) -> BenchConfig:
    base: dict[str, object] = {
        "num_prompts": 4, "mock_ttft": 0.002, "mock_itl": 0.001, "random_input_len": 6,
        "random_output_len": 3, "request_rate": float("inf"), "disable_tqdm": True,
        "quiet": True,
    }  # fmt: skip
    base.update(kwargs)
    return BenchConfig(**base)  # type: ignore[arg-type]


def _jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _loop(anyio_backend: tuple[str, dict[str, object]]) -> str:
    return "uvloop" if anyio_backend[1].get("use_uvloop") else anyio_backend[0]


# --- --timeout --------------------------------------------------------------------------


def test_timeout_is_set_on_every_request() -> None:
    samples = [SampleRequest("a b", 2, 3, f"r{i}") for i in range(3)]
    inputs = _build_inputs(
        _config(timeout=2.5), samples, api_url="http://h/v1/completions", model_id="m",
        model_name="m", ignore_eos=False,
    )  # fmt: skip
    assert [r.timeout for r in inputs] == [2.5] * 3


@pytest.mark.anyio
async def test_timeout_fails_slow_requests_and_is_in_each_record(
    anyio_backend: tuple[str, dict[str, object]], tmp_path: Path
) -> None:
    async with open_mock_server(MockBehaviour(ttft=5.0), record=False) as server:
        config = _config(
            base_url=server.base_url, tokenizer_mode="words", loop=_loop(anyio_backend),
            timeout=0.1, output_jsonl=str(tmp_path / "r.jsonl"),
        )  # fmt: skip
        result = await arun_benchmark(config, handle_signals=False)
    assert result.metrics.failed == 4
    assert all("RequestTimeout" in r.output.error for r in result.records)
    assert [line["timeout"] for line in _jsonl(tmp_path / "r.jsonl")] == [0.1] * 4


# --- input token totals -----------------------------------------------------------------


@pytest.mark.anyio
async def test_input_totals_are_the_clients_with_the_servers_beside(
    anyio_backend: tuple[str, dict[str, object]], tmp_path: Path
) -> None:
    # The mock counts the prompt's words: "m m" is 2; the client says 7 (its tokenizer's
    # count, say), so the two differ as they do on real servers.
    async with open_mock_server(MockBehaviour(), record=False) as server, Client() as client:
        url = server.base_url + "/v1/completions"
        requests = [
            ScheduledRequest(i, RequestFuncInput("m m", url, 7, 2, "m"), 0.0) for i in range(3)
        ]
        records, _ = await drive(client, "openai", requests, start=0.0, signals=())
    outputs = [r.output for r in records]
    assert [(o.prompt_len, o.prompt_tokens) for o in outputs] == [(7, 2)] * 3
    lines = [r.to_json() for r in records]
    assert all(line["prompt_len"] == 7 and line["prompt_tokens"] == 2 for line in lines)

    # The same through the bench: vLLM's total_input_tokens is the client's.
    out = io.StringIO()
    async with open_mock_server(MockBehaviour(), record=False) as server:
        config = _config(
            base_url=server.base_url, tokenizer_mode="words", loop=_loop(anyio_backend),
            save_detailed=True, quiet=False, output_jsonl=str(tmp_path / "r.jsonl"),
        )  # fmt: skip
        result = await arun_benchmark(config, stdout=out, handle_signals=False)
    assert result.result["total_input_tokens"] == 24 == sum(result.result["input_lens"])
    assert result.result["total_input_tokens_server"] == 24
    assert result.result["input_tokens_server_reported"] == 4
    assert result.result["input_lens_server"] == [6] * 4
    text = out.getvalue()
    assert "{:<40} {:<10}".format("Total input tokens (server):", "24") in text
    assert text.index("Total input tokens:") < text.index("Total input tokens (server):")
    assert [(x["prompt_len"], x["prompt_tokens"]) for x in _jsonl(tmp_path / "r.jsonl")] == [
        (6, 6)
    ] * 4


def test_no_server_counts_no_server_total() -> None:
    result = run_benchmark(_config(extra_body={"mock": {"usage": False}}))
    assert result.metrics.completed == 4
    assert result.result["total_input_tokens"] == 24
    assert result.result["total_input_tokens_server"] is None
    assert not any("(server)" in line for line in result.report)


# --- requests that can't be built -------------------------------------------------------


@pytest.mark.anyio
async def test_a_request_that_cannot_be_encoded_fails_alone(
    anyio_backend: tuple[str, dict[str, object]],
) -> None:
    async with open_mock_server(MockBehaviour(), record=False) as server, Client() as client:
        url = server.base_url + "/v1/completions"
        good = RequestFuncInput("a b", url, 2, 2, "m")
        unencodable = RequestFuncInput("a b", url, 2, 2, "m", extra_body={"ids": {1, 2}})
        requests = [ScheduledRequest(0, unencodable, 0.0), ScheduledRequest(1, good, 0.0)]
        records, stats = await drive(client, "openai", requests, start=0.0, signals=())
    by_index = {r.index: r.output for r in records}
    assert stats.finished == 2
    assert not by_index[0].success and by_index[1].success
    assert "JSON serializable" in by_index[0].error and "\n" not in by_index[0].error


def test_a_run_whose_requests_cannot_be_built_reports_them() -> None:
    out = io.StringIO()
    result = run_benchmark(_config(quiet=False, extra_body={"ids": {1, 2}}), stdout=out)
    assert (result.metrics.completed, result.metrics.failed) == (0, 4)
    assert "4 request(s) failed. First errors:" in out.getvalue()
    assert all("JSON serializable" in r.output.error for r in result.records)
    # The ready check counts it too, and says why.
    with pytest.raises(RuntimeError, match="Initial test run failed.*JSON serializable"):
        run_benchmark(_config(extra_body={"ids": {1, 2}}, ready_check_timeout_sec=0.01))


def test_one_line_error() -> None:
    assert one_line_error(ValueError("bad\n  value")) == "ValueError: bad value"
    assert one_line_error(KeyError()) == "KeyError"
