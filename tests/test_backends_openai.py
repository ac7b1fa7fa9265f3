"""Sans-IO tests of the OpenAI completions and chat backends: payloads and parsing."""

from __future__ import annotations

import dataclasses

import pytest

from anyio_llmreq import (
    ConfigError,
    OpenAIChat,
    OpenAICompletions,
    ReasoningDelta,
    RequestFuncInput,
    SSEEvent,
    TextDelta,
    ToolCallDelta,
    UsageDelta,
)
from anyio_llmreq._models import END, Accumulator, ErrorDelta

# Every test with the orjson JSON path and with the stdlib's (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("json_impl")


def make_input(url: str, **kwargs: object) -> RequestFuncInput:
    return RequestFuncInput("Hello", url, 3, 16, "org/model", **kwargs)  # type: ignore[arg-type]


# --- completions payload -----------------------------------------------------------------


def test_completions_payload_matches_reference_in_order() -> None:
    spec = OpenAICompletions().build_payload(make_input("http://h/v1/completions"))
    assert spec.url == "http://h/v1/completions"
    assert spec.method == "POST"
    assert spec.auth is True
    assert list(spec.json) == [
        "model",
        "prompt",
        "temperature",
        "repetition_penalty",
        "max_tokens",
        "logprobs",
        "stream",
        "stream_options",
    ]
    assert spec.json == {
        "model": "org/model",
        "prompt": "Hello",
        "temperature": 0.0,
        "repetition_penalty": 1.0,
        "max_tokens": 16,
        "logprobs": None,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert spec.headers == {}


def test_completions_model_name_ignore_eos_logprobs_extra_body_last() -> None:
    request = make_input(
        "http://h/v1/completions",
        model_name="served",
        logprobs=5,
        ignore_eos=True,
        extra_body={"temperature": 0.7, "stream": False, "top_k": 3},
        request_id="req-1",
    )
    spec = OpenAICompletions().build_payload(request)
    assert spec.json == {
        "model": "served",
        "prompt": "Hello",
        "temperature": 0.7,
        "repetition_penalty": 1.0,
        "max_tokens": 16,
        "logprobs": 5,
        "stream": False,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
        "top_k": 3,
    }
    assert list(spec.json)[-2:] == ["ignore_eos", "top_k"]
    assert spec.headers == {"x-request-id": "req-1"}


def test_empty_model_name_falls_back_to_model() -> None:
    spec = OpenAICompletions().build_payload(make_input("http://h/v1/completions", model_name=""))
    assert spec.json["model"] == "org/model"


@pytest.mark.parametrize("url", ["http://h/v1/completions", "http://h/profile"])
def test_completions_url_suffixes(url: str) -> None:
    OpenAICompletions().build_payload(make_input(url))


def test_completions_bad_url_raises_before_io() -> None:
    with pytest.raises(ConfigError, match="must end with 'completions' or 'profile'"):
        OpenAICompletions().build_payload(make_input("http://h/v1/generate"))


# --- chat payload ------------------------------------------------------------------------


def test_chat_payload_matches_reference_in_order() -> None:
    spec = OpenAIChat().build_payload(make_input("http://h/v1/chat/completions"))
    assert list(spec.json) == [
        "model",
        "messages",
        "temperature",
        "max_completion_tokens",
        "stream",
        "stream_options",
    ]
    assert spec.json == {
        "model": "org/model",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
        "temperature": 0.0,
        "max_completion_tokens": 16,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert spec.headers == {"Content-Type": "application/json"}


def test_chat_multimodal_parts_follow_the_text_part() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}}
    video = {"type": "video_url", "video_url": {"url": "http://x/v.mp4"}}
    one = OpenAIChat().build_payload(
        make_input("http://h/v1/chat/completions", multi_modal_content=image)
    )
    assert one.json["messages"][0]["content"] == [{"type": "text", "text": "Hello"}, image]
    many = OpenAIChat().build_payload(
        make_input("http://h/v1/chat/completions", multi_modal_content=[image, video])
    )
    assert many.json["messages"][0]["content"][1:] == [image, video]


