"""Multimodal prompt datasets: ``random-mm`` (random text with synthetic images and
videos) and ``custom_mm`` (a JSONL file of prompts with an image each).

``sample_random_mm`` draws from one ``numpy`` generator in vLLM's order (lengths, prefix,
then per request: text padding, item count, and each item's bucket and pixels), so the
same seed and tokenizer give vLLM's prompts and media. Images need Pillow (the
``multimodal`` extra), videos PyAV; both are imported only when items of that kind can
be drawn.
"""

from __future__ import annotations

import ast
import base64
import importlib
import io
import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

from ._config import UsageError
from ._datasets import (
    SampleRequest,
    _bad_file,
    _kind,
    _oversample,
    _read_jsonl_objects,
    _with_ids,
)
from ._tokens import TokenCounter

__all__ = [
    "DEFAULT_BASE_ITEMS_PER_REQUEST",
    "DEFAULT_LIMIT_MM_PER_PROMPT",
    "DEFAULT_MM_ITEM_BUCKET_CONFIG",
    "DEFAULT_NUM_MM_ITEMS_RANGE_RATIO",
    "parse_bucket_config",
    "parse_limit_mm_per_prompt",
    "sample_custom_mm",
    "sample_random_mm",
]

Bucket = tuple[int, int, int]

#: vLLM's ``--random-mm-base-items-per-request`` default.
DEFAULT_BASE_ITEMS_PER_REQUEST = 1
#: vLLM's ``--random-mm-num-mm-items-range-ratio`` default.
DEFAULT_NUM_MM_ITEMS_RANGE_RATIO = 0.0
#: vLLM's ``--random-mm-limit-mm-per-prompt`` default.
DEFAULT_LIMIT_MM_PER_PROMPT: dict[str, int] = {"image": 255, "video": 1}
#: vLLM's ``--random-mm-bucket-config`` default: ``(height, width, frames)`` ->
#: probability; one frame is an image, more a video.
DEFAULT_MM_ITEM_BUCKET_CONFIG: dict[Bucket, float] = {
    (256, 256, 1): 0.5,
    (720, 1280, 1): 0.5,
    (720, 1280, 16): 0.0,
}

_BUCKETS_FLAG = "--random-mm-bucket-config"
_LIMITS_FLAG = "--random-mm-limit-mm-per-prompt"
_BUCKET_SHAPE = "a dict of (height, width, frames) -> probability, e.g. '{(256, 256, 1): 1.0}'"
_VIDEO_FPS = 30  # vLLM writes its synthetic videos at 30 frames per second
_RETRIES = 10  # vLLM's decode/re-encode rounds to reach a prompt's token count


# --- flag parsing -------------------------------------------------------------------------


def parse_bucket_config(text: str) -> dict[Bucket, float]:
    """``--random-mm-bucket-config``: a Python literal dict whose keys are
    ``(height, width, frames)`` tuples (or strings of them, as JSON must write them)
    and whose values are probabilities, as vLLM parses it.

    Raises:
        UsageError: not such a dict, or a size or probability that can't be used.
    """
    try:
        parsed = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        why = f"{text!r} is not a Python literal"
        raise UsageError("invalid value", where=_BUCKETS_FLAG, why=why, hint=_hint()) from None
    if not isinstance(parsed, dict):
        why = f"expected a dict, got {_kind(parsed)}"
        raise UsageError("invalid value", where=_BUCKETS_FLAG, why=why, hint=_hint())
    buckets: dict[Bucket, float] = {}
    for key, value in parsed.items():
        bucket = _bucket_key(key)
        try:
            buckets[bucket] = float(value)
        except (TypeError, ValueError):
            why = f"the probability of {bucket} is {value!r}, not a number"
            raise UsageError("invalid value", where=_BUCKETS_FLAG, why=why) from None
    _check_buckets(buckets)
    return buckets


def _hint() -> str:
    return f"Pass {_BUCKET_SHAPE}."


def _bucket_key(key: Any) -> Bucket:
    raw = key
    if isinstance(key, str):
        try:
            key = ast.literal_eval(key)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
    if not (
        isinstance(key, tuple)
        and len(key) == 3
        and all(isinstance(x, int) and not isinstance(x, bool) for x in key)
    ):
        why = f"invalid bucket key {raw!r}: expected a tuple (height, width, frames) of integers"
        raise UsageError("invalid value", where=_BUCKETS_FLAG, why=why, hint=_hint())
    return (key[0], key[1], key[2])


