"""Pooling endpoints: OpenAI embeddings, vLLM rerank and vLLM pooling (non-streaming)."""

from __future__ import annotations

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

__all__ = ["OpenAIEmbeddings", "VLLMPooling", "VLLMRerank"]

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
    """How the three pooling backends read their (non-streaming) JSON answer."""

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