def test_chat_bad_multimodal_content_raises() -> None:
    with pytest.raises(ConfigError, match="dict or list"):
        OpenAIChat().build_payload(
            make_input("http://h/v1/chat/completions", multi_modal_content="img")
        )


def test_chat_ignore_eos_extra_body_and_headers() -> None:
    request = make_input(
        "http://h/v1/chat/completions",
        ignore_eos=True,
        extra_body={"max_tokens": 16},
        extra_headers={"x-request-id": "loses", "X-Tenant": "a"},
        request_id="wins",
    )
    spec = OpenAIChat().build_payload(request)
    assert list(spec.json)[-2:] == ["ignore_eos", "max_tokens"]
    assert spec.headers == {
        "Content-Type": "application/json",
        "x-request-id": "wins",
        "X-Tenant": "a",
    }


def test_chat_url_must_end_in_chat_completions() -> None:
    with pytest.raises(ConfigError, match="chat/completions"):
        OpenAIChat().build_payload(make_input("http://h/v1/completions"))


# --- parsing -----------------------------------------------------------------------------


def parse(backend: OpenAIChat | OpenAICompletions, data: str, event: str = "message") -> list:
    return list(backend.parse_event(SSEEvent(data, event)))


def test_completions_text_usage_and_done() -> None:
    backend = OpenAICompletions()
    assert parse(backend, '{"choices":[{"text":"Hi"}]}') == [TextDelta("Hi")]
    assert parse(backend, '{"choices":[{"text":""}]}') == []
    assert parse(backend, '{"choices":[{"text":null}]}') == []
    both = '{"choices":[{"text":"a"}],"usage":{"prompt_tokens":2,"completion_tokens":9}}'
    assert parse(backend, both) == [TextDelta("a"), UsageDelta(2, 9)]
    assert parse(backend, "[DONE]") == [END]
    assert parse(backend, "") == []


def test_chat_role_only_chunk_is_not_output() -> None:
    backend = OpenAIChat()
    assert parse(backend, '{"choices":[{"delta":{"role":"assistant","content":""}}]}') == []
    assert parse(backend, '{"choices":[{"delta":{"content":"Hi"}}]}') == [TextDelta("Hi")]


def test_chat_reasoning_and_tool_calls_are_output() -> None:
    backend = OpenAIChat()
    assert parse(backend, '{"choices":[{"delta":{"reasoning_content":"hmm"}}]}') == [
        ReasoningDelta("hmm")
    ]
    assert parse(backend, '{"choices":[{"delta":{"reasoning":"so"}}]}') == [ReasoningDelta("so")]
    call = (
        '{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c1",'
        '"function":{"name":"f","arguments":"{\\"a\\""}}]}}]}'
    )
    assert parse(backend, call) == [ToolCallDelta(0, "c1", "f", '{"a"')]


def test_chat_non_streaming_message_shape() -> None:
    body = '{"choices":[{"message":{"content":"whole"}}],"usage":{"completion_tokens":1}}'
    assert parse(OpenAIChat(), body) == [TextDelta("whole"), UsageDelta(None, 1)]


@pytest.mark.parametrize("backend", [OpenAIChat(), OpenAICompletions()])
def test_in_band_errors(backend: OpenAIChat | OpenAICompletions) -> None:
    [error] = parse(backend, '{"error":{"message":"overloaded","code":503}}')
    assert isinstance(error, ErrorDelta)
    assert "overloaded" in error.message and "503" in error.message
    [event_error] = parse(backend, "boom", event="error")
    assert isinstance(event_error, ErrorDelta) and "boom" in event_error.message