def _check_buckets(buckets: Mapping[Bucket, float]) -> None:
    """The checks vLLM makes while sampling, made up front: sizes that can be drawn,
    probabilities that are not negative and not all zero."""
    for (height, width, frames), p in buckets.items():
        if height < 1 or width < 1 or frames < 1:
            why = f"bucket {(height, width, frames)}: height, width and frames must be at least 1"
            raise UsageError("invalid value", where=_BUCKETS_FLAG, why=why)
        if not p >= 0 or math.isinf(p):
            why = f"bucket {(height, width, frames)}: probability {p:g} is not a finite number >= 0"
            raise UsageError("invalid value", where=_BUCKETS_FLAG, why=why)
    if not any(p > 0 for p in buckets.values()):
        why = "no bucket has a probability above 0"
        raise UsageError("invalid value", where=_BUCKETS_FLAG, why=why, hint=_hint())


def parse_limit_mm_per_prompt(text: str) -> dict[str, int]:
    """``--random-mm-limit-mm-per-prompt``: a JSON object of modality -> most items of
    that modality in one request, e.g. ``{"image": 3, "video": 0}``.

    Raises:
        UsageError: not such an object.
    """
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        why = f"not valid JSON: {exc.msg} at column {exc.colno}"
        raise UsageError(
            "invalid value", where=_LIMITS_FLAG, why=why, hint="Pass e.g. '{\"image\": 3}'."
        ) from None
    if not isinstance(parsed, dict):
        why = f"expected a JSON object, got {_kind(parsed)}"
        raise UsageError("invalid value", where=_LIMITS_FLAG, why=why)
    _check_limits(parsed)
    return dict(parsed)


def _check_limits(limits: Mapping[str, Any]) -> None:
    for modality, limit in limits.items():
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            why = f"the limit for {modality!r} is {limit!r}, not a whole number >= 0"
            raise UsageError("invalid value", where=_LIMITS_FLAG, why=why)


# --- random-mm ----------------------------------------------------------------------------


def _modality(bucket: Bucket) -> str:
    return "image" if bucket[2] == 1 else "video"


def _normalized(buckets: Mapping[Bucket, float]) -> dict[Bucket, float]:
    """Zero-probability buckets dropped, the rest scaled to sum to 1 (vLLM's
    arithmetic, so the generator sees the same probabilities)."""
    kept = {k: v for k, v in buckets.items() if v > 0}
    total = sum(kept.values())
    return {k: v / total for k, v in kept.items()}


def _item_count_range(
    base: int, ratio: float, limits: Mapping[str, int], buckets: Mapping[Bucket, float]
) -> tuple[int, int, dict[str, int], dict[Bucket, float]]:
    """The ``[low, high]`` range of items per request, the limits of the modalities that
    can be drawn, and the normalized buckets."""
    if not 0.0 <= ratio <= 1.0:
        why = f"must be in [0, 1], got {ratio:g}"
        raise UsageError("invalid value", where="--random-mm-num-mm-items-range-ratio", why=why)
    _check_limits(limits)
    _check_buckets(buckets)
    for bucket in buckets:
        if _modality(bucket) not in limits:
            why = (
                f"no limit for {_modality(bucket)}, which bucket {bucket} of "
                f"{_BUCKETS_FLAG} draws (limits given: {', '.join(limits) or 'none'})"
            )
            raise UsageError("invalid value", where=_LIMITS_FLAG, why=why)
    normalized = _normalized(buckets)
    drawn = {_modality(b) for b in normalized}
    limits = {k: v for k, v in limits.items() if k in drawn}
    high = min(sum(limits.values()), math.ceil(base * (1 + ratio)))
    low = max(0, math.floor(base * (1 - ratio)))
    if low > high:
        why = (
            f"at least {low} items a request, but at most {high} can be drawn "
            f"(the sum of the {_LIMITS_FLAG} limits is {sum(limits.values())})"
        )
        hint = f"Lower --random-mm-base-items-per-request or raise {_LIMITS_FLAG}."
        where = "--random-mm-base-items-per-request"
        raise UsageError("invalid value", where=where, why=why, hint=hint)
    return low, high, limits, normalized


