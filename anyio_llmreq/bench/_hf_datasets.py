"""Hugging Face datasets (``--dataset-name hf``), read as ``vllm bench serve`` reads them.

``--dataset-path`` is a hub id, or a local copy with ``--hf-name`` naming the hub dataset
whose schema it has. Each supported dataset has a handler: its default split, the prompt
it builds from a record, its output length and its filters. Records are loaded with
``datasets.load_dataset`` (streaming unless ``--no-stream``), shuffled with the seed
unless ``--disable-shuffle``, and taken in order until there are enough requests.

Media goes in ``SampleRequest.multi_modal_data`` as vLLM's request functions take it:
OpenAI ``image_url``/``video_url`` content parts (images re-encoded as base64 JPEG), or
``{"audio": (samples, sampling_rate)}`` for the ``openai-audio`` backend.
"""

from __future__ import annotations

import base64
import importlib
import io
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs

from ._config import UsageError
from ._datasets import SampleRequest, _oversample, _with_ids
from ._tokens import TokenCounter, _first_line

__all__ = ["HF_DATASET_PATHS", "sample_hf"]

_HF_EXTRA = "pip install 'anyio-llmreq[hf]'"
_MM_EXTRA = "pip install 'anyio-llmreq[multimodal]'"
_AUDIO_EXTRA = "pip install 'anyio-llmreq[audio]'"
#: Backends that can send a multimodal dataset's media (``"embeddings-"`` ones too).
_MM_BACKENDS = ("openai-chat", "openai-audio")


@attrs.frozen
class _Options:
    """What a handler needs besides the records."""

    counter: TokenCounter
    num_requests: int
    #: The hub id that picks the record parser of handlers with several datasets.
    key: str
    output_len: int | None
    chat_template: bool
    multimodal_chat: bool
    blazedit_min_distance: float
    blazedit_max_distance: float
    asr_min_audio_len_sec: float
    asr_max_audio_len_sec: float
    #: The rate an ``Audio`` feature asks for, when this module decodes the audio.
    audio_rate: int | None = None


class _BadRecord(Exception):
    """A record without a field its handler reads (turned into a ``UsageError``)."""

    def __init__(self, index: int, why: str) -> None:
        super().__init__(f"record {index}: {why}")


_Build = Callable[[Iterable[Any], _Options], list[SampleRequest]]


@attrs.frozen
class _Handler:
    label: str
    paths: tuple[str, ...]
    build: _Build
    #: The split used when ``--hf-split`` is not given (None: the dataset must have one).
    split: str | None
    #: The fields a record has, for error messages.
    shape: str
    #: Whether ``--hf-subset`` is passed on (vLLM drops it for some datasets).
    subset: bool = True
    #: Whether vLLM refuses it with backends that can't send media.
    multimodal: bool = False
    #: Which flags can leave no record, for the error when none is left.
    filters: str = ""


# -- record access ---------------------------------------------------------------------


def _get(record: Any, index: int, *keys: str | int) -> Any:
    value = record
    for depth, key in enumerate(keys):
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            raise _BadRecord(index, f"no field {_field_name(keys[: depth + 1])}") from None
    return value


def _text(record: Any, index: int, *keys: str | int) -> str:
    value = _get(record, index, *keys)
    if not isinstance(value, str):
        why = f"field {_field_name(keys)} is {type(value).__name__}, expected a string"
        raise _BadRecord(index, why)
    return value


def _field_name(keys: tuple[str | int, ...]) -> str:
    name = str(keys[0])
    for key in keys[1:]:
        name += f"[{key!r}]"
    return name


# -- prompts and lengths ------------------------------------------------------------------


def _valid(prompt_len: int, output_len: int, max_prompt: int = 1024, max_total: int = 2048) -> bool:
    """vLLM's length filter: both at least 4 tokens, the prompt and the total bounded."""
    return (
        prompt_len >= 4
        and output_len >= 4
        and prompt_len <= max_prompt
        and (prompt_len + output_len <= max_total)
    )


