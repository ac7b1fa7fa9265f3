"""OpenAI audio (transcriptions/translations): the upload, sans-IO parsing, end to end."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import anyio
import numpy as np
import pytest
import soundfile

from anyio_llmreq import (
    Accumulator,
    ConfigError,
    FinalTextDelta,
    OpenAIAudio,
    RequestFuncInput,
    RequestSpec,
    ResultDelta,
    SSEEvent,
    StreamProtocolError,
    TextDelta,
    Timeouts,
    UsageDelta,
    async_request_openai_audio,
)
from anyio_llmreq._media import needs_media, prepare_media
from anyio_llmreq._models import END, ErrorDelta
from anyio_llmreq.backends._audio import form_value
from anyio_llmreq.testing import MockBehaviour

from .mock_run import STALL_READ, check_stream, check_whole_body, run, words

pytestmark = pytest.mark.anyio

URL = "http://h/v1/audio/transcriptions"
RATE = 16000
SAMPLES = np.linspace(-0.5, 0.5, RATE // 4, dtype=np.float32)  # 0.25 s
AUDIO = {"audio": (SAMPLES, RATE)}


def make_input(url: str = URL, **kwargs: object) -> RequestFuncInput:
    kwargs.setdefault("multi_modal_content", AUDIO)
    return RequestFuncInput("Hello", url, 3, 16, "org/model", **kwargs)  # type: ignore[arg-type]


def build(request: RequestFuncInput) -> RequestSpec:
    """What the client does: the media prepared (off the loop), then the sans-IO build."""
    return OpenAIAudio().build_payload(prepare_media(request))


# --- the upload ---------------------------------------------------------------------------


def test_form_fields_in_reference_order_with_parseable_values() -> None:
    spec = build(make_input())
    assert spec.json is None and spec.auth is True
    assert spec.data == {
        "model": "org/model",
        "temperature": "0.0",
        "max_completion_tokens": "16",
        "stream": "true",
        "language": "en",
        "stream_include_usage": "true",
        "stream_continuous_usage_stats": "true",
    }
    assert list(spec.data) == [
        "model",
        "temperature",
        "max_completion_tokens",
        "stream",
        "language",
        "stream_include_usage",
        "stream_continuous_usage_stats",
    ]
    assert spec.input_audio_duration == pytest.approx(0.25)


def test_the_audio_is_16_bit_pcm_wav() -> None:
    spec = build(make_input())
    assert spec.files is not None
    filename, content, content_type = spec.files["file"]
    assert (filename, content_type) == ("audio.wav", "audio/wav")
    info = soundfile.info(io.BytesIO(content))
    assert (info.format, info.subtype, info.samplerate, info.frames) == (
        "WAV",
        "PCM_16",
        RATE,
        len(SAMPLES),
    )


def test_language_ignore_eos_model_name_and_extra_body_last() -> None:
    spec = build(
        make_input(
            language="de",
            model_name="whisper",
            ignore_eos=True,
            request_id="r",
            extra_body={
                "temperature": 0.2,
                "timestamps": ["word"],
                "opts": {"a": 1},
                "stream_continuous_usage_stats": None,
                "flag": False,
            },
        )
    )
    assert spec.data is not None
    assert spec.data["model"] == "whisper"
    assert spec.data["language"] == "de"
    assert spec.data["temperature"] == "0.2"
    assert "stream_continuous_usage_stats" not in spec.data  # None drops a field
    assert list(spec.data)[-4:] == ["ignore_eos", "timestamps", "opts", "flag"]
    assert spec.data["ignore_eos"] == "true" and spec.data["flag"] == "false"
    assert json.loads(spec.data["timestamps"]) == ["word"]
    assert json.loads(spec.data["opts"]) == {"a": 1}
    assert spec.headers == {"x-request-id": "r"}


def test_form_value() -> None:
    assert [form_value(v) for v in [True, False, 0, 1.5, "x", None, {"k": "é"}, b"b"]] == [
        "true", "false", "0", "1.5", "x", "null", '{"k":"é"}', "b"
    ]  # fmt: skip


def test_audio_path_uses_the_file_and_its_name(tmp_path: Path) -> None:
    path = tmp_path / "clip.flac"
    soundfile.write(path, SAMPLES, RATE, format="FLAC")
    spec = build(make_input(multi_modal_content={"audio_path": str(path)}))
    assert spec.files is not None
    assert spec.files["file"] == ("clip.flac", path.read_bytes(), None)
    assert spec.input_audio_duration == pytest.approx(0.25)


@pytest.mark.parametrize("url", ["http://h/v1/audio/translations", "http://h/start_profile"])
def test_accepted_urls(url: str) -> None:
    assert build(make_input(url)).url == url


@pytest.mark.parametrize(
    ("request_kwargs", "match"),
    [
        ({"api_url": "http://h/v1/chat/completions"}, "transcriptions"),
        ({"multi_modal_content": None}, "'audio'"),
        ({"multi_modal_content": [AUDIO]}, "'audio'"),
        ({"multi_modal_content": {"image": 1}}, "'audio'"),
        ({"multi_modal_content": {"audio": SAMPLES}}, "pair"),
        ({"multi_modal_content": {"audio": (SAMPLES, 16000.0)}}, "sampling rate"),
        ({"multi_modal_content": {"audio": ([], RATE)}}, "non-empty"),
        ({"multi_modal_content": {"audio_path": "/nonexistent/x.wav"}}, "/nonexistent/x.wav"),
    ],
)
def test_bad_requests_are_config_errors(request_kwargs: dict[str, object], match: str) -> None:
    kwargs = dict(request_kwargs)
    url = str(kwargs.pop("api_url", URL))
    request = make_input(url, **kwargs)
    with pytest.raises(ConfigError, match=match):
        build(request)


def test_missing_soundfile_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "soundfile", None)
    with pytest.raises(ConfigError, match=r"anyio-llmreq\[audio\]"):
        prepare_media(make_input())


# --- preparing the media (off the event loop) ---------------------------------------------


@pytest.mark.parametrize(
    "content",
    [None, [AUDIO], {"image": 1}, {"audio_upload": ("a.wav", b"RIFF", "audio/wav")}, "x"],
)
def test_nothing_to_prepare_is_the_same_request(content: object) -> None:
    request = make_input(multi_modal_content=content)
    assert not needs_media(request)
    assert prepare_media(request) is request


def test_prepared_content_replaces_the_raw_keys_only() -> None:
    request = make_input(multi_modal_content={**AUDIO, "audio_path": "/unread", "other": 1})
    assert needs_media(request)
    prepared = prepare_media(request)
    assert prepared is not request and not needs_media(prepared)
    assert request.multi_modal_content is not None and "audio" in request.multi_modal_content
    mm = prepared.multi_modal_content
    assert isinstance(mm, dict) and sorted(mm) == ["audio_duration", "audio_upload", "other"]
    filename, content, content_type = mm["audio_upload"]
    assert (filename, content_type) == ("audio.wav", "audio/wav")  # 'audio' wins
    assert content.startswith(b"RIFF") and mm["audio_duration"] == pytest.approx(0.25)
    assert prepared.prompt == request.prompt and prepared.api_url == request.api_url
    assert OpenAIAudio().build_payload(prepared).files == {"file": mm["audio_upload"]}


def test_audio_path_as_bytes_or_pathlike(tmp_path: Path) -> None:
    path = tmp_path / "clip.wav"
    soundfile.write(path, SAMPLES, RATE)
    for given in (path, bytes(path)):
        spec = build(make_input(multi_modal_content={"audio_path": given}))
        assert spec.files is not None and spec.files["file"][0] == "clip.wav"


def test_audio_path_that_is_not_a_path() -> None:
    # open() would take an int as a file descriptor, and close it.
    with pytest.raises(ConfigError, match="could not read audio_path 0"):
        prepare_media(make_input(multi_modal_content={"audio_path": 0}))


@pytest.mark.parametrize("key", ["audio", "audio_path"])
def test_raw_audio_is_refused_by_the_sans_io_backend(key: str) -> None:
    raw = {"audio": (SAMPLES, RATE), "audio_path": "/clip.wav"}[key]
    with pytest.raises(ConfigError, match=r"call .*prepare_media\(request\) first"):
        OpenAIAudio().build_payload(make_input(multi_modal_content={key: raw}))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ({"audio_upload": b"RIFF"}, "filename, bytes"),
        ({"audio_upload": ("a.wav", "text", None)}, "filename, bytes"),
        ({"audio_upload": ("a.wav", b"", None), "audio_duration": -1.0}, "seconds"),
        ({"audio_upload": ("a.wav", b"", None), "audio_duration": True}, "seconds"),
    ],
)
def test_malformed_prepared_audio(content: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        OpenAIAudio().build_payload(make_input(multi_modal_content=content))


def test_prepared_audio_without_a_duration_reports_none() -> None:
    content = {"audio_upload": ("a.mp3", b"ID3", None)}
    spec = OpenAIAudio().build_payload(make_input(multi_modal_content=content))
    assert spec.files == {"file": ("a.mp3", b"ID3", None)}
    assert spec.input_audio_duration == 0.0


# --- parsing ------------------------------------------------------------------------------


def parse(obj: object) -> list[object]:
    return list(OpenAIAudio().parse_event(SSEEvent(json.dumps(obj))))


def test_chat_style_chunks() -> None:
    usage = {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5}
    assert parse({"choices": [{"delta": {"content": " hi"}}], "usage": usage}) == [
        TextDelta(" hi"),
        UsageDelta(4, 1),
    ]
    assert parse({"choices": [{"delta": {"content": ""}, "finish_reason": "stop"}]}) == []
    assert parse({"choices": [], "usage": usage}) == [UsageDelta(4, 1)]
    assert list(OpenAIAudio().parse_event(SSEEvent("[DONE]"))) == [END]
    assert OpenAIAudio().parse_event(SSEEvent("")) == ()


def test_whole_json_answer() -> None:
    assert parse({"text": " a b"}) == [TextDelta(" a b")]
    assert parse({"text": ""}) == [ResultDelta()]
    usage = {"type": "tokens", "input_tokens": 9, "output_tokens": 2}
    assert parse({"text": "x", "usage": usage}) == [TextDelta("x"), UsageDelta(9, 2)]
    assert parse({"text": "x", "usage": {"type": "duration", "seconds": 3}}) == [TextDelta("x")]


def test_openai_transcript_events() -> None:
    backend = OpenAIAudio()
    acc = Accumulator()
    for obj in [
        {"type": "transcript.text.delta", "delta": " a"},
        {"type": "transcript.text.delta", "delta": " b"},
        {"type": "transcript.text.done", "text": " a b", "usage": {"output_tokens": 2}},
    ]:
        for delta in backend.parse_event(SSEEvent(json.dumps(obj))):
            acc.add(delta)
    assert acc.final_text == " a b"
    done = backend.finalize(acc)
    assert (done.generated_text, done.output_tokens) == (" a b", 2)
    assert FinalTextDelta(" c") in parse({"type": "transcript.text.done", "text": " c"})


def test_errors() -> None:
    (error,) = parse({"error": {"message": "bad audio", "code": 400}})
    assert isinstance(error, ErrorDelta) and "bad audio" in error.message
    for data in ["nope", "[1]", '{"choices": ["x"]}', '{"text": 1}']:
        with pytest.raises(StreamProtocolError):
            OpenAIAudio().parse_event(SSEEvent(data))


# --- end to end ---------------------------------------------------------------------------

PATH = "/v1/audio/transcriptions"


@pytest.mark.parametrize(
    "behaviour",
    [
        pytest.param(MockBehaviour(), id="plain"),
        pytest.param(MockBehaviour(split_every=1, split_delay=0.0, unicode=True), id="byte-split"),
        pytest.param(MockBehaviour(ping_every=1), id="pings"),
    ],
)
async def test_stream(behaviour: MockBehaviour) -> None:
    out, server = await run(
        "openai-audio", PATH, behaviour, output_len=5, multi_modal_content=AUDIO
    )
    check_stream(out, 5)
    assert words(out.generated_text) == 5
    assert (out.output_tokens, out.output_tokens_source) == (5, "usage")
    assert out.input_audio_duration == pytest.approx(0.25)
    (rec,) = server.requests
    assert rec.form is not None and list(rec.form) == [
        "model",
        "temperature",
        "max_completion_tokens",
        "stream",
        "language",
        "stream_include_usage",
        "stream_continuous_usage_stats",
    ]
    assert rec.form["stream"] == "true" and rec.form["temperature"] == "0.0"
    upload = rec.files["file"]
    assert (upload.filename, upload.content_type) == ("audio.wav", "audio/wav")
    # The file goes first, as in vLLM's form.
    assert rec.body.index(b'name="file"') < rec.body.index(b'name="model"')


async def test_stream_of_prepared_audio() -> None:
    # The backend end to end on its own, whether or not the client prepares media.
    prepared = prepare_media(make_input()).multi_modal_content
    out, server = await run("openai-audio", PATH, output_len=2, multi_modal_content=prepared)
    check_stream(out, 2)
    assert out.input_audio_duration == pytest.approx(0.25)
    (rec,) = server.requests
    assert rec.files["file"].filename == "audio.wav"


async def test_server_that_does_not_stream() -> None:
    out, _ = await run(
        "openai-audio", PATH, output_len=3, multi_modal_content=AUDIO,
        extra_body={"stream": False},
    )  # fmt: skip
    check_whole_body(out)
    assert words(out.generated_text) == 3


async def test_compat_function() -> None:
    out, _ = await run(
        "openai-audio", "/v1/audio/translations", compat=True, output_len=2,
        multi_modal_content=AUDIO,
    )  # fmt: skip
    check_stream(out, 2)
    assert async_request_openai_audio.__name__ == "async_request_openai_audio"


async def test_in_band_error() -> None:
    out, _ = await run(
        "openai-audio", PATH, MockBehaviour(error_after=2), multi_modal_content=AUDIO
    )
    assert not out.success and "mock error" in out.error
    assert words(out.generated_text) == 2


async def test_reset() -> None:
    out, _ = await run(
        "openai-audio", PATH, MockBehaviour(reset_after=1), multi_modal_content=AUDIO
    )
    assert not out.success and out.error and "\n" not in out.error


async def test_stall_hits_the_read_timeout() -> None:
    with anyio.fail_after(10):
        out, _ = await run(
            "openai-audio", PATH, MockBehaviour(stall_after=1),
            timeouts=Timeouts(read=STALL_READ), multi_modal_content=AUDIO,
        )  # fmt: skip
    assert not out.success and "Timeout" in out.error


async def test_non_2xx() -> None:
    out, _ = await run("openai-audio", PATH, MockBehaviour(status=422), multi_modal_content=AUDIO)
    assert not out.success and out.error.startswith("HTTP 422")
