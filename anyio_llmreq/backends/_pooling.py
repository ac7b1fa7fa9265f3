"""Pooling endpoints (non-streaming): OpenAI embeddings (text, chat-style and the CLIP and
VLM2Vec prompt rules), Infinity embeddings, vLLM rerank and vLLM pooling."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar, final

from .._exceptions import ConfigError, StreamProtocolError
from .._models import (
    Accumulator,
    Completion,
    Delta,
    RequestFuncInput,
    RequestSpec,
    ResultDelta,
    SSEEvent,
    UsageDelta,
)
from ._base import Framing, Stateless, base_headers, decode_json, error_message, validate_url

__all__ = [
    "InfinityEmbeddings",
    "InfinityEmbeddingsCLIP",
    "OpenAIEmbeddings",
    "OpenAIEmbeddingsCLIP",
    "OpenAIEmbeddingsChat",
    "OpenAIEmbeddingsVLM2Vec",
    "VLLMPooling",
    "VLLMRerank",
]

_BINARY_FORMATS = ("bytes", "bytes_only")


def _model(request: RequestFuncInput) -> str:
    return request.model_name if request.model_name else request.model


def _spec(request: RequestFuncInput, payload: dict[str, Any]) -> RequestSpec:
    """Apply vLLM's common payload updates and build the JSON request."""
    if request.ignore_eos:
        payload["ignore_eos"] = request.ignore_eos
    if request.extra_body:
        payload.update(request.extra_body)
    if payload.get("encoding_format") in _BINARY_FORMATS:
        raise ConfigError(
            f"encoding_format={payload['encoding_format']!r} answers with raw bytes, which "
            "this backend does not read; use 'float' or 'base64'"
        )
    headers = base_headers(request, "application/json")
    return RequestSpec(url=request.api_url, json=payload, headers=headers)


def _parse(event: SSEEvent) -> Sequence[Delta]:
    """The whole JSON answer is the output; its usage gives the prompt length."""
    obj = decode_json(event)
    if obj is None or obj == "[DONE]":
        return ()
    if not isinstance(obj, dict):
        raise StreamProtocolError(f"pooling response is not a JSON object: {obj!r:.120}")
    if obj.get("error"):
        return (error_message(obj["error"]),)
    if "object" in obj and obj["object"] == "error":  # vLLM's older error shape
        return (error_message(obj),)
    deltas: list[Delta] = [ResultDelta(obj)]
    usage = obj.get("usage")
    if isinstance(usage, dict):
        deltas.append(UsageDelta(prompt_tokens=usage.get("prompt_tokens", 0)))
    return deltas


def _finalize(acc: Accumulator) -> Completion:
    return Completion("", prompt_tokens=acc.prompt_tokens, prompt_len=acc.prompt_tokens)


class _PoolingResponse(Stateless):
    """How the pooling backends read their (non-streaming) JSON answer."""

    __slots__ = ()
    framing: ClassVar[Framing] = "json"

    def parse_event(self, event: SSEEvent, /) -> Sequence[Delta]:
        return _parse(event)

    def finalize(self, acc: Accumulator, /) -> Completion:
        return _finalize(acc)


@final
class OpenAIEmbeddings(_PoolingResponse):
    """``/v1/embeddings``. Succeeds with empty text; ``prompt_len`` is the server's
    ``usage.prompt_tokens`` and TTFT equals latency."""

    __slots__ = ()

    name: ClassVar[str] = "openai-embeddings"

    def build_payload(self, request: RequestFuncInput, /) -> RequestSpec:
        validate_url(request.api_url, "OpenAI Embeddings API", ("embeddings", "profile"))
        payload: dict[str, Any] = {
            "model": _model(request),
            "input": request.prompt,
            "truncate_prompt_tokens": -1,
        }
        return _spec(request, payload)


@final
class VLLMRerank(_PoolingResponse):
    """vLLM's ``/rerank``: the prompt is ``[query, document, ...]``; ``extra_body`` is
    honoured (vLLM's own function drops it)."""

    __slots__ = ()

    name: ClassVar[str] = "vllm-rerank"

    def build_payload(self, request: RequestFuncInput, /) -> RequestSpec:
        validate_url(request.api_url, "vLLM Rerank API", ("rerank", "profile"))
        prompt = request.prompt
        if not isinstance(prompt, (list, tuple)) or len(prompt) < 2:
            raise ConfigError(
                "vllm-rerank needs the prompt as a list [query, document, ...] of at least "
                f"2 items, got {prompt!r:.80}"
            )
        payload: dict[str, Any] = {
            "model": _model(request),
            "query": prompt[0],
            "documents": list(prompt[1:]),
            "truncate_prompt_tokens": -1,
        }
        return _spec(request, payload)