def _user_chat(counter: TokenCounter, prompt: str, chat_template: bool) -> str:
    """*prompt* as a user turn in the tokenizer's chat format; as it is when templates
    are skipped or the tokenizer has none (vLLM fails there)."""
    if not chat_template:
        return prompt
    apply = getattr(counter, "apply_chat_template", None)
    formatted = apply(prompt) if apply is not None else None
    return prompt if formatted is None else str(formatted)


def _messages_chat(counter: TokenCounter, messages: list[dict[str, str]]) -> str | None:
    """*messages* in the tokenizer's chat format, or None when it has no template."""
    return counter.apply_chat_messages(list(messages))


def _mm_chat(prompt: str, media: dict[str, Any] | list[dict[str, Any]] | None) -> list[Any]:
    """The prompt and its media as one OpenAI user message (``--enable-multimodal-chat``)."""
    content: list[dict[str, Any]] = [{"text": prompt, "type": "text"}]
    if isinstance(media, list):
        content.extend(media)
    elif media is not None:
        content.append(media)
    return [{"role": "user", "content": content}]


def _fixed_or(output_len: int | None, default: int) -> int:
    return default if output_len is None else output_len


# -- media ---------------------------------------------------------------------------


def _pil() -> Any:
    try:
        return importlib.import_module("PIL.Image")
    except ImportError as exc:
        raise UsageError(
            "images need Pillow",
            where="--dataset-path",
            why=str(exc),
            hint=f"Install it: {_MM_EXTRA}.",
        ) from None


def _url(value: str) -> str:
    return value if value.startswith(("http://", "https://", "file://")) else f"file://{value}"


def _image_part(image: Any, index: int) -> dict[str, Any]:
    """An ``image_url`` content part: a decoded image (or its bytes) as a base64 JPEG
    data URL, a string as a URL (a local path gets ``file://``)."""
    if isinstance(image, str):
        return {"type": "image_url", "image_url": {"url": _url(image)}}
    pil = _pil()
    if isinstance(image, dict):
        if image.get("bytes") is not None:
            try:
                image = pil.open(io.BytesIO(image["bytes"]))
            except Exception as exc:
                raise _BadRecord(index, f"its image bytes are not an image ({exc})") from None
        elif isinstance(image.get("path"), str):
            return {"type": "image_url", "image_url": {"url": _url(image["path"])}}
    if not isinstance(image, pil.Image):
        why = f"its image is {type(image).__name__}, expected an image, image bytes or a path"
        raise _BadRecord(index, why)
    if image.mode == "RGBA":  # transparency over white, as vLLM converts it
        background = pil.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.split()[3])
        image = background
    elif image.mode != "RGB":
        image = image.convert("RGB")
    with io.BytesIO() as out:
        image.save(out, format="JPEG")
        data = base64.b64encode(out.getvalue()).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{data}"}}


def _video_part(video: Any, index: int) -> dict[str, Any]:
    """A ``video_url`` content part: bytes as a base64 MP4 data URL, a string as a URL."""
    if isinstance(video, dict) and isinstance(video.get("bytes"), bytes):
        data = base64.b64encode(video["bytes"]).decode("ascii")
        return {"type": "video_url", "video_url": {"url": f"data:video/mp4;base64,{data}"}}
    if isinstance(video, str):
        return {"type": "video_url", "video_url": {"url": _url(video)}}
    why = f"its video is {type(video).__name__}, expected a URL, a path or {{'bytes': ...}}"
    raise _BadRecord(index, why)


