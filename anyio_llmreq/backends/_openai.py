"""OpenAI-compatible completions and chat completions (vLLM, SGLang, lmdeploy, ...)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, final

from .._exceptions import ConfigError, StreamProtocolError
from .._json import token_loads
from .._models import (
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
from ._base import (
    Framing,
    WithTemperature,
    base_headers,
    error_message,
    event_object,
    usage_completion,
    validate_url,
)

__all__ = ["OpenAIChat", "OpenAICompletions", "chat_content"]


def _object_or_deltas(
    token_text: Callable[[str], str | None], event: SSEEvent
) -> dict[str, Any] | tuple[Delta, ...]:
    """The event's JSON object, or its deltas when they need no further reading: a plain
    token (*token_text*'s fast path), an end marker, a keep-alive or an error object."""
    if event.event == "message":
        text = token_text(event.data)
        if text is not None:
            return (TextDelta(text),)
    obj = event_object(event)
    if type(obj) is tuple:
        return obj
    assert isinstance(obj, dict)
    if obj.get("error"):
        return (error_message(obj["error"]),)
    return obj


def _usage(usage: Any) -> UsageDelta:
    if not isinstance(usage, dict):
        raise StreamProtocolError(f"usage is not an object: {usage!r:.120}")
    delta = UsageDelta(usage.get("prompt_tokens"), usage.get("completion_tokens"))
    details = usage.get("completion_tokens_details")
    if type(details) is dict:
        reasoning = details.get("reasoning_tokens")
        if type(reasoning) is int:
            delta.reasoning_tokens = reasoning
    return delta


def _bad_shape(obj: dict[str, Any]) -> StreamProtocolError:
    return StreamProtocolError(f"unexpected event shape: {obj!r:.120}")


@final
class OpenAICompletions(WithTemperature):
    """``/v1/completions``, streaming. The payload is byte-for-byte vLLM's.

    Any event whose first choice has non-empty ``text`` is a token event; usage is read
    from any event that has it (with or without choices), as llama.cpp sends it.

    *temperature* is the legacy module's ``0.0``; ``None`` leaves it out, so the server
    decides (``vllm bench serve`` since vLLM #32723; ``anyio-llmreq bench`` without
    ``--temperature``).
    """

    __slots__ = ()

    name: ClassVar[str] = "openai"
    framing: ClassVar[Framing] = "sse"

    def build_payload(self, request: RequestFuncInput, /) -> RequestSpec:
        validate_url(request.api_url, "OpenAI Completions API", ("completions", "profile"))
        payload: dict[str, Any] = {
            "model": request.model_name if request.model_name else request.model,
            "prompt": request.prompt,
            "temperature": self.temperature,
            "repetition_penalty": 1.0,
            "max_tokens": request.output_len,
            "logprobs": request.logprobs,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.temperature is None:
            del payload["temperature"]
        if request.ignore_eos:
            payload["ignore_eos"] = request.ignore_eos
        if request.extra_body:
            payload.update(request.extra_body)
        return RequestSpec(url=request.api_url, json=payload, headers=base_headers(request))

    def token_text(self, data: str, /) -> str | None:
        """The text of a plain token event (text, no usage, no error), else ``None``."""
        if data[:1] != "{" or ('"text"' not in data and "\\u" not in data):
            return None  # not an object, or no "text" key (nor an escape to spell it)
        try:
            obj = token_loads(data)
            text = obj["choices"][0]["text"]
        except (ValueError, LookupError, TypeError):
            return None
        if text and type(text) is str and not obj.get("usage") and not obj.get("error"):
            return text
        return None

    def parse_event(self, event: SSEEvent, /) -> Sequence[Delta]:
        obj = _object_or_deltas(self.token_text, event)
        if isinstance(obj, tuple):
            return obj
        choices = obj.get("choices")
        usage = obj.get("usage")
        if choices:
            try:
                text = choices[0].get("text")
            except (AttributeError, TypeError, KeyError):
                raise _bad_shape(obj) from None
            if text:
                return (TextDelta(text),) if not usage else (TextDelta(text), _usage(usage))
        return (_usage(usage),) if usage else ()

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


def chat_messages(
    prompt: Any, multi_modal_content: dict[str, Any] | list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """The request's ``messages``: a prompt that already is a message list (dicts with a
    ``role``, as ``--enable-multimodal-chat`` datasets and conversations make) is sent as
    it is, its media inside it; any other prompt is one user message (``chat_content``)."""
    if (
        isinstance(prompt, list)
        and prompt
        and all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in prompt)
    ):
        return list(prompt)
    return [{"role": "user", "content": chat_content(prompt, multi_modal_content)}]


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
class OpenAIChat(WithTemperature):
    """``/v1/chat/completions``, streaming. The payload is byte-for-byte vLLM's.

    TTFT is stamped on the first event carrying content, reasoning or a tool call, not on
    the role-only first chunk; usage is read from any event that carries it.
    *temperature* as ``OpenAICompletions``'.
    """

    __slots__ = ()

    name: ClassVar[str] = "openai-chat"
    framing: ClassVar[Framing] = "sse"

    def build_payload(self, request: RequestFuncInput, /) -> RequestSpec:
        validate_url(
            request.api_url, "OpenAI Chat Completions API", ("chat/completions", "profile")
        )
        payload: dict[str, Any] = {
            "model": request.model_name if request.model_name else request.model,
            "messages": chat_messages(request.prompt, request.multi_modal_content),
            "temperature": self.temperature,
            "max_completion_tokens": request.output_len,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.temperature is None:
            del payload["temperature"]
        if request.ignore_eos:
            payload["ignore_eos"] = request.ignore_eos
        if request.extra_body:
            payload.update(request.extra_body)
        headers = base_headers(request, "application/json")
        return RequestSpec(url=request.api_url, json=payload, headers=headers)

    def token_text(self, data: str, /) -> str | None:
        """The content of a plain content event (no reasoning, tool call, usage or
        error), else ``None``."""
        if data[:1] != "{" or ('"content"' not in data and "\\u" not in data):
            return None  # not an object, or no "content" key (nor an escape to spell it)
        try:
            obj = token_loads(data)
            delta = obj["choices"][0]["delta"]
            content = delta.get("content")
        except (ValueError, LookupError, TypeError, AttributeError):
            return None
        if (
            content
            and type(content) is str
            and not delta.get("reasoning_content")
            and not delta.get("reasoning")
            and not delta.get("tool_calls")
            and not obj.get("usage")
            and not obj.get("error")
        ):
            return content
        return None

    def parse_event(self, event: SSEEvent, /) -> Sequence[Delta]:
        obj = _object_or_deltas(self.token_text, event)
        if isinstance(obj, tuple):
            return obj
        deltas: list[Delta] = []
        choices = obj.get("choices")
        if choices:
            try:
                chat_deltas(choices[0], deltas)
            except (AttributeError, TypeError, KeyError):
                raise _bad_shape(obj) from None
        usage = obj.get("usage")
        if usage:
            deltas.append(_usage(usage))
        return deltas

    def finalize(self, acc: Accumulator, /) -> Completion:
        return usage_completion(acc, "".join(acc.text_parts), "".join(acc.reasoning_parts))
