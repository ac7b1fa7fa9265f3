"""Hugging Face Text Generation Inference, ``/generate_stream``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, final

from .._exceptions import StreamProtocolError
from .._models import (
    END,
    Accumulator,
    Completion,
    Delta,
    FinalTextDelta,
    RequestFuncInput,
    RequestSpec,
    ResultDelta,
    SSEEvent,
    TextDelta,
    TokenDelta,
    UsageDelta,
)
from ._base import Framing, Stateless, base_headers, decode_json, error_message, validate_url

__all__ = ["TGI"]

_TOKEN = TokenDelta()
RESULT = ResultDelta()


def _details(obj: dict[str, Any], deltas: list[Delta]) -> None:
    text = obj.get("generated_text")
    if text is not None:
        deltas.append(FinalTextDelta(str(text)))
    details = obj.get("details")
    if isinstance(details, dict):
        tokens = details.get("generated_tokens")
        if isinstance(tokens, int):
            deltas.append(UsageDelta(completion_tokens=tokens))


@final
class TGI(Stateless):
    """TGI's ``/generate_stream``: one event per token. The payload is vLLM's.

    A token with ``special: true`` (the EOS TGI sends last) is counted but is not
    output, so it never stamps TTFT. The text is the last event's ``generated_text``;
    the token count is ``details.generated_tokens``, else the number of token events.
    No ``Authorization`` header is sent.
    """

    __slots__ = ()

    name: ClassVar[str] = "tgi"
    framing: ClassVar[Framing] = "sse"

    def build_payload(self, request: RequestFuncInput, /) -> RequestSpec:
        validate_url(request.api_url, "TGI", ("generate_stream",))
        payload: dict[str, Any] = {
            "inputs": request.prompt,
            "parameters": {
                "max_new_tokens": request.output_len,
                "do_sample": True,
                "temperature": 0.01,
                "top_p": 0.99,
                "truncate": request.prompt_len,
                "ignore_eos_token": bool(request.ignore_eos),
            },
        }
        return RequestSpec(
            url=request.api_url, json=payload, headers=base_headers(request), auth=False
        )

    def parse_event(self, event: SSEEvent, /) -> Sequence[Delta]:
        obj = decode_json(event)
        if obj is None:
            return ()
        if obj == "[DONE]":
            return (END,)
        if isinstance(obj, list) and len(obj) == 1:
            obj = obj[0]  # ``/generate`` answers a list of one
        if not isinstance(obj, dict):
            raise StreamProtocolError(f"TGI event is not a JSON object: {obj!r:.120}")
        if obj.get("error"):
            return (error_message({"message": obj["error"], "type": obj.get("error_type")}),)
        deltas: list[Delta] = []
        token = obj.get("token")
        if token is None:
            # A whole ``{"generated_text": ...}`` body from a server that didn't stream.
            if "generated_text" not in obj:
                raise StreamProtocolError(
                    f"TGI event has neither 'token' nor 'generated_text': {obj!r:.120}"
                )
            text = obj["generated_text"]
            deltas.append(TextDelta(str(text)) if text else RESULT)
            _details(obj, deltas)
            return deltas
        if not isinstance(token, dict):
            raise StreamProtocolError(f"TGI token is not an object: {token!r:.120}")
        deltas.append(_TOKEN)
        text = token.get("text")
        if text and not token.get("special"):
            deltas.append(TextDelta(text))
        _details(obj, deltas)
        return deltas

    def finalize(self, acc: Accumulator, /) -> Completion:
        text = acc.final_text if acc.final_text is not None else "".join(acc.text_parts)
        if acc.completion_tokens is not None:
            return Completion(text, acc.completion_tokens, "usage")
        if acc.token_events:
            return Completion(text, acc.token_events, "events")
        return Completion(text)