def _audio(value: Any, index: int, rate: int | None) -> tuple[Any, int]:
    """The samples and sampling rate of a record's ``audio``: decoded by ``datasets``,
    raw (``{"array": ..., "sampling_rate": ...}``), or an undecoded file that soundfile
    reads here (``datasets`` needs torchcodec, hence torch, to decode audio)."""
    import numpy as np

    if isinstance(value, dict) and "array" not in value and ("bytes" in value or "path" in value):
        return _read_audio(value, index, rate)
    try:
        samples, sampling_rate = value["array"], value["sampling_rate"]
    except (KeyError, IndexError, TypeError):
        why = "no field audio['array'] and audio['sampling_rate']"
        raise _BadRecord(index, why) from None
    return np.asarray(samples), int(sampling_rate)


def _read_audio(value: dict[str, Any], index: int, rate: int | None) -> tuple[Any, int]:
    import numpy as np

    try:
        soundfile = importlib.import_module("soundfile")
    except (ImportError, OSError) as exc:
        raise UsageError(
            "audio datasets need soundfile (or torchcodec) to decode audio",
            where="--dataset-path",
            why=str(exc),
            hint=f"Install it: {_AUDIO_EXTRA}.",
        ) from None
    source = value.get("bytes")
    source = io.BytesIO(source) if source is not None else value.get("path")
    if source is None:
        raise _BadRecord(index, "its audio has neither bytes nor a path")
    try:
        samples, sampling_rate = soundfile.read(source, dtype="float32", always_2d=True)
    except Exception as exc:
        raise _BadRecord(index, f"its audio could not be decoded ({exc})") from None
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    if rate and rate != sampling_rate and len(mono):
        # The rate the dataset's Audio feature asks for (linear resampling).
        n = max(round(len(mono) * rate / sampling_rate), 1)
        mono = np.interp(np.arange(n) * sampling_rate / rate, np.arange(len(mono)), mono)
        mono = mono.astype(np.float32)
        sampling_rate = rate
    return mono, int(sampling_rate)


# -- handlers ------------------------------------------------------------------------


def _conversations(records: Iterable[Any], opts: _Options) -> list[SampleRequest]:
    """ShareGPT-style ``conversations``: the first turn is the prompt, the second's
    length the output length (with vLLM's length filter), an ``image`` if there is one."""
    requests: list[SampleRequest] = []
    for i, record in enumerate(records):
        if len(requests) >= opts.num_requests:
            break
        conv = _get(record, i, "conversations")
        if not isinstance(conv, list) or len(conv) < 2:
            continue
        prompt = _text(record, i, "conversations", 0, "value")
        completion = _text(record, i, "conversations", 1, "value")
        prompt_len = opts.counter.count(prompt)
        if opts.output_len is None:
            output_len = opts.counter.count(completion)
            if not _valid(prompt_len, output_len):
                continue
        else:
            output_len = opts.output_len
        image = record.get("image") if isinstance(record, dict) else None
        media = _image_part(image, i) if image is not None else None
        text: Any = _mm_chat(prompt, media) if opts.multimodal_chat else prompt
        requests.append(SampleRequest(text, prompt_len, output_len, multi_modal_data=media))
    return requests


def _vision_arena(records: Iterable[Any], opts: _Options) -> list[SampleRequest]:
    """The first user message and the first image; 128 output tokens by default."""
    keys: tuple[str | int, ...] = (
        ("turns", 0, 0, "content")
        if opts.key == "lmarena-ai/vision-arena-bench-v0.1"
        else ("conversation", 0, 0, "content")
    )
    output_len = _fixed_or(opts.output_len, 128)
    requests: list[SampleRequest] = []
    for i, record in enumerate(itertools.islice(records, opts.num_requests)):
        prompt = _text(record, i, *keys)
        media = _image_part(_get(record, i, "images", 0), i)
        prompt_len = opts.counter.count(prompt)
        text: Any = _mm_chat(prompt, media) if opts.multimodal_chat else prompt
        requests.append(SampleRequest(text, prompt_len, output_len, multi_modal_data=media))
    return requests


