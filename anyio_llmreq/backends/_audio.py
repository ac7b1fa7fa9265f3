"""OpenAI-compatible speech to text: ``/v1/audio/transcriptions`` and ``translations``."""

from __future__ import annotations

import importlib
import io
import json
import os
from collections.abc import Sequence
from typing import Any, ClassVar, final

import attrs

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
    base_headers,
    error_message,
    event_object,
    usage_completion,
    validate_url,
)
from ._openai import chat_deltas

__all__ = ["OpenAIAudio", "form_value"]

_EXTRA = "install the audio extra: pip install 'anyio-llmreq[audio]'"
_SHAPE = (
    "multi_modal_content must be a dict containing 'audio' (samples, sampling_rate) "
    "or 'audio_path' for openai-audio"
)


def _soundfile() -> Any:
    try:
        return importlib.import_module("soundfile")
    except ImportError as exc:
        raise ConfigError(f"openai-audio needs soundfile ({exc}); {_EXTRA}") from None
    except OSError as exc:  # soundfile is there, libsndfile is not
        raise ConfigError(f"openai-audio could not load libsndfile ({exc}); {_EXTRA}") from None


def _wav(audio: Any) -> tuple[bytes, float]:
    """Encode ``(samples, sampling_rate)`` as 16-bit PCM WAV; return it and its duration."""
    try:
        samples, rate = audio
    except (TypeError, ValueError):
        raise ConfigError(f"{_SHAPE}; 'audio' is not a pair: {audio!r:.80}") from None
    if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
        raise ConfigError(f"the audio sampling rate must be a positive int, got {rate!r}")
    soundfile = _soundfile()
    try:
        numpy = importlib.import_module("numpy")
    except ImportError:
        raise ConfigError(f"openai-audio needs numpy; {_EXTRA}") from None
    array = numpy.asarray(samples)
    if array.ndim not in (1, 2) or array.shape[0] == 0:
        raise ConfigError(f"audio samples must be a non-empty 1-D or 2-D array, got {array.shape}")
    buffer = io.BytesIO()
    try:
        soundfile.write(buffer, array, rate, format="WAV", subtype="PCM_16")
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"could not encode the audio as WAV: {exc}") from None
    return buffer.getvalue(), array.shape[0] / rate


def _file(path: Any) -> tuple[bytes, float]:
    """Read an audio file; return its bytes and duration."""
    soundfile = _soundfile()
    try:
        with open(path, "rb") as f:
            content = f.read()
    except (OSError, TypeError) as exc:
        raise ConfigError(f"could not read audio_path {path!r}: {exc}") from None
    try:
        duration = float(soundfile.info(io.BytesIO(content)).duration)
    except Exception:  # a format libsndfile can't read: the server may still can
        duration = 0.0
    return content, duration


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
@attrs.frozen
class OpenAIAudio:
    """Speech to text, streamed as chat-style chunks (vLLM's form fields and order).

    The audio goes first, as ``file``; form values are sent as servers parse them
    (``true``, ``0.0``, JSON for dicts and lists, a ``None`` in ``extra_body`` drops the
    field), and the request's ``language`` is honoured (default ``"en"``). A JSON
    ``{"text": ...}`` answer, from servers that don't stream, is read as well.
    """

    name: ClassVar[str] = "openai-audio"
    framing: ClassVar[Framing] = "sse"

    def build_payload(self, request: RequestFuncInput, /) -> RequestSpec:
        validate_url(
            request.api_url, "OpenAI Audio API", ("transcriptions", "translations", "profile")
        )
        mm = request.multi_modal_content
        if isinstance(mm, dict) and "audio" in mm:
            content, duration = _wav(mm["audio"])
            upload: tuple[str, bytes, str | None] = ("audio.wav", content, "audio/wav")
        elif isinstance(mm, dict) and "audio_path" in mm:
            content, duration = _file(mm["audio_path"])
            upload = (os.path.basename(os.fspath(mm["audio_path"])), content, None)
        else:
            raise ConfigError(_SHAPE)
        fields: dict[str, Any] = {
            "model": request.model_name if request.model_name else request.model,
            "temperature": 0.0,
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
