"""TGI: the payload, sans-IO parsing, and end to end against the mock server."""

from __future__ import annotations

import json

import anyio
import pytest

from anyio_llmreq import (
    TGI,
    Accumulator,
    ConfigError,
    FinalTextDelta,
    RequestFuncInput,
    SSEEvent,
    StreamProtocolError,
    TextDelta,
    Timeouts,
    TokenDelta,
    UsageDelta,
    async_request_tgi,
)
from anyio_llmreq._models import END, ErrorDelta, ResultDelta
from anyio_llmreq.testing import MockBehaviour

from .mock_run import STALL_READ, check_stream, run, words

# Every test with the orjson JSON path and with the stdlib's (tests/conftest.py).
pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("json_impl")]

URL = "http://h/generate_stream"


def make_input(url: str = URL, **kwargs: object) -> RequestFuncInput:
    return RequestFuncInput("Hello", url, 3, 16, "org/model", **kwargs)  # type: ignore[arg-type]


def event(obj: object) -> SSEEvent:
    return SSEEvent(json.dumps(obj))


def token(text: str, special: bool = False, **extra: object) -> dict[str, object]:
    return {
        "index": 0,
        "token": {"id": 7, "text": text, "logprob": -0.1, "special": special},
        "generated_text": None,
        "details": None,
        **extra,
    }


def fold(deltas: list[object]) -> Accumulator:
    acc = Accumulator()
    for delta in deltas:
        acc.add(delta)  # type: ignore[arg-type]
    return acc


# --- payload --------------------------------------------------------------------------


def test_payload_matches_reference_in_order() -> None:
    spec = TGI().build_payload(make_input())
    assert spec.url == URL
    assert spec.auth is False
    assert spec.headers == {}
    assert json.loads(json.dumps(spec.json)) == json.loads(
        '{"inputs": "Hello", "parameters": {"max_new_tokens": 16, "do_sample": true,'
        ' "temperature": 0.01, "top_p": 0.99, "truncate": 3, "ignore_eos_token": false}}'
    )
    assert list(spec.json) == ["inputs", "parameters"]
    assert list(spec.json["parameters"]) == [
        "max_new_tokens",
        "do_sample",
        "temperature",
        "top_p",
        "truncate",
        "ignore_eos_token",
    ]


def test_ignore_eos_request_id_extra_headers_no_extra_body() -> None:
    request = make_input(
        ignore_eos=True,
        request_id="r1",
        extra_body={"stream": False},
        extra_headers={"x-a": "b", "x-request-id": "old"},
        model_name="served",
    )
    spec = TGI().build_payload(request)
    assert spec.json["parameters"]["ignore_eos_token"] is True
    assert "stream" not in spec.json and "model" not in spec.json
    assert spec.headers == {"x-a": "b", "x-request-id": "r1"}


@pytest.mark.parametrize("url", ["http://h/generate", "http://h/v1/completions", "http://h/"])
def test_wrong_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="generate_stream"):
        TGI().build_payload(make_input(url))


# --- parsing --------------------------------------------------------------------------


def test_each_token_event_counts_and_the_final_text_wins() -> None:
    backend = TGI()
    first = backend.parse_event(event(token(" Hi")))
    assert list(first) == [TokenDelta(), TextDelta(" Hi")]
    last = backend.parse_event(
        event(
            token(
                " there",
                generated_text=" Hi there!",
                details={"finish_reason": "length", "generated_tokens": 2, "seed": None},
            )
        )
    )
    assert list(last) == [
        TokenDelta(),
        TextDelta(" there"),
        FinalTextDelta(" Hi there!"),
        UsageDelta(None, 2),
    ]
    done = backend.finalize(fold([*first, *last]))
    assert done.generated_text == " Hi there!"
    assert (done.output_tokens, done.output_tokens_source) == (2, "usage")


def test_special_token_is_counted_but_is_not_output() -> None:
    backend = TGI()
    deltas = backend.parse_event(event(token("</s>", special=True)))
    assert list(deltas) == [TokenDelta()]
    acc = fold([*backend.parse_event(event(token(" a"))), *deltas])
    assert acc.add(TokenDelta()) is False
    # No details: the count is the number of token events, special ones included.
    done = backend.finalize(acc)
    assert (done.output_tokens, done.output_tokens_source) == (3, "events")
    assert done.generated_text == " a"  # special token text is not visible output