def _mmvu(records: Iterable[Any], opts: _Options) -> list[SampleRequest]:
    """The question then its choices as ``A.text``; the video; 128 output tokens."""
    output_len = _fixed_or(opts.output_len, 128)
    requests: list[SampleRequest] = []
    for i, record in enumerate(itertools.islice(records, opts.num_requests)):
        choices = _get(record, i, "choices")
        if not isinstance(choices, dict):
            raise _BadRecord(i, f"field choices is {type(choices).__name__}, expected a mapping")
        question = _text(record, i, "question")
        prompt = question + " " + " ".join(f"{k}.{v}" for k, v in choices.items())
        media = _video_part(_get(record, i, "video"), i)
        prompt_len = opts.counter.count(prompt)
        text: Any = _mm_chat(prompt, media) if opts.multimodal_chat else prompt
        requests.append(SampleRequest(text, prompt_len, output_len, multi_modal_data=media))
    return requests


def _instruct_coder(records: Iterable[Any], opts: _Options) -> list[SampleRequest]:
    """The code then the instruction, in chat format; 200 output tokens by default."""
    output_len = _fixed_or(opts.output_len, 200)
    requests: list[SampleRequest] = []
    for i, record in enumerate(itertools.islice(records, opts.num_requests)):
        prompt = (
            f"{_text(record, i, 'input')}\n\n{_text(record, i, 'instruction')} Just output "
            "the code, do not include any explanation."
        )
        prompt = _user_chat(opts.counter, prompt, opts.chat_template)
        requests.append(SampleRequest(prompt, opts.counter.count(prompt), output_len))
    return requests


def _mt_bench(records: Iterable[Any], opts: _Options) -> list[SampleRequest]:
    """The first turn, in chat format; 256 output tokens by default."""
    output_len = _fixed_or(opts.output_len, 256)
    requests: list[SampleRequest] = []
    for i, record in enumerate(itertools.islice(records, opts.num_requests)):
        prompt = _user_chat(opts.counter, _text(record, i, "turns", 0), opts.chat_template)
        requests.append(SampleRequest(prompt, opts.counter.count(prompt), output_len))
    return requests


_BLAZEDIT_PROMPT = """Given a code file, please apply the change requests and generate the new file.

Original file:
```python
{code}
```

Change request:
{change_request}

Please generate the new code file in the "New file" section below."""


def _blazedit(records: Iterable[Any], opts: _Options) -> list[SampleRequest]:
    """A code file and a change request, when the edit's normalized distance is within
    the bounds; in chat format; 4000 output tokens by default."""
    output_len = _fixed_or(opts.output_len, 4000)
    requests: list[SampleRequest] = []
    for i, record in enumerate(records):
        if len(requests) >= opts.num_requests:
            break
        code = _text(record, i, "code")
        change_request = _text(record, i, "change_request")
        distance = _get(record, i, "norm_distance")
        if not isinstance(distance, (int, float)):
            raise _BadRecord(i, f"field norm_distance is {type(distance).__name__}, not a number")
        if distance < opts.blazedit_min_distance or distance > opts.blazedit_max_distance:
            continue
        prompt = _BLAZEDIT_PROMPT.format(code=code, change_request=change_request)
        prompt = _user_chat(opts.counter, prompt, opts.chat_template)
        requests.append(SampleRequest(prompt, opts.counter.count(prompt), output_len))
    return requests


def _aimo(records: Iterable[Any], opts: _Options) -> list[SampleRequest]:
    """The problem; the solution's length as the output length (prompts up to 2048
    tokens, 32000 in all)."""
    requests: list[SampleRequest] = []
    for i, record in enumerate(records):
        if len(requests) >= opts.num_requests:
            break
        prompt = _text(record, i, "problem")
        solution = _text(record, i, "solution")
        prompt_len = opts.counter.count(prompt)
        if opts.output_len is None:
            output_len = opts.counter.count(solution)
            if not _valid(prompt_len, output_len, max_prompt=2048, max_total=32000):
                continue
        else:
            output_len = opts.output_len
        requests.append(SampleRequest(prompt, prompt_len, output_len))
    return requests


