"""OpenAI-compatible completions and chat completions (vLLM, SGLang, lmdeploy, ...)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, final

import attrs

from .._exceptions import ConfigError, StreamProtocolError
from .._models import (
    END,
    Accumulator,
    Completion,
    Delta,
    ReasoningDelta,
    RequestFuncInput,
    RequestSpec,
    SSEEvent,
    TextDelta,
    ToolCallDelta,
    UsageDelta,
)
from ._base import Framing, base_headers, decode_json, error_message, usage_completion, validate_url

__all__ = ["OpenAIChat", "OpenAICompletions", "chat_content"]


def _usage(obj: dict[str, Any]) -> UsageDelta | None:
    usage = obj.get("usage")
    if not usage:
        return None
    if not isinstance(usage, dict):
        raise StreamProtocolError(f"usage is not an object: {usage!r}")
    return UsageDelta(usage.get("prompt_tokens"), usage.get("completion_tokens"))


def _first_choice(obj: Any) -> dict[str, Any] | None:
    if not isinstance(obj, dict):
        raise StreamProtocolError(f"stream event is not a JSON object: {obj!r:.120}")
    choices = obj.get("choices")
    if choices:
        choice = choices[0]
        if isinstance(choice, dict):
            return choice
        raise StreamProtocolError(f"choices[0] is not an object: {choice!r:.120}")
    return None


@final
@attrs.frozen
class OpenAICompletions:
    """``/v1/completions``, streaming. The payload is byte-for-byte vLLM's.

    Any event whose first choice has non-empty ``text`` is a token event; usage is read
    from any event that has it (with or without choices), as llama.cpp sends it.
    """

    name: ClassVar[str] = "openai"
    framing: ClassVar[Framing] = "sse"

    def build_payload(self, request: RequestFuncInput, /) -> RequestSpec:
        validate_url(request.api_url, "OpenAI Completions API", ("completions", "profile"))
        payload: dict[str, Any] = {
            "model": request.model_name if request.model_name else request.model,
            "prompt": request.prompt,
            "temperature": 0.0,
            "repetition_penalty": 1.0,
            "max_tokens": request.output_len,
            "logprobs": request.logprobs,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.ignore_eos:
            payload["ignore_eos"] = request.ignore_eos
        if request.extra_body:
            payload.update(request.extra_body)
        return RequestSpec(url=request.api_url, json=payload, headers=base_headers(request))

    def parse_event(self, event: SSEEvent, /) -> Sequence[Delta]:
        obj = decode_json(event)
        if obj is None:
            return ()
        if obj == "[DONE]":
            return (END,)
        choice = _first_choice(obj)
        if "error" in obj and obj["error"]:
            return (error_message(obj["error"]),)
        deltas: list[Delta] = []
        if choice is not None:
            text = choice.get("text")
            if text:
                deltas.append(TextDelta(text))
        usage = _usage(obj)
        if usage is not None:
            deltas.append(usage)
        return deltas

    def finalize(self, acc: Accumulator, /) -> Completion:
        return usage_completion(acc, "".join(acc.text_parts))


def chat_content(
    prompt: Any, multi_modal_content: dict[str, Any] | list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """The user message's content parts: the text part first, then any media parts."""
    content: list[dict[str, Any]] = [{"type": "text", "text": prompt}]
    if multi_modal_content:
        if isinstance(multi_modal_content, list):
            content.extend(multi_modal_content)
        elif isinstance(multi_modal_content, dict):
            content.append(multi_modal_content)
        else:
            raise ConfigError("multi_modal_content must be a dict or list[dict] for openai-chat")
    return content


def chat_deltas(choice: dict[str, Any], deltas: list[Delta]) -> None:
    """Append the output deltas of one chat choice (streamed ``delta`` or whole ``message``)."""
    delta = choice.get("delta")
    if delta is None:
        delta = choice.get("message")
        if delta is None:
            raise StreamProtocolError("chat choice has neither 'delta' nor 'message'")
    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
    if reasoning:
        deltas.append(ReasoningDelta(reasoning))
    content = delta.get("content")
    if content:
        deltas.append(TextDelta(content))
    tool_calls = delta.get("tool_calls")
    if tool_calls:
        for call in tool_calls:
            function = call.get("function") or {}
            deltas.append(
                ToolCallDelta(
                    index=call.get("index", 0),
                    id=call.get("id"),
                    name=function.get("name"),
                    arguments=function.get("arguments") or "",
                )
            )


@final
@attrs.frozen
class OpenAIChat:
    """``/v1/chat/completions``, streaming. The payload is byte-for-byte vLLM's.

    TTFT is stamped on the first event carrying content, reasoning or a tool call, not on
    the role-only first chunk; usage is read from any event that carries it.
    """

    name: ClassVar[str] = "openai-chat"
    framing: ClassVar[Framing] = "sse"

    def build_payload(self, request: RequestFuncInput, /) -> RequestSpec:
        validate_url(
            request.api_url, "OpenAI Chat Completions API", ("chat/completions", "profile")
        )
        content = chat_content(request.prompt, request.multi_modal_content)
        payload: dict[str, Any] = {
            "model": request.model_name if request.model_name else request.model,
            "messages": [{"role": "user", "content": content}],
            "temperature": 0.0,
            "max_completion_tokens": request.output_len,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.ignore_eos:
            payload["ignore_eos"] = request.ignore_eos
        if request.extra_body:
            payload.update(request.extra_body)
        headers = base_headers(request, "application/json")
        return RequestSpec(url=request.api_url, json=payload, headers=headers)

    def parse_event(self, event: SSEEvent, /) -> Sequence[Delta]:
        obj = decode_json(event)
        if obj is None:
            return ()
        if obj == "[DONE]":
            return (END,)
        choice = _first_choice(obj)
        if "error" in obj and obj["error"]:
            return (error_message(obj["error"]),)
        deltas: list[Delta] = []
        if choice is not None:
            chat_deltas(choice, deltas)
        usage = _usage(obj)
        if usage is not None:
            deltas.append(usage)
        return deltas

    def finalize(self, acc: Accumulator, /) -> Completion:
        return usage_completion(acc, "".join(acc.text_parts), "".join(acc.reasoning_parts))
