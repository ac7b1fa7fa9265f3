"""NVIDIA Triton with the TensorRT-LLM ensemble, ``/v2/models/<model>/generate_stream``."""

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
    SSEEvent,
    TextDelta,
)
from ._base import Framing, Stateless, base_headers, error_message, event_object, validate_url

__all__ = ["TensorRTLLM"]


@final
class TensorRTLLM(Stateless):
    """Triton's ``generate_stream`` endpoint. The payload is vLLM's.

    ``text_output`` of every event is concatenated. Triton reports no token counts, so
    ``output_tokens`` is left for the consumer to count. No ``Authorization`` header
    is sent.
    """

    __slots__ = ()

    name: ClassVar[str] = "tensorrt-llm"
    framing: ClassVar[Framing] = "sse"

    def build_payload(self, request: RequestFuncInput, /) -> RequestSpec:
        validate_url(request.api_url, "Triton TensorRT-LLM", ("generate_stream",))
        payload: dict[str, Any] = {
            "accumulate_tokens": True,
            "text_input": request.prompt,
            "temperature": 0.0,
            "top_p": 1.0,
            "max_tokens": request.output_len,
            "stream": True,
        }
        if request.ignore_eos:
            payload["min_length"] = request.output_len
        return RequestSpec(
            url=request.api_url, json=payload, headers=base_headers(request), auth=False
        )

    def parse_event(self, event: SSEEvent, /) -> Sequence[Delta]:
        obj = event_object(event, "Triton event")
        if type(obj) is tuple:
            return obj
        assert isinstance(obj, dict)
        if obj.get("error"):
            return (error_message(obj["error"]),)
        if "text_output" not in obj:
            raise StreamProtocolError(f"Triton event has no 'text_output': {obj!r:.120}")
        text = obj["text_output"]
        if not isinstance(text, str):
            raise StreamProtocolError(f"Triton 'text_output' is not a string: {text!r:.120}")
        return (TextDelta(text),) if text else ()

    def finalize(self, acc: Accumulator, /) -> Completion:
        return Completion("".join(acc.text_parts))