_ZETA_PROMPT = """### Instruction:
You are a code completion assistant and your task is to analyze user edits and then rewrite an excerpt that the user provides, suggesting the appropriate edits within the excerpt, taking into account the cursor location.

### User Edits:

{}

### User Excerpt:

{}

### Response:

"""  # noqa: E501


def _zeta(records: Iterable[Any], opts: _Options) -> list[SampleRequest]:
    """Zeta's edit-prediction prompt; the output length is that of the reference output
    from its editable-region marker (vLLM ignores ``--hf-output-len`` here too)."""
    marker = "<|editable_region_start|>"
    requests: list[SampleRequest] = []
    for i, record in enumerate(itertools.islice(records, opts.num_requests)):
        prompt = _ZETA_PROMPT.format(_text(record, i, "events"), _text(record, i, "input"))
        output = _text(record, i, "output")
        expected = output[output.find(marker) :]
        count = opts.counter.count
        requests.append(SampleRequest(prompt, count(prompt), count(expected)))
    return requests


_WHISPER_PROMPT = "<|startoftranscript|><|en|><|transcribe|><|notimestamps|>"


def _asr(records: Iterable[Any], opts: _Options) -> list[SampleRequest]:
    """The audio, within the length bounds; Whisper's decoder prompt for OpenAI
    tokenizers, else none; 1024 output tokens by default."""
    prompt = _WHISPER_PROMPT if "openai" in opts.counter.name else ""
    prompt_len = opts.counter.count(prompt)
    output_len = _fixed_or(opts.output_len, 1024)
    requests: list[SampleRequest] = []
    for i, record in enumerate(records):
        if len(requests) >= opts.num_requests:
            break
        samples, rate = _audio(_get(record, i, "audio"), i, opts.audio_rate)
        if rate <= 0:
            raise _BadRecord(i, f"its audio's sampling rate is {rate}")
        duration = samples.shape[-1] / rate if samples.ndim else 0.0
        if duration < opts.asr_min_audio_len_sec or duration > opts.asr_max_audio_len_sec:
            continue
        media = {"audio": (samples, rate)}
        requests.append(SampleRequest(prompt, prompt_len, output_len, multi_modal_data=media))
    return requests


def _mlperf(records: Iterable[Any], opts: _Options) -> list[SampleRequest]:
    """The system prompt and question in chat format (always, as vLLM does); the
    reference output's length as the output length; vLLM's length filter."""
    requests: list[SampleRequest] = []
    for i, record in enumerate(records):
        if len(requests) >= opts.num_requests:
            break
        system = _text(record, i, "system_prompt")
        question = _text(record, i, "question")
        reference = _text(record, i, "output")
        messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
        prompt = _messages_chat(opts.counter, messages) or f"{system}\n\n{question}"
        prompt_len = opts.counter.count(prompt)
        output_len = opts.counter.count(reference) if opts.output_len is None else opts.output_len
        if not _valid(prompt_len, output_len):
            continue
        requests.append(SampleRequest(prompt, prompt_len, output_len))
    return requests


def _mmstar(records: Iterable[Any], opts: _Options) -> list[SampleRequest]:
    """The question without its options and the image; 128 output tokens by default.
    With ``--enable-multimodal-chat`` the image is in the message only."""
    output_len = _fixed_or(opts.output_len, 128)
    requests: list[SampleRequest] = []
    for i, record in enumerate(itertools.islice(records, opts.num_requests)):
        question = record.get("question", "") if isinstance(record, dict) else ""
        if not isinstance(question, str):
            question = ""
        prompt = question.split("Options:", 1)[0].strip()
        media = _image_part(_get(record, i, "image"), i)
        prompt_len = opts.counter.count(prompt)
        if opts.multimodal_chat:
            requests.append(SampleRequest(_mm_chat(prompt, media), prompt_len, output_len))
        else:
            requests.append(SampleRequest(prompt, prompt_len, output_len, multi_modal_data=media))
    return requests