@pytest.mark.parametrize("backend", [OpenAIChat(), OpenAICompletions()])
def test_malformed_json_is_a_protocol_error(backend: OpenAIChat | OpenAICompletions) -> None:
    from anyio_llmreq import StreamProtocolError

    with pytest.raises(StreamProtocolError, match="invalid JSON"):
        parse(backend, "{not json")


def test_finalize_uses_server_usage() -> None:
    acc = Accumulator()
    for delta in [TextDelta("a"), ReasoningDelta("r"), TextDelta("b"), UsageDelta(4, 2)]:
        acc.add(delta)
    done = OpenAIChat().finalize(acc)
    assert (done.generated_text, done.reasoning_text) == ("ab", "r")
    assert (done.output_tokens, done.output_tokens_source, done.prompt_tokens) == (2, "usage", 4)
    plain = OpenAICompletions().finalize(Accumulator(text_parts=["x"]))
    assert (plain.output_tokens, plain.output_tokens_source) == (None, "")


TOKEN_EVENTS = [
    '{"choices":[{"text":"a"}]}',
    '{"choices":[{"text":""}]}',
    '{"choices":[{"text":null}]}',
    '{"choices":[{"text":7}]}',
    '{"choices":[{"text":"a"}],"usage":{"completion_tokens":1}}',
    '{"choices":[{"text":"a"}],"error":"x"}',
    '{"choices":[],"usage":{"completion_tokens":1}}',
    '{"choices":[{"delta":{"content":"a"}}]}',
    '{"choices":[{"delta":{"content":"a","reasoning_content":"r"}}]}',
    '{"choices":[{"delta":{"content":"","tool_calls":[{"index":0}]}}]}',
    '{"choices":[{"delta":{"role":"assistant","content":""}}]}',
    '{"choices":[{"delta":{"content":"a"}}],"usage":{"prompt_tokens":1}}',
    '{"choices":["nope"]}',
    "[DONE]",
    "",
    "{bad json",
]


@pytest.mark.parametrize("backend", [OpenAIChat(), OpenAICompletions()])
@pytest.mark.parametrize("data", TOKEN_EVENTS)
def test_token_text_agrees_with_parse_event(
    backend: OpenAIChat | OpenAICompletions, data: str
) -> None:
    text = backend.token_text(data)
    if text is not None:
        # The fast path may only claim plain token events, exactly as parse_event reads them.
        assert list(backend.parse_event(SSEEvent(data))) == [TextDelta(text)]


def test_token_text_claims_plain_token_events() -> None:
    assert OpenAICompletions().token_text('{"choices":[{"text":" hi"}]}') == " hi"
    assert OpenAIChat().token_text('{"choices":[{"delta":{"content":" hi"}}]}') == " hi"
    assert OpenAIChat().token_text('{"choices":[{"delta":{"role":"assistant"}}]}') is None


def test_token_text_finds_a_key_spelled_with_escapes() -> None:
    # Events without the key are rejected before parsing; a key spelled with \u escapes
    # is still the key, so those events are parsed.
    assert OpenAICompletions().token_text('{"choices":[{"te\\u0078t":" hi"}]}') == " hi"
    assert OpenAIChat().token_text('{"choices":[{"delta":{"c\\u006fntent":" hi"}}]}') == " hi"
    assert OpenAICompletions().token_text('{"choices":[],"usage":{"prompt_tokens":1}}') is None


def test_chat_sends_a_message_list_prompt_as_its_messages() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "hi"},
                                     {"type": "image_url", "image_url": {"url": "data:x"}}]},
    ]  # fmt: skip
    base = make_input("http://h/v1/chat/completions")
    request = dataclasses.replace(base, prompt=messages)
    assert OpenAIChat().build_payload(request).json["messages"] == messages
    # A list that isn't messages stays the text of one user message, as before.
    other = OpenAIChat().build_payload(dataclasses.replace(base, prompt=["a"]))
    assert other.json["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": ["a"]}]}
    ]