def _draw_buckets(
    rng: Any, low: int, high: int, buckets: dict[Bucket, float], limits: Mapping[str, int]
) -> Iterator[Bucket]:
    """One request's buckets, drawn lazily (the caller draws each item's pixels before
    the next bucket, as vLLM does). A modality at its limit is taken out and the other
    buckets renormalized; the draw that found it full is spent."""
    wanted = int(rng.integers(low, high + 1))
    if wanted == 0:
        return
    counts = dict.fromkeys((_modality(b) for b in buckets), 0)
    left = dict(buckets)
    while sum(counts.values()) < wanted:
        row = rng.choice(list(left), p=list(left.values()))
        bucket: Bucket = (int(row[0]), int(row[1]), int(row[2]))
        modality = _modality(bucket)
        if counts[modality] < limits[modality]:
            counts[modality] += 1
            yield bucket
            continue
        for key in left:
            if _modality(key) == modality:
                left[key] = 0.0
        if all(v == 0 for v in left.values()):
            return
        left = _normalized(left)


def _needed_modalities(
    high: int, buckets: Mapping[Bucket, float], limits: Mapping[str, int]
) -> set[str]:
    """The modalities items can be drawn of (their packages are needed)."""
    if high == 0:
        return set()
    return {_modality(b) for b in buckets if limits.get(_modality(b), 0) > 0}


def _require_pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise UsageError(
            "missing package",
            where="--dataset-name random-mm",
            why="synthetic images need Pillow",
            hint="Install it: pip install 'anyio-llmreq[multimodal]'",
        ) from None
    return Image


def _require_av() -> Any:
    try:
        return importlib.import_module("av")
    except ImportError:
        raise UsageError(
            "missing package",
            where=_BUCKETS_FLAG,
            why="buckets of more than one frame are videos, which need PyAV to encode",
            hint="Install it: pip install 'anyio-llmreq[video]' (or give every bucket 1 frame)",
        ) from None


def _image_part(image_module: Any, pixels: Any) -> dict[str, Any]:
    """An RGB image as vLLM sends it: JPEG (Pillow's default quality), base64 data URL."""
    with io.BytesIO() as buf:
        image_module.fromarray(pixels).convert("RGB").save(buf, format="JPEG")
        data = base64.b64encode(buf.getvalue()).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{data}"}}


def _video_part(av: Any, frames: Any) -> dict[str, Any]:
    """Frames as vLLM sends them: MPEG-4 part 2 in MP4 (OpenCV's ``mp4v``) at 30 fps,
    the pixels taken as BGR, base64 data URL."""
    _, height, width, _ = frames.shape
    with io.BytesIO() as buf:
        with av.open(buf, "w", format="mp4") as container:
            stream = container.add_stream("mpeg4", rate=_VIDEO_FPS)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
            container.mux(stream.encode())
        data = base64.b64encode(buf.getvalue()).decode("ascii")
    return {"type": "video_url", "video_url": {"url": f"data:video/mp4;base64,{data}"}}


def _tokenizer_of(counter: TokenCounter) -> tuple[Any, Any]:
    """The transformers tokenizer and the ``tokenizers`` backend behind *counter*
    (either may be None: whitespace words have neither)."""
    return getattr(counter, "tokenizer", None), getattr(counter, "backend", None)


def _num_special_tokens(counter: TokenCounter) -> int:
    """Special tokens the tokenizer adds to one sequence (a BOS, say)."""
    tok, backend = _tokenizer_of(counter)
    if tok is not None:
        return int(tok.num_special_tokens_to_add())
    if backend is not None:
        return int(backend.num_special_tokens_to_add(False))
    return 0


def _special_added_ids(counter: TokenCounter) -> list[int]:
    """Ids of the tokenizer's added special tokens: vLLM keeps them (image placeholders
    among them) out of multimodal prompts."""
    tok, backend = _tokenizer_of(counter)
    decoder: Mapping[int, Any] = {}
    if tok is not None:
        decoder = tok.added_tokens_decoder
    elif backend is not None:
        decoder = backend.get_added_tokens_decoder()
    return [int(i) for i, token in decoder.items() if getattr(token, "special", False)]


