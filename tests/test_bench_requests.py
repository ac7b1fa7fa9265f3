"""What the bench puts in each request and record: --timeout, the input token totals
(the client's, as vLLM, and the server's beside them), and requests that can't be built."""

from __future__ import annotations

import dataclasses
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest

from anyio_llmreq import Client, RequestFuncInput, RequestFuncOutput, _json
from anyio_llmreq.bench import BenchConfig, _execute, arun_benchmark, run_benchmark
from anyio_llmreq.bench._datasets import SampleRequest
from anyio_llmreq.bench._drive import drive, one_line_error
from anyio_llmreq.bench._execute import RequestRecord
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


# --- JSONL lines ------------------------------------------------------------------------


@dataclasses.dataclass
class _MoreOutput(RequestFuncOutput):
    extra: dict[str, float] = dataclasses.field(default_factory=lambda: {"x": math.nan})


def _phases(**kw: object) -> dict[str, object]:
    return {"connection_reused": True, "dns": None, "tls": None, "request_sent": 3.1e-05} | kw


def _attribute_set() -> RequestFuncOutput:
    out = RequestFuncOutput(success=True)
    out.note = "set on the output"  # type: ignore[attr-defined]
    return out


# fmt: off
_OUTPUTS: dict[str, Any] = {
    "ordinary": lambda: RequestFuncOutput(
        " hi é", True, 0.0627, 2, 0.0536, [0.0091], 0.0091, 1024, status_code=200,
        http_phases=_phases(),
    ),
    "failed": lambda: RequestFuncOutput(error="ReadError: reset", status_code=None),
    "nan latency": lambda: RequestFuncOutput(success=True, latency=math.nan),
    "infinite itl": lambda: RequestFuncOutput(itl=[0.01, math.inf, -math.inf]),
    "nan in a phase": lambda: RequestFuncOutput(http_phases=_phases(connect=math.nan)),
    "null in the text": lambda: RequestFuncOutput("return null; null", True, math.nan),
    "a 70-bit count": lambda: RequestFuncOutput(prompt_tokens=2**70),
    "a lone surrogate": lambda: RequestFuncOutput("\ud800", True),
    "an int key": lambda: RequestFuncOutput(http_phases={1: 0.5}),
    "a subclass": lambda: _MoreOutput(success=True),
    "an attribute set": _attribute_set,
}
# fmt: on


@pytest.mark.usefixtures("json_impl")
@pytest.mark.parametrize("timeout", [None, 2.5, math.inf])
@pytest.mark.parametrize("turn", [None, 2])
@pytest.mark.parametrize("kind", list(_OUTPUTS))
def test_a_jsonl_line_reads_back_as_the_records_json(
    kind: str, turn: int | None, timeout: float | None
) -> None:
    """NaN and the infinities stay NaN and Infinity wherever they are (orjson would
    write null), keys in to_json's order, on both JSON paths."""
    record = RequestRecord(
        3, "bench-x-3", 0.25, 0.2501, _OUTPUTS[kind](), worker=1, timeout=timeout,
        session_id=None if turn is None else "s-1", turn=turn,
    )  # fmt: skip
    line = record.to_jsonl()
    assert b"\n" not in line
    got = json.loads(line)
    # What the stdlib's line reads back as (an int key comes back a string).
    want = json.loads(_json.std_record_dumps(record.to_json()))
    assert list(got) == list(record.to_json())
    assert repr(got) == repr(want)


def test_an_ordinary_jsonl_line_is_written_without_the_dict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fail(_: Any) -> Any:
        raise AssertionError("built the dict")

    monkeypatch.setattr(_execute, "record_dumps", fail)
    record = RequestRecord(0, "r", 0.0, 0.001, _OUTPUTS["ordinary"](), timeout=math.inf)
    with pytest.raises(AssertionError, match="built the dict"):
        record.to_jsonl()  # inf is written as Infinity: the dict path
    record.timeout = None
    assert json.loads(record.to_jsonl())["http_phases"] == _phases()
