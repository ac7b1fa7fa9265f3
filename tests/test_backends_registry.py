"""The registry and the compat table: every reference key, and user-registered backends."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
import pytest

import anyio_llmreq
from anyio_llmreq import (
    ASYNC_REQUEST_FUNCS,
    OPENAI_COMPATIBLE_BACKENDS,
    TGI,
    Accumulator,
    Completion,
    ConfigError,
    DeepSpeedMII,
    Delta,
    OpenAIAudio,
    OpenAIChat,
    OpenAICompletions,
    OpenAIEmbeddings,
    RequestFuncInput,
    RequestSpec,
    SSEEvent,
    TensorRTLLM,
    TextDelta,
    VLLMPooling,
    VLLMRerank,
    backend_names,
    get_backend,
    register_backend,
)
from anyio_llmreq.backends import Framing, base_headers, decode_json

from .mock_run import check_stream, run, words

pytestmark = pytest.mark.anyio

REFERENCE_KEYS = [
    "tgi", "vllm", "lmdeploy", "deepspeed-mii", "openai", "openai-chat", "openai-audio",
    "tensorrt-llm", "scalellm", "sglang", "llama.cpp",
]  # fmt: skip
OUR_KEYS = [
    "openai-embeddings", "openai-embeddings-chat", "openai-embeddings-clip",
    "openai-embeddings-vlm2vec", "infinity-embeddings", "infinity-embeddings-clip",
    "vllm-pooling", "vllm-rerank",
]  # fmt: skip


def test_every_reference_key_in_order_then_ours() -> None:
    assert list(ASYNC_REQUEST_FUNCS) == REFERENCE_KEYS + OUR_KEYS
    assert backend_names() == REFERENCE_KEYS + OUR_KEYS
    assert OPENAI_COMPATIBLE_BACKENDS == [
        "vllm", "lmdeploy", "openai", "openai-chat", "scalellm", "sglang", "llama.cpp"
    ]  # fmt: skip


def test_keys_map_to_the_reference_functions() -> None:
    expected = {
        "tgi": "async_request_tgi",
        "vllm": "async_request_openai_completions",
        "lmdeploy": "async_request_openai_completions",
        "deepspeed-mii": "async_request_deepspeed_mii",
        "openai": "async_request_openai_completions",
        "openai-chat": "async_request_openai_chat_completions",
        "openai-audio": "async_request_openai_audio",
        "tensorrt-llm": "async_request_trt_llm",
        "scalellm": "async_request_openai_completions",
        "sglang": "async_request_openai_completions",
        "llama.cpp": "async_request_openai_completions",
        "openai-embeddings": "async_request_openai_embeddings",
        "openai-embeddings-chat": "async_request_openai_embeddings_chat",
        "openai-embeddings-clip": "async_request_openai_embeddings_clip",
        "openai-embeddings-vlm2vec": "async_request_openai_embeddings_vlm2vec",
        "infinity-embeddings": "async_request_infinity_embeddings",
        "infinity-embeddings-clip": "async_request_infinity_embeddings_clip",
        "vllm-pooling": "async_request_vllm_pooling",
        "vllm-rerank": "async_request_vllm_rerank",
    }
    assert {k: f.__name__ for k, f in ASYNC_REQUEST_FUNCS.items()} == expected
    for key, name in expected.items():
        assert getattr(anyio_llmreq, name) is ASYNC_REQUEST_FUNCS[key]
        assert name in anyio_llmreq.__all__


@pytest.mark.parametrize(
    ("key", "cls"),
    [
        ("tgi", TGI),
        ("vllm", OpenAICompletions),
        ("deepspeed-mii", DeepSpeedMII),
        ("openai-chat", OpenAIChat),
        ("openai-audio", OpenAIAudio),
        ("tensorrt-llm", TensorRTLLM),
        ("openai-embeddings", OpenAIEmbeddings),
        ("vllm-pooling", VLLMPooling),
        ("vllm-rerank", VLLMRerank),
    ],
)
def test_get_backend(key: str, cls: type) -> None:
    backend = get_backend(key)
    assert type(backend) is cls
    if key != "vllm":
        assert cls.name == key  # type: ignore[attr-defined]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        backend.x = 1  # type: ignore[attr-defined]


@attrs.frozen
class Words:
    """A user backend: OpenAI completions chunks, one text delta per event."""

    name: ClassVar[str] = "words"
    framing: ClassVar[Framing] = "sse"

    def build_payload(self, request: RequestFuncInput, /) -> RequestSpec:
        payload = {"prompt": request.prompt, "max_tokens": request.output_len, "stream": True}
        return RequestSpec(request.api_url, json=payload, headers=base_headers(request))

    def parse_event(self, event: SSEEvent, /) -> Sequence[Delta]:
        obj = decode_json(event)
        if not isinstance(obj, dict) or not obj.get("choices"):
            return ()
        return (TextDelta(obj["choices"][0]["text"]),)

    def finalize(self, acc: Accumulator, /) -> Completion:
        return Completion("".join(acc.text_parts), len(acc.text_parts), "events")


async def test_register_backend_adds_a_request_function(restore_registry: None) -> None:
    register_backend("words", Words())
    assert "words" in backend_names()
    func = ASYNC_REQUEST_FUNCS["words"]
    assert func.__name__ == "async_request_words" and func.backend_name == "words"
    assert "words" not in OPENAI_COMPATIBLE_BACKENDS
    out, _ = await run("words", "/v1/completions", compat=True, output_len=4)
    check_stream(out, 4)
    assert words(out.generated_text) == 4 and out.output_tokens == 4
    out, _ = await run("words", "/v1/completions", output_len=2)
    assert out.success and out.output_tokens == 2


def test_register_backend_refuses_taken_names_and_non_backends(restore_registry: None) -> None:
    with pytest.raises(ConfigError, match="replace=True"):
        register_backend("tgi", Words())
    with pytest.raises(ConfigError, match="parse_event"):
        register_backend("x", object())  # type: ignore[arg-type]

    @attrs.frozen
    class BadFraming(Words):
        framing: ClassVar[Any] = "lines"

    with pytest.raises(ConfigError, match="framing"):
        register_backend("x", BadFraming())
    with pytest.raises(ConfigError, match="name"):
        register_backend("", Words())
    assert "x" not in ASYNC_REQUEST_FUNCS


def test_replacing_a_shared_key_rebinds_only_that_key(restore_registry: None) -> None:
    before = ASYNC_REQUEST_FUNCS["vllm"]
    register_backend("vllm", Words(), replace=True)
    assert type(get_backend("vllm")) is Words
    assert ASYNC_REQUEST_FUNCS["vllm"] is not before
    assert ASYNC_REQUEST_FUNCS["vllm"].backend_name == "vllm"
    assert ASYNC_REQUEST_FUNCS["openai"] is before  # still OpenAI completions
    assert type(get_backend("openai")) is OpenAICompletions
    # Replacing a key whose function already looks it up by name keeps the function.
    tgi = ASYNC_REQUEST_FUNCS["tgi"]
    register_backend("tgi", Words(), replace=True)
    assert ASYNC_REQUEST_FUNCS["tgi"] is tgi


def test_the_docstring_example_runs(restore_registry: None) -> None:
    doc = register_backend.__doc__
    assert doc is not None
    block = doc.split("::\n", 1)[1].split("\n    Raises:", 1)[0]
    namespace: dict[str, Any] = {}
    exec(textwrap.dedent(block), namespace)
    assert "echo" in ASYNC_REQUEST_FUNCS
    backend = get_backend("echo")
    spec = backend.build_payload(RequestFuncInput("hi", "http://h/echo", 1, 2, "m"))
    assert spec.json == {"text": "hi", "max": 2} and spec.auth is False
    assert list(backend.parse_event(SSEEvent('{"token": "x"}'))) == [TextDelta("x")]
