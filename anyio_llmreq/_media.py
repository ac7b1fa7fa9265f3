"""The media a request carries, made ready for sans-IO backends: file reads and encoding.

vLLM's request functions take raw media in ``multi_modal_content`` (``"audio"``: a
``(samples, sampling_rate)`` pair; ``"audio_path"``: a file). Reading a file or encoding
WAV blocks, so backends never do it: callers check ``needs_media`` (cheap, for every
request) and run ``prepare_media`` in a worker thread when it says so::

    if needs_media(request):
        request = await anyio.to_thread.run_sync(prepare_media, request)

The prepared request carries the upload as ``OpenAIAudio`` sends it, in place of the raw
keys (``"audio_upload"`` and ``"audio_duration"``: see ``OpenAIAudio``). ``"audio"`` wins
when both raw keys are there, as it did in the backend.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import os
from typing import Any

from ._exceptions import ConfigError
from ._models import RequestFuncInput
from .backends._audio import AUDIO_DURATION, AUDIO_UPLOAD, RAW_AUDIO_KEYS
from .backends._audio import SHAPE as _SHAPE

__all__ = ["needs_media", "prepare_media"]

_EXTRA = "install the audio extra: pip install 'anyio-llmreq[audio]'"


def needs_media(request: RequestFuncInput) -> bool:
    """Whether *request* carries raw media that ``prepare_media`` must read or encode.

    Cheap enough for every request; False for anything that is not a request, which is
    left to whoever checks requests.
    """
    mm = getattr(request, "multi_modal_content", None)
    return type(mm) is dict and ("audio" in mm or "audio_path" in mm)


def prepare_media(request: RequestFuncInput) -> RequestFuncInput:
    """*request* with its raw audio read or encoded, ready for the ``openai-audio``
    backend; *request* itself (the same object) when it has nothing to prepare.

    ``"audio"`` becomes a 16-bit PCM WAV named ``audio.wav`` (``audio/wav``); an
    ``"audio_path"`` file is sent as it is, under its own name. Blocking: call it in a
    worker thread from async code.

    Raises:
        ConfigError: the audio is malformed or unreadable, or soundfile/numpy (the
            ``audio`` extra) is missing.
    """
    if not needs_media(request):
        return request
    mm = request.multi_modal_content
    assert isinstance(mm, dict)
    upload: tuple[str, bytes, str | None]
    if "audio" in mm:
        content, duration = _wav(mm["audio"])
        upload = ("audio.wav", content, "audio/wav")
    else:
        path = mm["audio_path"]
        content, duration = _file(path)
        upload = (_basename(path), content, None)
    prepared = {k: v for k, v in mm.items() if k not in RAW_AUDIO_KEYS}
    prepared[AUDIO_UPLOAD] = upload
    prepared[AUDIO_DURATION] = duration
    return dataclasses.replace(request, multi_modal_content=prepared)


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
    if not isinstance(path, (str, bytes, os.PathLike)):  # open() would take an int fd
        kind = type(path).__name__
        raise ConfigError(
            f"could not read audio_path {path!r}: expected str, bytes or os.PathLike, not {kind}"
        )
    soundfile = _soundfile()
    try:
        with open(path, "rb") as f:
            content = f.read()
    except (OSError, TypeError) as exc:
        raise ConfigError(f"could not read audio_path {path!r}: {exc}") from None
    try:
        duration = float(soundfile.info(io.BytesIO(content)).duration)
    except Exception:  # a format libsndfile can't read: the server may still read it
        duration = 0.0
    return content, duration


def _basename(path: str | bytes | os.PathLike[Any]) -> str:
    # A bytes name is decoded, as the form's file name must be text.
    return os.path.basename(os.fsdecode(path))