_CONVERSATION_SHAPE = (
    'records with "conversations": [{"from": ..., "value": prompt}, {"value": reply}, ...]'
)
_OUTPUT_FILTER = "prompts and replies of 4 to 1024 tokens (or pass --hf-output-len)"

#: The handlers, in the order vLLM tries them.
_HANDLERS = (
    _Handler(
        "VisionArena",
        ("lmarena-ai/VisionArena-Chat", "lmarena-ai/vision-arena-bench-v0.1"),
        _vision_arena,
        split="train",
        shape='records with "conversation" (or "turns") [[{"content": ...}]] and "images"',
        subset=False,
        multimodal=True,
    ),
    _Handler(
        "MMVU",
        ("yale-nlp/MMVU",),
        _mmvu,
        split="validation",
        shape='records with "question", "choices" {"A": ...} and "video"',
        subset=False,
    ),
    _Handler(
        "InstructCoder",
        ("likaixin/InstructCoder",),
        _instruct_coder,
        split="train",
        shape='records with "input" and "instruction"',
    ),
    _Handler(
        "MT-Bench",
        ("philschmid/mt-bench",),
        _mt_bench,
        split="train",
        shape='records with "turns": [prompt, ...]',
    ),
    _Handler(
        "LLaVA-OneVision",
        ("lmms-lab/LLaVA-OneVision-Data",),
        _conversations,
        split=None,
        shape=_CONVERSATION_SHAPE + ' and "image"',
        multimodal=True,
        filters=_OUTPUT_FILTER,
    ),
    _Handler(
        "ShareGPT",
        ("Aeala/ShareGPT_Vicuna_unfiltered",),
        _conversations,
        split=None,
        shape=_CONVERSATION_SHAPE,
        filters=_OUTPUT_FILTER,
    ),
    _Handler(
        "AIMO",
        ("AI-MO/aimo-validation-aime", "AI-MO/NuminaMath-1.5", "AI-MO/NuminaMath-CoT"),
        _aimo,
        split="train",
        shape='records with "problem" and "solution"',
        filters="problems of 4 to 2048 tokens and solutions of 4 or more (or pass --hf-output-len)",
    ),
    _Handler(
        "Zeta",
        ("zed-industries/zeta",),
        _zeta,
        split="train",
        shape='records with "events", "input" and "output"',
    ),
    _Handler(
        "ASR",
        (
            "openslr/librispeech_asr",
            "facebook/voxpopuli",
            "LIUM/tedlium",
            "edinburghcstr/ami",
            "speechcolab/gigaspeech",
            "kensho/spgispeech",
        ),
        _asr,
        split="train",
        shape='records with "audio" {"array": samples, "sampling_rate": rate}',
        multimodal=True,
        filters="audio within --asr-min-audio-len-sec and --asr-max-audio-len-sec",
    ),
    _Handler(
        "Blazedit",
        ("vdaita/edit_5k_char", "vdaita/edit_10k_char"),
        _blazedit,
        split="train",
        shape='records with "code", "change_request" and "norm_distance"',
        filters="edits within --blazedit-min-distance and --blazedit-max-distance",
    ),
    _Handler(
        "MLPerf",
        ("mgoin/mlperf-inference-llama2-data", "mgoin/mlperf-inference-llama3.1-data"),
        _mlperf,
        split="train",
        shape='records with "system_prompt", "question" and "output"',
        filters="prompts and outputs of 4 to 1024 tokens, 2048 in all",
    ),
    _Handler(
        "MMStar",
        ("Lin-Chen/MMStar",),
        _mmstar,
        split="val",
        shape='records with "question" and "image"',
        subset=False,
        multimodal=True,
    ),
)