def _fit_text(counter: TokenCounter, ids: list[int], target: int, rng: Any) -> tuple[str, int]:
    """Decode *ids*, re-encode, and pad with random ids or cut until the text is *target*
    tokens (at most ``_RETRIES`` rounds, as vLLM): the text and its token count."""
    tries = _RETRIES
    while True:
        text = counter.decode(ids)
        ids = counter.encode(text)
        if tries <= 0 or len(ids) == target:
            return text, len(ids)
        if len(ids) < target:
            ids.extend(rng.integers(0, counter.vocab_size, size=target - len(ids)).tolist())
        else:
            ids = ids[:target]
        tries -= 1


def sample_random_mm(
    counter: TokenCounter,
    num_requests: int,
    *,
    input_len: int,
    output_len: int,
    range_ratio: float,
    prefix_len: int,
    base_items_per_request: int,
    num_mm_items_range_ratio: float,
    limit_mm_per_prompt: dict[str, int],
    bucket_config: dict[tuple[int, int, int], float],
    shuffle: bool = True,
    oversample: bool = True,
    seed: int,
    request_id_prefix: str,
) -> list[SampleRequest]:
    """Random token prompts with synthetic images and videos (vLLM's
    ``RandomMultiModalDataset``, for the ``openai-chat`` backend).

    The text is vLLM's random dataset: *input_len* less the tokenizer's special tokens,
    spread by *range_ratio*, after a shared random *prefix_len* prefix, from the
    vocabulary without its added special tokens. Each request gets a number of items
    drawn uniformly from ``[floor(n * (1 - r)), ceil(n * (1 + r))]`` (*n*
    *base_items_per_request*, *r* *num_mm_items_range_ratio*; the top clamped to the sum
    of *limit_mm_per_prompt*), each from *bucket_config* (``(height, width, frames)`` ->
    probability; one frame is an image). A modality at its limit is taken out and the
    other buckets' probabilities renormalized. Items are random pixels: images as JPEG,
    videos as MP4, in base64 data URLs of OpenAI ``image_url`` / ``video_url`` parts.

    *shuffle* and *oversample* have no effect (vLLM's dataset does neither).

    Raises:
        UsageError: a bad option (naming its flag), or Pillow (images) or PyAV (videos)
            missing.
    """
    import numpy as np

    del shuffle, oversample  # generated requests: nothing to shuffle or repeat
    if not 0.0 <= range_ratio < 1.0:
        why = f"must be in [0, 1), got {range_ratio:g}"
        raise UsageError("invalid value", where="--random-range-ratio", why=why)
    low, high, limits, buckets = _item_count_range(
        base_items_per_request, num_mm_items_range_ratio, limit_mm_per_prompt, bucket_config
    )
    needed = _needed_modalities(high, buckets, limits)
    image_module = _require_pillow() if "image" in needed else None
    av = _require_av() if "video" in needed else None

    rng = np.random.default_rng(seed)
    vocab = counter.vocab_size
    real_input_len = max(0, int(input_len) - _num_special_tokens(counter))
    in_low = math.floor(real_input_len * (1 - range_ratio))
    in_high = math.ceil(real_input_len * (1 + range_ratio))
    out_low = max(math.floor(output_len * (1 - range_ratio)), 1)
    out_high = max(math.ceil(output_len * (1 + range_ratio)), 1)
    input_lens = rng.integers(in_low, in_high + 1, size=num_requests)
    output_lens = rng.integers(out_low, out_high + 1, size=num_requests)
    offsets = rng.integers(0, vocab, size=num_requests)
    # A set difference, as vLLM takes it, so the allowed ids come in the same order.
    allowed = np.array(list(set(np.arange(vocab)) - set(_special_added_ids(counter))))
    prefix: list[int] = []
    if prefix_len > 0:
        prefix = allowed[rng.integers(0, len(allowed), size=prefix_len)].tolist()

    requests = []
    for i in range(num_requests):
        n = int(input_lens[i])
        inner = allowed[(int(offsets[i]) + i + np.arange(n)) % len(allowed)].tolist()
        prompt, length = _fit_text(counter, prefix + inner, prefix_len + n, rng)
        parts = []
        for height, width, frames in _draw_buckets(rng, low, high, buckets, limits):
            if frames == 1:
                pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
                parts.append(_image_part(image_module, pixels))
            else:
                video = rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
                parts.append(_video_part(av, video))
        requests.append(SampleRequest(prompt, length, int(output_lens[i]), multi_modal_data=parts))
    return _with_ids(requests, request_id_prefix)


