"""OpenAI-compatible speech to text: ``/v1/audio/transcriptions`` and ``translations``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar, final

from .._exceptions import ConfigError, StreamProtocolError
from .._models import (
    Accumulator,
    Completion,
    Delta,
    FinalTextDelta,
    RequestFuncInput,
    RequestSpec,
    ResultDelta,
    SSEEvent,
    TextDelta,
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
from ._openai import chat_deltas

__all__ = ["AUDIO_DURATION", "AUDIO_UPLOAD", "RAW_AUDIO_KEYS", "OpenAIAudio", "form_value"]

#: The prepared audio, as ``anyio_llmreq._media.prepare_media`` leaves it in
#: ``multi_modal_content``: ``(filename, content, content_type)``, the multipart file as
#: sent (content type ``None`` for a file sent under its own name)...
AUDIO_UPLOAD = "audio_upload"
#: ... and its length in seconds (float), reported as ``input_audio_duration``.
AUDIO_DURATION = "audio_duration"
#: vLLM's raw audio keys, which ``prepare_media`` reads or encodes and replaces.
RAW_AUDIO_KEYS = ("audio", "audio_path")

SHAPE = (
    "multi_modal_content must be a dict containing 'audio' (samples, sampling_rate) "
    "or 'audio_path' for openai-audio"
)
_UNPREPARED = (
    "openai-audio got raw audio ('audio' or 'audio_path') in multi_modal_content: call "
    "anyio_llmreq._media.prepare_media(request) first, in a worker thread (Client.send "
    "does); backends read no files and encode no audio"
)


def _prepared_audio(mm: Any) -> tuple[tuple[str, bytes, str | None], float]:
    """The upload and duration ``prepare_media`` put in *mm*; ``ConfigError`` otherwise."""
    if not isinstance(mm, dict):
        raise ConfigError(SHAPE)
    if AUDIO_UPLOAD not in mm:
        raise ConfigError(_UNPREPARED if any(k in mm for k in RAW_AUDIO_KEYS) else SHAPE)
    upload, duration = mm[AUDIO_UPLOAD], mm.get(AUDIO_DURATION, 0.0)
    if not (
        type(upload) is tuple
        and len(upload) == 3
        and isinstance(upload[0], str)
        and isinstance(upload[1], bytes)
        and (upload[2] is None or isinstance(upload[2], str))
    ):
        raise ConfigError(
            f"multi_modal_content[{AUDIO_UPLOAD!r}] must be (filename, bytes, content type "
            f"or None), as prepare_media makes it; got {upload!r:.80}"
        )
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or duration < 0:
        raise ConfigError(
            f"multi_modal_content[{AUDIO_DURATION!r}] must be seconds >= 0, got {duration!r}"
        )
    return upload, float(duration)


def form_value(value: Any) -> str:
    """One multipart form field as servers parse it: JSON spellings, strings as they are."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode()
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return str(value)


def _usage(usage: Any) -> UsageDelta | None:
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens"))
    if prompt is None and completion is None:
        return None
    return UsageDelta(prompt, completion)


@final
class OpenAIAudio(WithTemperature):
    """Speech to text, streamed as chat-style chunks (vLLM's form fields and order).

    Sans-IO: it takes the audio prepared, never raw. ``multi_modal_content`` holds
    ``"audio_upload"``, the file as sent, ``(filename, bytes, content_type or None)``,
    and ``"audio_duration"``, its seconds, as ``anyio_llmreq._media.prepare_media``
    makes them from vLLM's raw ``"audio"`` ``(samples, sampling_rate)`` pair (a 16-bit
    PCM ``audio.wav``) or ``"audio_path"`` file (sent under its own name). ``Client``
    prepares requests that need it; raw audio given here is a ``ConfigError``.

    The audio goes first, as ``file``; form values are sent as servers parse them
    (``true``, ``0.0``, JSON for dicts and lists, a ``None`` in ``extra_body`` drops the
    field), and the request's ``language`` is honoured (default ``"en"``). A JSON
    ``{"text": ...}`` answer, from servers that don't stream, is read as well.
    *temperature* as ``OpenAICompletions``' (``None``: not sent).
    """

    __slots__ = ()

    name: ClassVar[str] = "openai-audio"
    framing: ClassVar[Framing] = "sse"

    def build_payload(self, request: RequestFuncInput, /) -> RequestSpec:
        validate_url(
            request.api_url, "OpenAI Audio API", ("transcriptions", "translations", "profile")
        )
        upload, duration = _prepared_audio(request.multi_modal_content)
        fields: dict[str, Any] = {
            "model": request.model_name if request.model_name else request.model,
            "temperature": self.temperature,
            "max_completion_tokens": request.output_len,
            "stream": True,
            "language": request.language if request.language is not None else "en",
            "stream_include_usage": True,
            "stream_continuous_usage_stats": True,
        }
        if request.ignore_eos:
            fields["ignore_eos"] = True
        if request.extra_body:
            fields.update(request.extra_body)
        data = {k: form_value(v) for k, v in fields.items() if v is not None}
        return RequestSpec(
            url=request.api_url,
            headers=base_headers(request),
            files={"file": upload},
            data=data,
            input_audio_duration=duration,
        )

    def parse_event(self, event: SSEEvent, /) -> Sequence[Delta]:
        obj = event_object(event, "audio event")
        if type(obj) is tuple:
            return obj
        assert isinstance(obj, dict)
        if obj.get("error"):
            return (error_message(obj["error"]),)
        deltas: list[Delta] = []
        kind = obj.get("type")
        choices = obj.get("choices")
        if choices:
            choice = choices[0]
            if not isinstance(choice, dict):
                raise StreamProtocolError(f"choices[0] is not an object: {choice!r:.120}")
            chat_deltas(choice, deltas)
        elif kind == "transcript.text.delta":  # OpenAI's own streaming events
            if obj.get("delta"):
                deltas.append(TextDelta(str(obj["delta"])))
        elif kind == "transcript.text.done":
            deltas.append(FinalTextDelta(str(obj.get("text") or "")))
        elif "text" in obj and "choices" not in obj:  # a whole, non-streamed answer
            text = obj["text"]
            if text is not None and not isinstance(text, str):
                raise StreamProtocolError(f"audio 'text' is not a string: {text!r:.120}")
            deltas.append(TextDelta(text) if text else ResultDelta())
        usage = _usage(obj.get("usage"))
        if usage is not None:
            deltas.append(usage)
        return deltas

    def finalize(self, acc: Accumulator, /) -> Completion:
        text = "".join(acc.text_parts)
        if acc.final_text is not None and not text:
            text = acc.final_text
        return usage_completion(acc, text, "".join(acc.reasoning_parts))