#: Every hub id ``--dataset-path``/``--hf-name`` may name.
HF_DATASET_PATHS = tuple(sorted(p for h in _HANDLERS for p in h.paths))


def _route(path: str, hf_name: str | None) -> tuple[_Handler, str]:
    """The handler for *path* or *hf_name*, and the hub id that chose it."""
    for handler in _HANDLERS:
        # vLLM matches Blazedit by --dataset-path only; --hf-name works here too.
        for name in (path, hf_name):
            if name in handler.paths:
                return handler, name
    where = f"--hf-name {hf_name}" if hf_name else f"--dataset-path {path}"
    given = hf_name or path
    raise UsageError(
        "unsupported Hugging Face dataset",
        where=where,
        why=f"{given!r} is none of the supported datasets: {', '.join(HF_DATASET_PATHS)}",
        hint="For a local copy of one of them, pass its directory as --dataset-path and "
        "its hub id as --hf-name; for other data use --dataset-name custom.",
    )


def sample_hf(
    counter: TokenCounter,
    num_requests: int,
    *,
    path: str,
    hf_name: str | None,
    hf_split: str | None,
    hf_subset: str | None,
    output_len: int | None,
    streaming: bool,
    chat_template: bool,
    multimodal_chat: bool,
    backend: str,
    trust_remote_code: bool,
    blazedit_min_distance: float,
    blazedit_max_distance: float,
    asr_min_audio_len_sec: float,
    asr_max_audio_len_sec: float,
    shuffle: bool = True,
    oversample: bool = True,
    seed: int,
    request_id_prefix: str,
) -> list[SampleRequest]:
    """Requests from a supported Hugging Face dataset (vLLM's ``--dataset-name hf``).

    *path* is a hub id, or a local copy whose hub id *hf_name* names. The records of
    *hf_split* (the dataset's default split when None) of subset *hf_subset* are loaded
    (streaming when *streaming*), shuffled with *seed* unless not *shuffle*, and taken in
    order until *num_requests* requests pass the dataset's filters; fewer are topped up
    with random repeats unless not *oversample*. *output_len* (``--hf-output-len``)
    replaces the dataset's output lengths. *chat_template* puts text prompts in the
    tokenizer's chat format where vLLM does; *multimodal_chat* makes media prompts
    OpenAI chat messages.

    Raises:
        UsageError: the dataset is not supported, needs a media-capable *backend*, can't
            be loaded, or has records without the fields it needs or none usable; or
            the ``datasets`` package is missing.
    """
    handler, key = _route(path, hf_name)
    if handler.multimodal and backend not in _MM_BACKENDS and "embeddings-" not in backend:
        raise UsageError(
            f"--backend {backend} can't send the media of {key}",
            where="--backend",
            why="multimodal datasets need --backend openai-chat or openai-audio",
            hint="Pass --backend openai-chat (images) or openai-audio (speech).",
        )
    if output_len is not None and output_len <= 0:
        why = f"must be a positive number of tokens, got {output_len}"
        raise UsageError("invalid value", where="--hf-output-len", why=why)
    try:
        datasets: Any = importlib.import_module("datasets")
    except ImportError as exc:
        raise UsageError(
            "--dataset-name hf needs the datasets package",
            where="--dataset-name hf",
            why=str(exc),
            hint=f"Install it: {_HF_EXTRA}.",
        ) from None
    split = hf_split or handler.split
    subset = hf_subset if handler.subset else None
    data = _load(datasets, path, subset, split, streaming, trust_remote_code)
    audio_rate = None
    if handler.build is _asr:
        data, audio_rate = _undecoded_audio(datasets, data)
    if shuffle:
        data = data.shuffle(seed=seed)
    opts = _Options(
        counter=counter,
        num_requests=num_requests,
        key=key,
        output_len=output_len,
        chat_template=chat_template,
        multimodal_chat=multimodal_chat,
        blazedit_min_distance=blazedit_min_distance,
        blazedit_max_distance=blazedit_max_distance,
        asr_min_audio_len_sec=asr_min_audio_len_sec,
        asr_max_audio_len_sec=asr_max_audio_len_sec,
        audio_rate=audio_rate,
    )
    where = f"--dataset-path {path}"
    try:
        requests = handler.build(_records(data, path), opts) if num_requests > 0 else []
    except _BadRecord as exc:
        shape = f"{handler.label} datasets have {handler.shape}."
        raise UsageError("invalid dataset", where=where, why=str(exc), hint=shape) from None
    except ImportError as exc:  # datasets decodes media with optional packages
        raise UsageError(
            "could not decode the dataset's media",
            where=where,
            why=str(exc),
            hint=f"Install what it needs: {_MM_EXTRA} (images), {_AUDIO_EXTRA} (audio).",
        ) from None
    if not requests and num_requests > 0:
        why = f"no usable record in split {split!r}"
        if handler.filters:
            why += f": {handler.label} needs {handler.filters}"
        raise UsageError("invalid dataset", where=where, why=why, hint="Check the data.")
    if oversample:
        requests = _oversample(requests, num_requests, seed)
    return _with_ids(requests, request_id_prefix)