# --- custom_mm ----------------------------------------------------------------------------

_CUSTOM_MM_SHAPE = (
    'custom_mm is JSONL: one {"prompt": "...", "image_files": ["path or URL", ...]} object per line'
)


def _image_url_part(image: str) -> dict[str, Any]:
    """vLLM's part for an image named by path or URL: URLs as they are, anything else
    as a ``file://`` URL for the server to read."""
    url = image if image.startswith(("http://", "https://", "file://")) else f"file://{image}"
    return {"type": "image_url", "image_url": {"url": url}}


def _custom_mm_records(path: str) -> list[dict[str, Any]]:
    if not path.endswith(".jsonl"):
        raise _bad_file(path, "custom_mm reads only JSONL files", "Name the file *.jsonl.")
    records = []
    for lineno, obj in _read_jsonl_objects(path, _CUSTOM_MM_SHAPE):
        if not isinstance(obj.get("prompt"), str):
            why = f"line {lineno}: each line needs a string field 'prompt'"
            raise _bad_file(path, why, _CUSTOM_MM_SHAPE)
        images = obj.get("image_files")
        if not isinstance(images, list) or not images or not isinstance(images[0], str):
            why = f"line {lineno}: 'image_files' must be a non-empty list of paths or URLs"
            raise _bad_file(path, why, _CUSTOM_MM_SHAPE)
        obj["_line"] = lineno
        records.append(obj)
    if not records:
        raise _bad_file(path, "no prompts", _CUSTOM_MM_SHAPE)
    return records


def _output_len(record: dict[str, Any], output_len: int | None, path: str) -> int:
    if output_len is not None and output_len != -1:
        return output_len
    line = record["_line"]
    if "output_tokens" not in record:
        why = f"line {line}: no 'output_tokens', and --custom-output-len is -1"
        raise _bad_file(path, why, "Give each line output_tokens, or pass --custom-output-len.")
    value = record["output_tokens"]
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        value = None
    try:
        out = int(value) if value is not None else -1
    except ValueError:
        out = -1
    if out < 0:
        why = f"line {line}: output_tokens {record['output_tokens']!r} is not a whole number >= 0"
        raise _bad_file(path, why)
    return out


def sample_custom_mm(
    counter: TokenCounter,
    num_requests: int,
    *,
    path: str,
    output_len: int,
    multimodal_chat: bool,
    shuffle: bool = True,
    oversample: bool = True,
    seed: int,
    request_id_prefix: str,
) -> list[SampleRequest]:
    """Prompts with an image each from a JSONL file (vLLM's ``CustomMMDataset``): one
    ``{"prompt": ..., "image_files": [...]}`` per line; only the first image is sent, as
    an ``image_url`` part with the URL as given or a local path as ``file://PATH``.

    The order is shuffled (unless not *shuffle*) and short files oversampled (unless not
    *oversample*) with seed 0 whatever *seed* is: vLLM's dataset ignores ``--seed``.
    ``prompt_len`` counts the prompt with the tokenizer's special tokens, as vLLM does.
    Every request asks for *output_len* tokens; with ``-1`` each line's
    ``output_tokens``. With *multimodal_chat* the prompt is the chat message list (text
    part first, then the image).
    """
    import random

    del seed  # vLLM builds this dataset with its default seed, 0
    records = _custom_mm_records(path)
    if shuffle:
        random.Random(0).shuffle(records)
    if num_requests <= 0:
        num_requests = len(records)
    special = _num_special_tokens(counter)
    requests = []
    for record in records[:num_requests]:
        prompt: Any = record["prompt"]
        prompt_len = counter.count(prompt) + special
        part = _image_url_part(record["image_files"][0])
        if multimodal_chat:
            prompt = [{"role": "user", "content": [{"text": prompt, "type": "text"}, part]}]
        out = _output_len(record, output_len, path)
        requests.append(SampleRequest(prompt, prompt_len, out, multi_modal_data=part))
    if oversample:
        requests = _oversample(requests, num_requests, 0)
    return _with_ids(requests, request_id_prefix)
