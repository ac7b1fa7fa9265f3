"""Chat-style, CLIP and VLM2Vec embeddings and Infinity: payloads (the dicts vLLM's
``vllm bench serve`` sends, written out), parsing, and end to end on the mock server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from anyio_llmreq import (
    ASYNC_REQUEST_FUNCS,
    Accumulator,
    Client,
    ConfigError,
    RequestFuncInput,
    ResultDelta,
    SSEEvent,
    StreamProtocolError,
    UsageDelta,
    get_backend,
)
from anyio_llmreq._models import ErrorDelta
from anyio_llmreq.backends import (
    InfinityEmbeddings,
    InfinityEmbeddingsCLIP,
    OpenAIEmbeddingsChat,
    OpenAIEmbeddingsCLIP,
    OpenAIEmbeddingsVLM2Vec,
)
from anyio_llmreq.testing import MockBehaviour
from anyio_llmreq.testing._dialects import MEDIA_TOKENS

from .mock_run import check_whole_body, run
from .rawserver import Connection, RawServer, head

URL = "http://h/v1/embeddings"
IMAGE_URL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAE="
IMAGE = {"type": "image_url", "image_url": {"url": IMAGE_URL}}
AUDIO = {"type": "audio_url", "audio_url": {"url": "data:audio/wav;base64,UklGRg=="}}
VIDEO = {"type": "video_url", "video_url": {"url": "data:video/mp4;base64,AAAA"}}

CHAT_STYLE = ["openai-embeddings-chat", "openai-embeddings-clip", "openai-embeddings-vlm2vec"]
INFINITY = ["infinity-embeddings", "infinity-embeddings-clip"]
NEW = CHAT_STYLE + INFINITY


def make_input(prompt: Any = "Hello", url: str = URL, **kwargs: Any) -> RequestFuncInput:
    return RequestFuncInput(prompt, url, 3, 16, "org/model", **kwargs)


def payload(backend: str, prompt: Any = "Hello", **kwargs: Any) -> dict[str, Any]:
    spec = get_backend(backend).build_payload(make_input(prompt, **kwargs))
    assert isinstance(spec.json, dict)
    return spec.json


def user(*content: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": list(content)}]


def text(value: Any) -> dict[str, Any]:
    return {"type": "text", "text": value}


# --- registry -----------------------------------------------------------------------------


def test_registered_in_vllms_order_with_reference_function_names() -> None:
    keys = list(ASYNC_REQUEST_FUNCS)
    start = keys.index("openai-embeddings")
    assert keys[start : start + 8] == ["openai-embeddings", *NEW, "vllm-pooling", "vllm-rerank"]
    names = {k: ASYNC_REQUEST_FUNCS[k].__name__ for k in NEW}
    assert names == {
        "openai-embeddings-chat": "async_request_openai_embeddings_chat",
        "openai-embeddings-clip": "async_request_openai_embeddings_clip",
        "openai-embeddings-vlm2vec": "async_request_openai_embeddings_vlm2vec",
        "infinity-embeddings": "async_request_infinity_embeddings",
        "infinity-embeddings-clip": "async_request_infinity_embeddings_clip",
    }
    classes: list[type[Any]] = [
        OpenAIEmbeddingsChat,
        OpenAIEmbeddingsCLIP,
        OpenAIEmbeddingsVLM2Vec,
        InfinityEmbeddings,
        InfinityEmbeddingsCLIP,
    ]
    for key, cls in zip(NEW, classes, strict=True):
        backend: Any = get_backend(key)
        assert type(backend) is cls and cls.name == key and cls.framing == "json"
        assert repr(backend) == f"{cls.__name__}()" and backend == cls()


# --- openai-embeddings-chat ------------------------------------------------------------------


def test_chat_text_payload() -> None:
    spec = OpenAIEmbeddingsChat().build_payload(make_input())
    assert spec.url == URL and spec.auth is True
    assert spec.headers == {"Content-Type": "application/json"}
    assert spec.json == json.loads(
        '{"model": "org/model",'
        ' "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],'
        ' "truncate_prompt_tokens": -1}'
    )
    assert list(spec.json) == ["model", "messages", "truncate_prompt_tokens"]


def test_chat_media_follow_the_text() -> None:
    assert payload("openai-embeddings-chat", multi_modal_content=IMAGE)["messages"] == user(
        text("Hello"), IMAGE
    )
    two = payload("openai-embeddings-chat", multi_modal_content=[IMAGE, AUDIO])
    assert two["messages"] == user(text("Hello"), IMAGE, AUDIO)


def test_chat_prompt_as_content_parts_or_messages() -> None:
    parts = [text("a"), text("b")]
    got = payload("openai-embeddings-chat", parts, multi_modal_content=IMAGE)
    assert got["messages"] == user(text("a"), text("b"), IMAGE)
    # A message list is sent as it is; the media are not added (nor checked).
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": [text("q")]}]
    got = payload("openai-embeddings-chat", messages, multi_modal_content="ignored")
    assert got["messages"] == messages
    # Anything else is one text part, as vLLM sends it (lists of strings included).
    assert payload("openai-embeddings-chat", ["x", "y"])["messages"] == user(text(["x", "y"]))


def test_chat_common_updates_and_headers() -> None:
    spec = OpenAIEmbeddingsChat().build_payload(
        make_input(
            model_name="served",
            ignore_eos=True,
            extra_body={"truncate_prompt_tokens": 8, "dimensions": 4},
            request_id="req-1",
            extra_headers={"x-a": "1"},
        )
    )
    assert spec.json == {
        "model": "served",
        "messages": user(text("Hello")),
        "truncate_prompt_tokens": 8,
        "ignore_eos": True,
        "dimensions": 4,
    }
    assert list(spec.json) == ["model", "messages", "truncate_prompt_tokens", "ignore_eos",
                               "dimensions"]  # fmt: skip
    assert spec.headers == {"Content-Type": "application/json", "x-a": "1", "x-request-id": "req-1"}


@pytest.mark.parametrize("backend", CHAT_STYLE)
def test_bad_media_is_a_one_line_config_error(backend: str) -> None:
    with pytest.raises(ConfigError, match=r"multi_modal_content must be a dict or list\[dict\]"):
        payload(backend, multi_modal_content="not media")
    with pytest.raises(ConfigError) as info:
        payload(backend, multi_modal_content=("a", "tuple"))
    assert backend in str(info.value) and "\n" not in str(info.value)


# --- openai-embeddings-clip ----------------------------------------------------------------


def test_clip_embeds_text_or_image_never_both() -> None:
    assert payload("openai-embeddings-clip") == {
        "model": "org/model",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
        "truncate_prompt_tokens": -1,
    }
    assert payload("openai-embeddings-clip", multi_modal_content=IMAGE) == {
        "model": "org/model",
        "messages": [{"role": "user", "content": [{"type": "text", "text": ""}, IMAGE]}],
        "truncate_prompt_tokens": -1,
    }
    # Empty media count as none, as in vLLM.
    assert payload("openai-embeddings-clip", multi_modal_content={})["messages"] == user(
        text("Hello")
    )


# --- openai-embeddings-vlm2vec -------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_id", "expected"),
    [
        (None, "Represent the given image."),
        ("bench-ab12cd-0", "Represent the given image."),
        ("bench-ab12cd-4", "Represent the given image."),
        ("bench-ab12cd-7", "Represent the given image with the following question: Hello"),
        ("13", "Represent the given image with the following question: Hello"),
        ("no-index", "Represent the given image."),
        ("7-a", "Represent the given image."),  # only a trailing number counts
    ],
)
def test_vlm2vec_instruction_follows_the_request_index(
    request_id: str | None, expected: str
) -> None:
    got = payload("openai-embeddings-vlm2vec", multi_modal_content=IMAGE, request_id=request_id)
    assert got == {
        "model": "org/model",
        "messages": [{"role": "user", "content": [IMAGE, {"type": "text", "text": expected}]}],
        "truncate_prompt_tokens": -1,
    }


def test_vlm2vec_media_come_first_and_text_alone_is_unchanged() -> None:
    got = payload("openai-embeddings-vlm2vec", multi_modal_content=[IMAGE, IMAGE], request_id="1")
    question = "Represent the given image with the following question: Hello"
    assert got["messages"] == user(IMAGE, IMAGE, text(question))
    assert payload("openai-embeddings-vlm2vec", request_id="1") == {
        "model": "org/model",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
        "truncate_prompt_tokens": -1,
    }


@pytest.mark.parametrize("backend", NEW)
def test_the_request_is_not_changed(backend: str) -> None:
    request = make_input("Hello", multi_modal_content=IMAGE, request_id="r-3")
    get_backend(backend).build_payload(request)
    assert request.prompt == "Hello" and request.multi_modal_content == IMAGE


# --- infinity --------------------------------------------------------------------------------


def test_infinity_text_payload() -> None:
    spec = InfinityEmbeddings().build_payload(make_input(url="http://h/embeddings"))
    assert spec.url == "http://h/embeddings"
    assert spec.headers == {"Content-Type": "application/json"}
    assert spec.json == json.loads('{"model": "org/model", "input": "Hello"}')
    # A text prompt wins: the media are not sent.
    assert payload("infinity-embeddings", multi_modal_content=IMAGE) == {
        "model": "org/model",
        "input": "Hello",
    }
    assert payload("infinity-embeddings", ["a", "b"]) == {"model": "org/model", "input": ["a", "b"]}


@pytest.mark.parametrize(
    ("media", "modality"), [(IMAGE, "image"), (AUDIO, "audio"), ([IMAGE], "image")]
)
def test_infinity_empty_prompt_sends_the_media_part(media: Any, modality: str) -> None:
    url = (media[0] if isinstance(media, list) else media)[f"{modality}_url"]["url"]
    got = payload("infinity-embeddings", "", multi_modal_content=media, extra_body={"x": 1})
    assert got == {"model": "org/model", "input": url, "modality": modality, "x": 1}
    assert list(got) == ["model", "input", "modality", "x"]


def test_infinity_clip_embeds_the_image_alone() -> None:
    assert payload("infinity-embeddings-clip", multi_modal_content=IMAGE) == {
        "model": "org/model",
        "input": IMAGE_URL,
        "modality": "image",
    }
    assert payload("infinity-embeddings-clip") == {"model": "org/model", "input": "Hello"}


@pytest.mark.parametrize(
    "media",
    [None, [IMAGE, IMAGE], [], {"type": "image_url"}, {"image_url": {"url": "u"}},
     {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}],
)  # fmt: skip
def test_infinity_needs_text_or_one_media_url(media: Any) -> None:
    for backend, prompt in [("infinity-embeddings", ""), ("infinity-embeddings-clip", "x")]:
        if backend == "infinity-embeddings-clip" and not media:
            continue  # no media: the clip backend sends the text
        with pytest.raises(ConfigError, match=f"{backend} with an empty prompt") as info:
            payload(backend, prompt, multi_modal_content=media)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("backend", NEW)
@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("http://h/v1/embeddings", True),
        ("http://h/embeddings", True),
        ("http://h/profile", True),
        ("http://h/v1/chat/completions", False),
        ("http://h/pooling", False),
    ],
)
def test_url_must_end_with_embeddings(backend: str, url: str, ok: bool) -> None:
    build = get_backend(backend).build_payload
    if ok:
        build(make_input(url=url))
    else:
        with pytest.raises(ConfigError, match="must end with 'embeddings'"):
            build(make_input(url=url))


@pytest.mark.parametrize("backend", NEW)
def test_binary_encoding_is_refused_before_io(backend: str) -> None:
    with pytest.raises(ConfigError, match="base64"):
        payload(backend, extra_body={"encoding_format": "bytes"})


# --- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", NEW)
def test_parsing_usage_and_errors(backend: str) -> None:
    impl = get_backend(backend)
    body = {
        "object": "list",
        "data": [{"object": "embedding", "embedding": [0.5], "index": 0}],
        "model": "m",
        "usage": {"prompt_tokens": 9, "total_tokens": 9},  # Infinity's usage has no more
    }
    deltas = list(impl.parse_event(SSEEvent(json.dumps(body))))
    assert deltas == [ResultDelta(body), UsageDelta(prompt_tokens=9)]
    acc = Accumulator()
    for delta in deltas:
        acc.add(delta)
    done = impl.finalize(acc)
    assert (done.generated_text, done.prompt_tokens, done.prompt_len) == ("", 9, 9)
    (error,) = impl.parse_event(SSEEvent('{"error": {"message": "bad\\n image", "code": 400}}'))
    assert isinstance(error, ErrorDelta)
    assert error.message == "server error in stream: bad image (code 400)"
    for data in ["<html>oops</html>", "[1, 2]"]:
        with pytest.raises(StreamProtocolError):
            impl.parse_event(SSEEvent(data))


# --- end to end ---------------------------------------------------------------------------

#: (backend, path, prompt, media, request id, the mock's prompt_tokens)
E2E = [
    pytest.param("openai-embeddings-chat", "/v1/embeddings", "a b c d e", None, None, 5,
                 id="chat-text"),
    pytest.param("openai-embeddings-chat", "/v1/embeddings", "a b c", [IMAGE, IMAGE], None,
                 3 + 2 * MEDIA_TOKENS, id="chat-images"),
    pytest.param("openai-embeddings-clip", "/v1/embeddings", "a b c d", None, None, 4,
                 id="clip-text"),
    pytest.param("openai-embeddings-clip", "/v1/embeddings", "a b c d", IMAGE, None,
                 MEDIA_TOKENS, id="clip-image"),
    pytest.param("openai-embeddings-vlm2vec", "/v1/embeddings", "a b", None, "r-1", 2,
                 id="vlm2vec-text"),
    pytest.param("openai-embeddings-vlm2vec", "/v1/embeddings", "a b", IMAGE, "r-2",
                 4 + MEDIA_TOKENS, id="vlm2vec-image"),
    pytest.param("openai-embeddings-vlm2vec", "/v1/embeddings", "a b", IMAGE, "r-3",
                 10 + MEDIA_TOKENS, id="vlm2vec-image-question"),
    pytest.param("infinity-embeddings", "/embeddings", "a b c d e f", None, None, 6,
                 id="infinity-text"),
    pytest.param("infinity-embeddings", "/embeddings", "", AUDIO, None, MEDIA_TOKENS,
                 id="infinity-audio"),
    pytest.param("infinity-embeddings-clip", "/embeddings", "a b c", IMAGE, None,
                 MEDIA_TOKENS, id="infinity-clip-image"),
    pytest.param("infinity-embeddings-clip", "/v1/embeddings", "a b c", None, None, 3,
                 id="infinity-clip-text"),
]  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize(("backend", "path", "prompt", "media", "rid", "tokens"), E2E)
async def test_success_over_a_socket(
    backend: str, path: str, prompt: Any, media: Any, rid: str | None, tokens: int
) -> None:
    out, server = await run(backend, path, prompt=prompt, multi_modal_content=media, request_id=rid)
    check_whole_body(out)
    assert out.generated_text == "" and out.output_tokens == 0
    assert out.prompt_len == out.prompt_tokens == tokens  # the server's count, not the input's 3
    (recorded,) = server.requests
    sent = RequestFuncInput(
        prompt, server.base_url + path, 3, 6, "m", multi_modal_content=media, request_id=rid
    )
    assert recorded.path == path
    assert recorded.json == get_backend(backend).build_payload(sent).json


@pytest.mark.anyio
@pytest.mark.parametrize("backend", NEW)
async def test_compat_function(backend: str) -> None:
    out, server = await run(backend, "/v1/embeddings", prompt="a b c d", compat=True)
    check_whole_body(out)
    assert out.prompt_len == 4 and server.requests[0].json["model"] == "m"


@pytest.mark.anyio
@pytest.mark.parametrize("backend", NEW)
async def test_failures_are_one_line(backend: str) -> None:
    out, _ = await run(backend, "/v1/embeddings", MockBehaviour(status=500))
    assert not out.success and out.error.startswith("HTTP 500")
    # A 200 whose body is an error object, or is not JSON at all.
    out, _ = await run(backend, "/v1/embeddings", MockBehaviour(status=200))
    assert not out.success and "mock error" in out.error and "\n" not in out.error
    out, _ = await run(backend, "/v1/embeddings", MockBehaviour(status=200, error_body="html"))
    assert not out.success and out.error and "\n" not in out.error
    out, _ = await run(backend, "/v1/embeddings", MockBehaviour(reset_after=0))
    assert not out.success and out.error and "\n" not in out.error


@pytest.mark.anyio
async def test_infinity_rejects_a_modality_it_has_not() -> None:
    out, server = await run("infinity-embeddings-clip", "/embeddings", multi_modal_content=VIDEO)
    assert server.requests[0].json["modality"] == "video"
    assert not out.success and out.error.startswith("HTTP 422")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "error"),
    [(b"{not json", "invalid JSON"), (b'["a list"]', "pooling response is not a JSON object")],
)
async def test_a_malformed_json_body_fails_with_one_line(body: bytes, error: str) -> None:
    def reply(conn: Connection) -> None:
        fields = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        conn.send(head(200, fields) + body)

    with RawServer(reply) as server:
        async with Client() as client:
            outs = [
                await client.send(backend, make_input(url=server.url("/embeddings")))
                for backend in NEW
            ]
    for out in outs:
        assert not out.success and out.status_code == 200
        assert out.error.startswith(error) and "\n" not in out.error