def test_empty_text_token_counts_without_output() -> None:
    assert list(TGI().parse_event(event(token("")))) == [TokenDelta()]


def test_keep_alives_done_and_nothing_at_all() -> None:
    backend = TGI()
    assert backend.parse_event(SSEEvent("")) == ()
    assert list(backend.parse_event(SSEEvent("[DONE]"))) == [END]
    done = backend.finalize(Accumulator())
    assert (done.generated_text, done.output_tokens, done.output_tokens_source) == ("", None, "")


def test_error_events() -> None:
    backend = TGI()
    (tgi_style,) = backend.parse_event(
        event({"error": "Request failed during generation: OOM", "error_type": "generation"})
    )
    assert isinstance(tgi_style, ErrorDelta)
    assert "OOM" in tgi_style.message and "generation" in tgi_style.message
    (openai_style,) = backend.parse_event(event({"error": {"message": "boom", "code": 500}}))
    assert isinstance(openai_style, ErrorDelta) and "boom" in openai_style.message


def test_whole_generate_body() -> None:
    backend = TGI()
    deltas = backend.parse_event(
        SSEEvent('[{"generated_text": "x y", "details": {"generated_tokens": 2}}]')
    )
    assert list(deltas) == [TextDelta("x y"), FinalTextDelta("x y"), UsageDelta(None, 2)]
    assert ResultDelta() in backend.parse_event(SSEEvent('{"generated_text": ""}'))


@pytest.mark.parametrize("data", ["not json", "[1, 2]", '{"index": 1}', '{"token": "x"}', '"text"'])
def test_malformed_events_are_protocol_errors(data: str) -> None:
    with pytest.raises(StreamProtocolError):
        TGI().parse_event(SSEEvent(data))


# --- end to end -----------------------------------------------------------------------

PATH = "/generate_stream"


@pytest.mark.parametrize(
    "behaviour",
    [
        pytest.param(MockBehaviour(), id="plain"),
        pytest.param(MockBehaviour(split_every=1, split_delay=0.0, unicode=True), id="byte-split"),
        pytest.param(MockBehaviour(ping_every=1), id="pings"),
        pytest.param(MockBehaviour(line_ending="\r\n", event_ids=True), id="crlf-ids"),
    ],
)
async def test_stream(behaviour: MockBehaviour) -> None:
    out, server = await run("tgi", PATH, behaviour, output_len=6)
    check_stream(out, 6)
    assert words(out.generated_text) == 6
    assert (out.output_tokens, out.output_tokens_source) == (6, "usage")
    (rec,) = server.requests
    assert rec.header("authorization") is None
    assert rec.json["parameters"]["max_new_tokens"] == 6


async def test_special_eos_token_does_not_stamp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    out, server = await run("tgi", PATH, MockBehaviour(tgi_eos=True), output_len=4)
    check_stream(out, 4)  # the EOS event adds no ITL entry
    assert words(out.generated_text) == 4 and "</s>" not in out.generated_text
    assert out.output_tokens == 5  # the server's count includes EOS
    assert server.requests[0].header("authorization") is None  # auth=False


async def test_compat_function() -> None:
    out, _ = await run("tgi", PATH, compat=True, output_len=3)
    check_stream(out, 3)
    assert async_request_tgi.__name__ == "async_request_tgi"


async def test_in_band_error_fails_and_keeps_partial_timings() -> None:
    out, _ = await run("tgi", PATH, MockBehaviour(error_after=3))
    assert not out.success and "mock error" in out.error
    assert len(out.itl) == 2 and out.ttft > 0
    # No final event: the text falls back to the tokens, the count to the events.
    assert words(out.generated_text) == 3
    assert (out.output_tokens, out.output_tokens_source) == (3, "events")


async def test_reset() -> None:
    out, _ = await run("tgi", PATH, MockBehaviour(reset_after=2))
    assert not out.success and out.error and "\n" not in out.error
    assert words(out.generated_text) == 2


async def test_stall_hits_the_read_timeout() -> None:
    with anyio.fail_after(10):
        out, _ = await run(
            "tgi", PATH, MockBehaviour(stall_after=2), timeouts=Timeouts(read=STALL_READ)
        )
    assert not out.success and "Timeout" in out.error


async def test_non_2xx() -> None:
    out, _ = await run("tgi", PATH, MockBehaviour(status=503))
    assert not out.success and out.error.startswith("HTTP 503")
    assert out.status_code == 503 and out.ttft == 0.0
