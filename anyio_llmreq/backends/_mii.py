"""DeepSpeed-MII's RESTful API (non-streaming completions)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, final

from .._exceptions import StreamProtocolError
from .._models import (
    Accumulator,
    Completion,
    Delta,
    RequestFuncInput,
    RequestSpec,
    ResultDelta,
    SSEEvent,
    TextDelta,
    UsageDelta,
)
from ._base import (
    Framing,
    Stateless,
    base_headers,
    error_message,
    event_object,
    usage_completion,
    validate_url,
)

__all__ = ["DeepSpeedMII"]

_UNEXPECTED = "Unexpected response format: neither 'choices' nor 'text' found"


def _text(obj: dict[str, Any]) -> Any:
    if "choices" in obj:
        choices = obj["choices"]
        if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
            raise StreamProtocolError(f"MII 'choices' holds no choice object: {choices!r:.120}")
        if "text" not in choices[0]:
            raise StreamProtocolError(f"MII choices[0] has no 'text': {choices[0]!r:.120}")
        return choices[0]["text"]
    if "text" in obj:
        text = obj["text"]
        # The legacy MII server answers ``{"text": ["..."]}``.
        if isinstance(text, list):
            if not text:
                raise StreamProtocolError("MII 'text' is an empty list")
            return text[0]
        return text
    raise StreamProtocolError(f"{_UNEXPECTED}: {obj!r:.120}")


@final
class DeepSpeedMII(Stateless):
    """A DeepSpeed-MII server. The payload is vLLM's; the answer is one JSON body.

    The OpenAI shape (``choices[0].text``) and the legacy one (``text[0]``) are read;
    any other body fails the request (vLLM counts it as a success). TTFT equals latency.
    """

    __slots__ = ()

    name: ClassVar[str] = "deepspeed-mii"
    framing: ClassVar[Framing] = "json"

    def build_payload(self, request: RequestFuncInput, /) -> RequestSpec:
        validate_url(request.api_url, "DeepSpeed-MII Completions API", ("completions", "profile"))
        payload: dict[str, Any] = {
            "model": request.model,
            "prompt": request.prompt,
            "max_tokens": request.output_len,
            "temperature": 0.01,
            "top_p": 1.0,
        }
        return RequestSpec(url=request.api_url, json=payload, headers=base_headers(request))

    def parse_event(self, event: SSEEvent, /) -> Sequence[Delta]:
        obj = event_object(event, "MII response")
        if type(obj) is tuple:
            return obj
        assert isinstance(obj, dict)
        if obj.get("error"):
            return (error_message(obj["error"]),)
        text = _text(obj)
        if text is not None and not isinstance(text, str):
            raise StreamProtocolError(f"MII text is not a string: {text!r:.120}")
        deltas: list[Delta] = [TextDelta(text) if text else ResultDelta()]
        usage = obj.get("usage")
        if isinstance(usage, dict):
            deltas.append(UsageDelta(usage.get("prompt_tokens"), usage.get("completion_tokens")))
        return deltas

    def finalize(self, acc: Accumulator, /) -> Completion:
        return usage_completion(acc, "".join(acc.text_parts))
