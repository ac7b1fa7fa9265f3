"""Triton TensorRT-LLM: the payload, sans-IO parsing, and end to end."""

from __future__ import annotations

import json

import anyio
import pytest

from anyio_llmreq import (
    Accumulator,
    ConfigError,
    RequestFuncInput,
    SSEEvent,
    StreamProtocolError,
    TensorRTLLM,
    TextDelta,
    Timeouts,
    async_request_trt_llm,
)
from anyio_llmreq._models import END, ErrorDelta
from anyio_llmreq.testing import MockBehaviour

from .mock_run import STALL_READ, check_stream, run, words

# Every test with the orjson JSON path and with the stdlib's (tests/conftest.py).
pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("json_impl")]

URL = "http://h/v2/models/ensemble/generate_stream"


def make_input(url: str = URL, **kwargs: object) -> RequestFuncInput:
    return RequestFuncInput("Hello", url, 3, 16, "org/model", **kwargs)  # type: ignore[arg-type]


def test_payload_matches_reference_in_order() -> None:
    spec = TensorRTLLM().build_payload(make_input())
    assert spec.auth is False and spec.headers == {}
    assert spec.json == json.loads(
        '{"accumulate_tokens": true, "text_input": "Hello", "temperature": 0.0,'
        ' "top_p": 1.0, "max_tokens": 16, "stream": true}'
    )
    assert list(spec.json) == [
        "accumulate_tokens",
        "text_input",
        "temperature",
        "top_p",
        "max_tokens",
        "stream",
    ]


def test_min_length_only_with_ignore_eos_and_no_extra_body() -> None:
    spec = TensorRTLLM().build_payload(
        make_input(ignore_eos=True, request_id="r", extra_body={"x": 1}, model_name="n")
    )
    assert list(spec.json)[-1] == "min_length" and spec.json["min_length"] == 16
    assert "x" not in spec.json and "model" not in spec.json
    assert spec.headers == {"x-request-id": "r"}


@pytest.mark.parametrize("url", ["http://h/v2/models/m/generate", "http://h/v1/completions"])
def test_wrong_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="generate_stream"):
        TensorRTLLM().build_payload(make_input(url))


def test_text_output_is_concatenated() -> None:
    backend = TensorRTLLM()
    acc = Accumulator()
    for text in [" a", "", " b"]:
        data = {"model_name": "ensemble", "sequence_end": False, "text_output": text}
        for delta in backend.parse_event(SSEEvent(json.dumps(data))):
            acc.add(delta)
    assert backend.parse_event(SSEEvent('{"text_output": ""}')) == ()
    assert list(backend.parse_event(SSEEvent('{"text_output": "x"}'))) == [TextDelta("x")]
    done = backend.finalize(acc)
    assert done.generated_text == " a b"
    assert (done.output_tokens, done.output_tokens_source) == (None, "")


def test_errors_keep_alives_and_malformed_events() -> None:
    backend = TensorRTLLM()
    (error,) = backend.parse_event(SSEEvent('{"error": "in ensemble: bad input"}'))
    assert isinstance(error, ErrorDelta) and "bad input" in error.message
    assert backend.parse_event(SSEEvent("")) == ()
    assert list(backend.parse_event(SSEEvent("[DONE]"))) == [END]
    for data in ["nope", "[]", '{"model_name": "m"}', '{"text_output": 3}']:
        with pytest.raises(StreamProtocolError):
            backend.parse_event(SSEEvent(data))


PATH = "/v2/models/m/generate_stream"


@pytest.mark.parametrize(
    "behaviour",
    [
        pytest.param(MockBehaviour(), id="plain"),
        pytest.param(MockBehaviour(split_every=1, split_delay=0.0, unicode=True), id="byte-split"),
        pytest.param(MockBehaviour(ping_every=2), id="pings"),
        pytest.param(MockBehaviour(tokens_per_event=2), id="two-per-event"),
    ],
)
async def test_stream(behaviour: MockBehaviour) -> None:
    out, server = await run("tensorrt-llm", PATH, behaviour, output_len=6)
    check_stream(out, 6 // behaviour.tokens_per_event)
    assert words(out.generated_text) == 6
    assert out.output_tokens == 0 and out.output_tokens_source == ""  # the consumer counts
    assert server.requests[0].header("authorization") is None


async def test_compat_function() -> None:
    out, _ = await run("tensorrt-llm", PATH, compat=True, output_len=2)
    check_stream(out, 2)
    assert async_request_trt_llm.__name__ == "async_request_trt_llm"


async def test_in_band_error() -> None:
    out, _ = await run("tensorrt-llm", PATH, MockBehaviour(error_after=2))
    assert not out.success and "mock error" in out.error
    assert words(out.generated_text) == 2


async def test_reset() -> None:
    out, _ = await run("tensorrt-llm", PATH, MockBehaviour(reset_after=1))
    assert not out.success and out.error and "\n" not in out.error


async def test_stall_hits_the_read_timeout() -> None:
    with anyio.fail_after(10):
        out, _ = await run(
            "tensorrt-llm", PATH, MockBehaviour(stall_after=1), timeouts=Timeouts(read=STALL_READ)
        )
    assert not out.success and "Timeout" in out.error


async def test_non_2xx() -> None:
    out, _ = await run("tensorrt-llm", PATH, MockBehaviour(status=400))
    assert not out.success and out.error.startswith("HTTP 400")