def _load(
    datasets: Any,
    path: str,
    subset: str | None,
    split: str | None,
    streaming: bool,
    trust_remote_code: bool,
) -> Any:
    """``load_dataset`` as vLLM calls it; one split, as a UsageError when it fails."""
    kwargs: dict[str, Any] = {"name": subset, "split": split, "streaming": streaming}
    if trust_remote_code:  # newer datasets dropped it: passed only when asked for
        kwargs["trust_remote_code"] = True
    try:
        try:
            data = datasets.load_dataset(path, **kwargs)
        except TypeError as exc:
            if "trust_remote_code" not in str(exc):
                raise
            del kwargs["trust_remote_code"]
            data = datasets.load_dataset(path, **kwargs)
    except Exception as exc:
        raise UsageError(
            "could not load the dataset",
            where=f"--dataset-path {path}",
            why=_first_line(exc),
            hint="Check the hub id (or local directory), --hf-subset and --hf-split; "
            "offline, a hub dataset must be in the local cache.",
        ) from None
    if isinstance(data, dict):  # no split given or defaulted: a dict of splits
        if len(data) != 1:
            raise UsageError(
                "which split?",
                where="--hf-split",
                why=f"the dataset has the splits {', '.join(map(str, data))}",
                hint="Pass --hf-split NAME.",
            )
        data = next(iter(data.values()))
    return data


def _undecoded_audio(datasets: Any, data: Any) -> tuple[Any, int | None]:
    """*data* with its ``Audio`` column left undecoded when ``datasets`` can't decode
    audio without torchcodec (which needs torch): soundfile decodes it in ``_audio``.
    Also the sampling rate the feature asks for."""
    features = getattr(data, "features", None) or {}
    feature = features.get("audio") if isinstance(features, dict) else None
    audio_type = getattr(datasets, "Audio", None)
    if audio_type is None or not isinstance(feature, audio_type) or not feature.decode:
        return data, None
    if getattr(getattr(datasets, "config", None), "TORCHCODEC_AVAILABLE", True):
        return data, None
    rate = feature.sampling_rate
    return data.cast_column("audio", audio_type(sampling_rate=rate, decode=False)), rate


def _records(data: Any, path: str) -> Iterator[Any]:
    """The records of *data*; a read error mid-way (a bad file) as a UsageError."""
    iterator = iter(data)
    while True:
        try:
            record = next(iterator)
        except StopIteration:
            return
        except ImportError:
            raise
        except Exception as exc:
            raise UsageError(
                "could not read the dataset",
                where=f"--dataset-path {path}",
                why=_first_line(exc),
                hint="Check the files.",
            ) from None
        yield record