@final
class VLLMPooling(_PoolingResponse):
    """vLLM's ``/pooling``: a dict prompt is merged into the payload, anything else is
    sent as ``input``."""

    __slots__ = ()

    name: ClassVar[str] = "vllm-pooling"

    def build_payload(self, request: RequestFuncInput, /) -> RequestSpec:
        validate_url(request.api_url, "vLLM Pooling API", ("pooling", "profile"))
        payload: dict[str, Any] = {"model": _model(request), "truncate_prompt_tokens": -1}
        if isinstance(request.prompt, dict):
            payload.update(request.prompt)
        else:
            payload["input"] = request.prompt
        return _spec(request, payload)


# --- chat-style embeddings ----------------------------------------------------------------

#: VLM2Vec's instructions: an image alone, or an image with the prompt as its question.
VLM2VEC_IMAGE_PROMPT = "Represent the given image."
VLM2VEC_QUESTION_PROMPT = "Represent the given image with the following question: "

_TRAILING_INDEX = re.compile(r"(\d+)$")


def _media_parts(content: Any, backend: str) -> list[dict[str, Any]]:
    """``multi_modal_content`` as a list of content parts (a dict is one part)."""
    if not content:
        return []
    if isinstance(content, list):
        return list(content)
    if isinstance(content, dict):
        return [content]
    raise ConfigError(
        f"multi_modal_content must be a dict or list[dict] for {backend}, "
        f"got {type(content).__name__}"
    )


def _is_chat_messages(prompt: Any) -> bool:
    """A prompt that already is a message list: ``[{"role": str, "content": str|list}]``."""
    return (
        isinstance(prompt, list)
        and bool(prompt)
        and all(
            isinstance(m, dict)
            and isinstance(m.get("role"), str)
            and isinstance(m.get("content"), (str, list))
            for m in prompt
        )
    )


def _is_content_parts(prompt: Any) -> bool:
    """A prompt given as content parts: ``[{"type": str, ...}, ...]``."""
    return (
        isinstance(prompt, list)
        and bool(prompt)
        and all(isinstance(p, dict) and isinstance(p.get("type"), str) for p in prompt)
    )


def chat_messages(
    prompt: Any,
    multi_modal_content: Any,
    *,
    media_first: bool = False,
    backend: str = "openai-embeddings-chat",
) -> list[dict[str, Any]]:
    """The ``messages`` of a chat-style embeddings request.

    A prompt that is a message list is sent as it is (media ignored). Otherwise one user
    message: the prompt's content parts (or one text part) and the media parts, the media
    after the text unless *media_first*.

    Raises:
        ConfigError: *multi_modal_content* is neither a dict nor a list.
    """
    if _is_chat_messages(prompt):
        return list(prompt)
    media = _media_parts(multi_modal_content, backend)
    parts: list[dict[str, Any]] = (
        list(prompt) if _is_content_parts(prompt) else [{"type": "text", "text": prompt}]
    )
    content = media + parts if media_first else parts + media
    return [{"role": "user", "content": content}]


def request_index(request: RequestFuncInput) -> int | None:
    """The number that ends ``request_id`` (``"bench-7"`` gives 7), if any."""
    if not request.request_id:
        return None
    match = _TRAILING_INDEX.search(request.request_id)
    if match is None:
        return None
    try:
        return int(match.group(1))
    except ValueError:
        return None


class _EmbeddingsChat(_PoolingResponse):
    """``/v1/embeddings`` with ``messages`` instead of ``input`` (vLLM's chat-style
    embeddings); subclasses rewrite the prompt for their model's instruction format."""

    __slots__ = ()

    name: ClassVar[str]
    media_first: ClassVar[bool] = False

    def prompt_for(self, request: RequestFuncInput, /) -> Any:
        """The prompt the messages are built from."""
        return request.prompt

    def build_payload(self, request: RequestFuncInput, /) -> RequestSpec:
        validate_url(request.api_url, "OpenAI Embeddings API", ("embeddings", "profile"))
        messages = chat_messages(
            self.prompt_for(request),
            request.multi_modal_content,
            media_first=self.media_first,
            backend=self.name,
        )
        payload: dict[str, Any] = {
            "model": _model(request),
            "messages": messages,
            "truncate_prompt_tokens": -1,
        }
        return _spec(request, payload)


