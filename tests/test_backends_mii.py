"""DeepSpeed-MII: the payload, the two response shapes, and end to end."""

from __future__ import annotations

import json

import anyio
import pytest

from anyio_llmreq import (
    Accumulator,
    ConfigError,
    DeepSpeedMII,
    RequestFuncInput,
    ResultDelta,
    SSEEvent,
    StreamProtocolError,
    TextDelta,
    Timeouts,
    UsageDelta,
    async_request_deepspeed_mii,
)
from anyio_llmreq._models import ErrorDelta
from anyio_llmreq.testing import MockBehaviour

from .mock_run import STALL_READ, check_whole_body, run, words

# Every test with the orjson JSON path and with the stdlib's (tests/conftest.py).
pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("json_impl")]

URL = "http://h/v1/completions"


def make_input(url: str = URL, **kwargs: object) -> RequestFuncInput:
    return RequestFuncInput("Hello", url, 3, 16, "org/model", **kwargs)  # type: ignore[arg-type]


def test_payload_matches_reference_in_order() -> None:
    spec = DeepSpeedMII().build_payload(make_input(model_name="ignored"))
    assert DeepSpeedMII.framing == "json"
    assert spec.auth is True
    assert spec.json == json.loads(
        '{"model": "org/model", "prompt": "Hello", "max_tokens": 16,'
        ' "temperature": 0.01, "top_p": 1.0}'
    )
    assert list(spec.json) == ["model", "prompt", "max_tokens", "temperature", "top_p"]


def test_no_stream_ignore_eos_or_extra_body() -> None:
    spec = DeepSpeedMII().build_payload(
        make_input(ignore_eos=True, extra_body={"stream": True}, request_id="r")
    )
    assert list(spec.json) == ["model", "prompt", "max_tokens", "temperature", "top_p"]
    assert spec.headers == {"x-request-id": "r"}


@pytest.mark.parametrize("url", ["http://h/profile", "http://h/mii/completions"])
def test_accepted_urls(url: str) -> None:
    assert DeepSpeedMII().build_payload(make_input(url)).url == url


def test_wrong_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'completions' or 'profile'"):
        DeepSpeedMII().build_payload(make_input("http://h/generate"))


def parse(body: object) -> list[object]:
    return list(DeepSpeedMII().parse_event(SSEEvent(json.dumps(body))))


def test_openai_shape_with_usage() -> None:
    deltas = parse({"choices": [{"text": " a b"}], "usage": {"completion_tokens": 2}})
    assert deltas == [TextDelta(" a b"), UsageDelta(None, 2)]
    acc = Accumulator()
    for delta in deltas:
        acc.add(delta)  # type: ignore[arg-type]
    done = DeepSpeedMII().finalize(acc)
    assert (done.generated_text, done.output_tokens, done.output_tokens_source) == (
        " a b",
        2,
        "usage",
    )


def test_legacy_shape() -> None:
    assert parse({"text": [" a b"]}) == [TextDelta(" a b")]
    assert parse({"text": " a b"}) == [TextDelta(" a b")]


def test_empty_text_is_still_a_result() -> None:
    assert parse({"choices": [{"text": ""}]}) == [ResultDelta()]
    assert parse({"text": [""]}) == [ResultDelta()]


def test_unknown_shape_fails_unlike_the_reference() -> None:
    with pytest.raises(StreamProtocolError, match="neither 'choices' nor 'text'"):
        parse({"generated": "x"})
    bad_bodies = [{"choices": []}, {"choices": ["x"]}, {"choices": [{}]}, {"text": []}]
    for bad in [*bad_bodies, {"text": [3]}, [1]]:
        with pytest.raises(StreamProtocolError):
            parse(bad)


def test_error_body() -> None:
    (error,) = parse({"error": {"message": "overloaded", "code": 503}})
    assert isinstance(error, ErrorDelta) and "overloaded" in error.message


PATH = "/v1/completions"


@pytest.mark.parametrize(
    "behaviour",
    [
        pytest.param(MockBehaviour(), id="openai-shape"),
        pytest.param(MockBehaviour(mii_legacy=True), id="legacy-shape"),
        pytest.param(MockBehaviour(split_every=1, split_delay=0.0, unicode=True), id="byte-split"),
    ],
)
async def test_whole_body(behaviour: MockBehaviour, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    out, server = await run("deepspeed-mii", PATH, behaviour, output_len=5)
    check_whole_body(out)
    assert words(out.generated_text) == 5
    (rec,) = server.requests
    assert rec.header("authorization") == "Bearer sk-test"
    assert "stream" not in rec.json
    if not behaviour.mii_legacy:
        assert (out.output_tokens, out.output_tokens_source) == (5, "usage")


async def test_no_key_no_auth_header(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    _, server = await run("deepspeed-mii", PATH, output_len=1)
    assert server.requests[0].header("authorization") is None


async def test_compat_function() -> None:
    out, _ = await run("deepspeed-mii", PATH, compat=True, output_len=2)
    check_whole_body(out)
    assert async_request_deepspeed_mii.__name__ == "async_request_deepspeed_mii"


async def test_a_body_of_another_shape_fails() -> None:
    # A chat completion: its choice holds a message, not text.
    out, _ = await run("deepspeed-mii", "/v1/chat/completions", output_len=2)
    assert not out.success and "no 'text'" in out.error
    assert out.streamed is False


async def test_reset() -> None:
    out, _ = await run("deepspeed-mii", PATH, MockBehaviour(reset_after=0))
    assert not out.success and out.error and "\n" not in out.error


async def test_stall_hits_the_read_timeout() -> None:
    with anyio.fail_after(10):
        out, _ = await run(
            "deepspeed-mii", PATH, MockBehaviour(stall_after=0), timeouts=Timeouts(read=STALL_READ)
        )
    assert not out.success and "Timeout" in out.error


async def test_non_2xx() -> None:
    out, _ = await run("deepspeed-mii", PATH, MockBehaviour(status=500))
    assert not out.success and out.error.startswith("HTTP 500")
