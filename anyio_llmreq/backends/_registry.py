"""Registry of backends by name (vLLM's ``--backend`` keys plus our own)."""

from __future__ import annotations

from collections.abc import Callable

from .._exceptions import ConfigError
from ._audio import OpenAIAudio
from ._base import Backend
from ._mii import DeepSpeedMII
from ._openai import OpenAIChat, OpenAICompletions
from ._pooling import (
    InfinityEmbeddings,
    InfinityEmbeddingsCLIP,
    OpenAIEmbeddings,
    OpenAIEmbeddingsChat,
    OpenAIEmbeddingsCLIP,
    OpenAIEmbeddingsVLM2Vec,
    VLLMPooling,
    VLLMRerank,
)
from ._tgi import TGI
from ._trtllm import TensorRTLLM

__all__ = ["backend_names", "get_backend", "on_register", "register_backend"]

_completions = OpenAICompletions()
_chat = OpenAIChat()

# Insertion order is the order `ASYNC_REQUEST_FUNCS` lists them in: vLLM's legacy keys,
# then the pooling keys of its newer module, in its order.
_BACKENDS: dict[str, Backend] = {
    "tgi": TGI(),
    "vllm": _completions,
    "lmdeploy": _completions,
    "deepspeed-mii": DeepSpeedMII(),
    "openai": _completions,
    "openai-chat": _chat,
    "openai-audio": OpenAIAudio(),
    "tensorrt-llm": TensorRTLLM(),
    "scalellm": _completions,
    "sglang": _completions,
    "llama.cpp": _completions,
    "openai-embeddings": OpenAIEmbeddings(),
    "openai-embeddings-chat": OpenAIEmbeddingsChat(),
    "openai-embeddings-clip": OpenAIEmbeddingsCLIP(),
    "openai-embeddings-vlm2vec": OpenAIEmbeddingsVLM2Vec(),
    "infinity-embeddings": InfinityEmbeddings(),
    "infinity-embeddings-clip": InfinityEmbeddingsCLIP(),
    "vllm-pooling": VLLMPooling(),
    "vllm-rerank": VLLMRerank(),
}

_LISTENERS: list[Callable[[str], None]] = []


def get_backend(name: str) -> Backend:
    """Return the backend registered under *name*.

    Raises:
        ConfigError: no backend has that name.
    """
    try:
        return _BACKENDS[name]
    except KeyError:
        known = ", ".join(sorted(_BACKENDS))
        raise ConfigError(f"unknown backend {name!r}; known backends: {known}") from None


def register_backend(name: str, backend: Backend, *, replace: bool = False) -> None:
    """Register *backend* under *name* so the engine, compat layer and bench can use it.

    ``Client.send(name, ...)`` then finds it, and ``ASYNC_REQUEST_FUNCS[name]`` becomes a
    reference-style request function for it. A backend is any object with the
    ``Backend`` protocol's ``framing``, ``build_payload``, ``parse_event`` and
    ``finalize``; an ``@attrs.frozen`` class like the built-in ones is the usual shape::

        from collections.abc import Sequence
        from typing import ClassVar

        import attrs
        from anyio_llmreq import (
            Accumulator, Completion, Delta, EndDelta, RequestFuncInput, RequestSpec,
            SSEEvent, TextDelta, register_backend,
        )
        from anyio_llmreq.backends import Framing, base_headers, decode_json

        @attrs.frozen
        class EchoServer:
            name: ClassVar[str] = "echo"
            framing: ClassVar[Framing] = "sse"

            def build_payload(self, request: RequestFuncInput, /) -> RequestSpec:
                payload = {"text": request.prompt, "max": request.output_len}
                return RequestSpec(request.api_url, json=payload,
                                   headers=base_headers(request), auth=False)

            def parse_event(self, event: SSEEvent, /) -> Sequence[Delta]:
                obj = decode_json(event)  # None: keep-alive; "[DONE]": end marker
                if obj is None:
                    return ()
                if obj == "[DONE]":
                    return (EndDelta(),)
                return (TextDelta(obj["token"]),) if obj.get("token") else ()

            def finalize(self, acc: Accumulator, /) -> Completion:
                return Completion("".join(acc.text_parts))

        register_backend("echo", EchoServer())
        # ASYNC_REQUEST_FUNCS["echo"] and Client().send("echo", request) now work.

    Raises:
        ConfigError: *name* is taken and *replace* is false, or *backend* does not
            look like a backend.
    """
    if not name or not isinstance(name, str):
        raise ConfigError(f"a backend name must be a non-empty string, got {name!r}")
    if name in _BACKENDS and not replace:
        raise ConfigError(f"a backend is already registered as {name!r}; pass replace=True")
    missing = [
        attr
        for attr in ("build_payload", "parse_event", "finalize")
        if not callable(getattr(backend, attr, None))
    ]
    if missing:
        raise ConfigError(f"{backend!r} is not a backend: it has no {', '.join(missing)}")
    framing = getattr(backend, "framing", None)
    if framing not in ("sse", "json"):
        raise ConfigError(f"{backend!r} has framing {framing!r}; expected 'sse' or 'json'")
    _BACKENDS[name] = backend
    for listener in _LISTENERS:
        listener(name)


def on_register(listener: Callable[[str], None]) -> None:
    """Call *listener* with the name of every backend registered from now on."""
    _LISTENERS.append(listener)


def backend_names() -> list[str]:
    """All registered names, in registration order."""
    return list(_BACKENDS)