@final
class OpenAIEmbeddingsChat(_EmbeddingsChat):
    """``/v1/embeddings`` with one user message: the prompt as a text part, then any media
    parts. A prompt that is already a message list is sent unchanged."""

    __slots__ = ()

    name: ClassVar[str] = "openai-embeddings-chat"


@final
class OpenAIEmbeddingsCLIP(_EmbeddingsChat):
    """CLIP embeds text or an image, not both: with media the text part is empty."""

    __slots__ = ()

    name: ClassVar[str] = "openai-embeddings-clip"

    def prompt_for(self, request: RequestFuncInput, /) -> Any:
        return "" if request.multi_modal_content else request.prompt


@final
class OpenAIEmbeddingsVLM2Vec(_EmbeddingsChat):
    """VLM2Vec's instruction format, media first. With media, requests whose id ends in an
    even number (or in none) embed the image alone (``"Represent the given image."``);
    odd ones embed it with the prompt as a question. Without media the prompt is sent as
    text."""

    __slots__ = ()

    name: ClassVar[str] = "openai-embeddings-vlm2vec"
    media_first: ClassVar[bool] = True

    def prompt_for(self, request: RequestFuncInput, /) -> Any:
        if not request.multi_modal_content:
            return request.prompt
        index = request_index(request)
        if index is None or index % 2 == 0:
            return VLM2VEC_IMAGE_PROMPT
        return f"{VLM2VEC_QUESTION_PROMPT}{request.prompt}"


# --- Infinity -------------------------------------------------------------------------------


def _infinity_media(content: Any, backend: str) -> tuple[str, str]:
    """The URL (or data URI) and modality of the one media part Infinity embeds."""
    part = content[0] if isinstance(content, list) and len(content) == 1 else content
    kind = part.get("type") if isinstance(part, dict) else None
    inner = part.get(kind) if isinstance(part, dict) and isinstance(kind, str) else None
    url = inner.get("url") if isinstance(inner, dict) else None
    if not isinstance(kind, str) or not isinstance(url, str):
        raise ConfigError(
            f"{backend} with an empty prompt embeds one media part: multi_modal_content "
            "must be a dict like {'type': 'image_url', 'image_url': {'url': ...}}, "
            f"got {content!r:.80}"
        )
    return url, kind.split("_", 1)[0]


class _Infinity(_PoolingResponse):
    """Infinity's ``/embeddings``: text as ``input``; with an empty prompt, the media
    part's URL as ``input`` and its kind (``image``, ``audio``) as ``modality``."""

    __slots__ = ()

    name: ClassVar[str]

    def prompt_for(self, request: RequestFuncInput, /) -> Any:
        """The text to embed; empty means the media part."""
        return request.prompt

    def build_payload(self, request: RequestFuncInput, /) -> RequestSpec:
        validate_url(request.api_url, "Infinity Embeddings API", ("embeddings", "profile"))
        payload: dict[str, Any] = {"model": _model(request)}
        prompt = self.prompt_for(request)
        if prompt:
            payload["input"] = prompt
        else:
            url, modality = _infinity_media(request.multi_modal_content, self.name)
            payload["input"] = url
            payload["modality"] = modality
        return _spec(request, payload)


@final
class InfinityEmbeddings(_Infinity):
    """Infinity's ``/embeddings``. A non-empty prompt is embedded as text (media ignored);
    an empty one sends the single media part instead. No ``truncate_prompt_tokens``."""

    __slots__ = ()

    name: ClassVar[str] = "infinity-embeddings"


@final
class InfinityEmbeddingsCLIP(_Infinity):
    """Infinity with a CLIP model: a request with media embeds the media part alone."""

    __slots__ = ()

    name: ClassVar[str] = "infinity-embeddings-clip"

    def prompt_for(self, request: RequestFuncInput, /) -> Any:
        return "" if request.multi_modal_content else request.prompt
