"""The multimodal datasets: ``random-mm`` (random text with synthetic images and videos)
and ``custom_mm`` (JSONL prompts with an image each)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from anyio_llmreq import ASYNC_REQUEST_FUNCS, RequestFuncInput
from anyio_llmreq.backends._registry import get_backend
from anyio_llmreq.bench._config import UsageError
from anyio_llmreq.bench._datasets import SampleRequest
from anyio_llmreq.bench._mm_datasets import (
    DEFAULT_BASE_ITEMS_PER_REQUEST,
    DEFAULT_LIMIT_MM_PER_PROMPT,
    DEFAULT_MM_ITEM_BUCKET_CONFIG,
    DEFAULT_NUM_MM_ITEMS_RANGE_RATIO,
    parse_bucket_config,
    parse_limit_mm_per_prompt,
    sample_custom_mm,
    sample_random_mm,
)
from anyio_llmreq.bench._tokens import HFTokenCounter, WordCounter
from anyio_llmreq.testing import MockBehaviour, MockServerThread

BUCKETS_FLAG = "--random-mm-bucket-config"
LIMITS_FLAG = "--random-mm-limit-mm-per-prompt"


def random_mm(n: int = 4, counter: Any = None, **kwargs: Any) -> list[SampleRequest]:
    options: dict[str, Any] = {
        "input_len": 12,
        "output_len": 5,
        "range_ratio": 0.0,
        "prefix_len": 0,
        "base_items_per_request": 1,
        "num_mm_items_range_ratio": 0.0,
        "limit_mm_per_prompt": {"image": 8, "video": 1},
        "bucket_config": {(8, 12, 1): 1.0},
        "seed": 0,
        "request_id_prefix": "r-",
    }
    options.update(kwargs)
    return sample_random_mm(counter or WordCounter(), n, **options)


def data_of(part: dict[str, Any]) -> tuple[str, bytes]:
    """The MIME type and the bytes of a media part's data URL."""
    kind = part["type"]
    url = part[kind]["url"]
    head, _, payload = url.partition(",")
    assert head.startswith("data:") and head.endswith(";base64")
    return head[5:-7], base64.b64decode(payload)


def image_of(part: dict[str, Any]) -> Any:
    from PIL import Image

    mime, data = data_of(part)
    assert mime == "image/jpeg"
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG" and image.mode == "RGB"
    return image


@pytest.fixture(scope="module")
def tiny_tokenizer() -> Any:
    """A byte-level BPE of 300 ids that adds a BOS and has an extra special token: its
    decode/re-encode doesn't always give the same ids back, so prompts get fitted."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE(unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        special_tokens=["[UNK]", "<s>", "</s>", "<image>"],
        vocab_size=300,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = ["the quick brown fox jumps over the lazy dog, calls here and there. " * 5]
    raw.train_from_iterator(corpus, trainer)
    raw.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast: Any = PreTrainedTokenizerFast  # untyped
    return fast(
        tokenizer_object=raw,
        unk_token="[UNK]",
        bos_token="<s>",
        eos_token="</s>",
        additional_special_tokens=["<image>"],
    )


# --- random-mm: determinism and vLLM's order of draws -------------------------------------


def test_defaults_are_vllms() -> None:
    assert DEFAULT_BASE_ITEMS_PER_REQUEST == 1
    assert DEFAULT_NUM_MM_ITEMS_RANGE_RATIO == 0.0
    assert dict(DEFAULT_LIMIT_MM_PER_PROMPT) == {"image": 255, "video": 1}
    assert dict(DEFAULT_MM_ITEM_BUCKET_CONFIG) == {
        (256, 256, 1): 0.5,
        (720, 1280, 1): 0.5,
        (720, 1280, 16): 0.0,
    }


def test_the_same_seed_gives_the_same_requests() -> None:
    options: dict[str, Any] = {
        "range_ratio": 0.5,
        "prefix_len": 3,
        "base_items_per_request": 2,
        "num_mm_items_range_ratio": 1.0,
        "bucket_config": {(8, 8, 1): 0.5, (16, 8, 1): 0.5},
    }
    first = random_mm(6, seed=3, **options)
    assert first == random_mm(6, seed=3, **options)
    assert [r.request_id for r in first] == [f"r-{i}" for i in range(6)]
    other = random_mm(6, seed=4, **options)
    assert [r.prompt for r in other] != [r.prompt for r in first]
    assert [r.multi_modal_data for r in other] != [r.multi_modal_data for r in first]


def test_draws_come_in_vllms_order() -> None:
    # Replays vLLM's RandomMultiModalDataset with whitespace words (no special tokens, and
    # words decode and re-encode to the same length, so no padding draws): lengths,
    # offsets, the prefix, then per request the item count and, for each item, its
    # bucket and then its pixels, all from one generator.
    from PIL import Image

    buckets = {(8, 8, 1): 0.25, (8, 16, 1): 0.0, (16, 8, 1): 0.75}
    got = random_mm(
        5,
        seed=11,
        input_len=10,
        output_len=6,
        range_ratio=0.5,
        prefix_len=2,
        base_items_per_request=2,
        num_mm_items_range_ratio=0.5,
        bucket_config=buckets,
    )
    words = WordCounter()
    vocab = words.vocab_size
    rng = np.random.default_rng(11)
    input_lens = rng.integers(5, 16, size=5)
    output_lens = rng.integers(3, 10, size=5)
    offsets = rng.integers(0, vocab, size=5)
    prefix = rng.integers(0, vocab, size=2).tolist()
    keys, probs = [(8, 8, 1), (16, 8, 1)], [0.25, 0.75]
    for i, request in enumerate(got):
        ids = prefix + ((offsets[i] + i + np.arange(input_lens[i])) % vocab).tolist()
        assert request.prompt == words.decode(ids)
        assert request.prompt_len == 2 + input_lens[i]
        assert request.expected_output_len == output_lens[i]
        parts = []
        for _ in range(int(rng.integers(1, 4))):
            height, width, _ = rng.choice(keys, p=probs)
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            buf = io.BytesIO()
            Image.fromarray(pixels).save(buf, format="JPEG")
            parts.append(base64.b64encode(buf.getvalue()).decode())
        urls = [p["image_url"]["url"] for p in request.multi_modal_data]
        assert urls == [f"data:image/jpeg;base64,{data}" for data in parts]


# --- random-mm: item counts, buckets, limits ----------------------------------------------


def test_item_counts_stay_in_the_range_and_the_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    # [floor(4 * 0.5), ceil(4 * 1.5)] = [2, 6], clamped to the sum of the limits (3). The
    # video bucket's modality has limit 0: a draw of it takes it out, so PyAV is never
    # needed.
    monkeypatch.setitem(sys.modules, "av", None)
    requests = random_mm(
        60,
        base_items_per_request=4,
        num_mm_items_range_ratio=0.5,
        limit_mm_per_prompt={"image": 3, "video": 0},
        bucket_config={(8, 8, 1): 1.0, (8, 8, 2): 1.0},
    )
    counts = Counter(len(r.multi_modal_data) for r in requests)
    assert set(counts) == {2, 3}
    assert all(p["type"] == "image_url" for r in requests for p in r.multi_modal_data)


def test_no_items_when_the_range_allows_none() -> None:
    requests = random_mm(30, base_items_per_request=1, num_mm_items_range_ratio=1.0)
    counts = Counter(len(r.multi_modal_data) for r in requests)
    assert set(counts) == {0, 1, 2}
    assert all(r.multi_modal_data == [] for r in requests if not r.multi_modal_data)


def test_buckets_are_drawn_with_their_probabilities() -> None:
    # 200 images from a fixed seed: each bucket's count within 4 standard deviations of
    # its expectation; the zero-probability bucket never drawn. Every image decodes to
    # its bucket's height and width.
    buckets = {(8, 8, 1): 0.2, (8, 16, 1): 0.5, (16, 8, 1): 0.3, (24, 24, 1): 0.0}
    requests = random_mm(200, bucket_config=buckets, seed=5)
    sizes: Counter[tuple[int, int, int]] = Counter()
    for request in requests:
        (part,) = request.multi_modal_data
        width, height = image_of(part).size
        sizes[(height, width, 1)] += 1
    assert sum(sizes.values()) == 200 and (24, 24, 1) not in sizes
    for bucket, p in buckets.items():
        if p:
            assert abs(sizes[bucket] - 200 * p) <= 4 * math.sqrt(200 * p * (1 - p)), sizes


def test_a_modality_at_its_limit_leaves_the_others_renormalized() -> None:
    # Half the probability is on a video bucket whose limit is 0: every draw of it takes
    # videos out, and the two image buckets share the requests evenly.
    buckets = {(8, 8, 1): 0.25, (8, 16, 1): 0.25, (8, 8, 4): 0.5}
    limits = {"image": 1, "video": 0}
    requests = random_mm(200, bucket_config=buckets, limit_mm_per_prompt=limits, seed=2)
    sizes = Counter(image_of(r.multi_modal_data[0]).size for r in requests)
    assert sum(sizes.values()) == 200 and set(sizes) == {(8, 8), (16, 8)}
    assert abs(sizes[(8, 8)] - 100) <= 4 * math.sqrt(50)


def test_the_bucket_config_is_left_as_given() -> None:
    buckets = {(8, 8, 1): 2.0, (8, 8, 2): 0.0}
    limits = {"image": 1, "video": 0}
    random_mm(3, bucket_config=buckets, limit_mm_per_prompt=limits)
    assert buckets == {(8, 8, 1): 2.0, (8, 8, 2): 0.0}
    assert limits == {"image": 1, "video": 0}


# --- random-mm: text ----------------------------------------------------------------------


def test_word_prompts_have_the_requested_lengths() -> None:
    requests = random_mm(40, input_len=20, output_len=10, range_ratio=0.25, prefix_len=4)
    for r in requests:
        assert 4 + 15 <= r.prompt_len <= 4 + 25
        assert len(r.prompt.split()) == r.prompt_len
        assert 7 <= r.expected_output_len <= 13
    assert len({tuple(r.prompt.split()[:4]) for r in requests}) == 1
    assert len({r.prompt_len for r in requests}) > 1


def test_tokenizer_prompts_are_fitted_to_the_length_less_special_tokens(
    tiny_tokenizer: Any,
) -> None:
    # The tokenizer adds a BOS, so 30 tokens asked are 29 of text, as in vLLM.
    counter = HFTokenCounter(tiny_tokenizer, "tiny")
    requests = random_mm(20, counter, input_len=30, prefix_len=0)
    for r in requests:
        ids = tiny_tokenizer(r.prompt, add_special_tokens=False).input_ids
        assert r.prompt_len == len(ids)
    assert Counter(r.prompt_len for r in requests).most_common(1)[0][0] == 29


# --- random-mm: video ---------------------------------------------------------------------


class FakeAV:
    """The part of PyAV the video encoder uses, recording what it was given."""

    def __init__(self) -> None:
        self.opened: list[tuple[str, str]] = []
        self.streams: list[Any] = []
        self.frames: list[tuple[Any, str]] = []

    def open(self, buf: io.BytesIO, mode: str, format: str) -> Any:
        self.opened.append((mode, format))
        fake = self

        class Stream:
            width = height = 0
            pix_fmt = ""

            def __init__(self, codec: str, rate: int) -> None:
                self.codec, self.rate = codec, rate

            def encode(self, frame: Any = None) -> list[bytes]:
                return [b"frame"] if frame is not None else [b"end"]

        class Container:
            def __enter__(self) -> Container:
                return self

            def __exit__(self, *exc: object) -> None:
                pass

            def add_stream(self, codec: str, rate: int) -> Any:
                fake.streams.append(Stream(codec, rate))
                return fake.streams[-1]

            def mux(self, packets: list[bytes]) -> None:
                buf.write(b"".join(packets))

        return Container()

    class VideoFrame:
        @staticmethod
        def from_ndarray(array: Any, format: str) -> Any:
            FakeAV.current.frames.append((array.copy(), format))
            return array

    current: FakeAV


def test_videos_are_mp4v_at_30_fps_from_the_drawn_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeAV()
    FakeAV.current = fake
    monkeypatch.setitem(sys.modules, "av", fake)
    (request,) = random_mm(1, bucket_config={(6, 10, 3): 1.0}, seed=9, input_len=4)
    (part,) = request.multi_modal_data
    mime, data = data_of(part)
    assert part["type"] == "video_url" and mime == "video/mp4"
    assert data == b"frame" * 3 + b"end"
    assert fake.opened == [("w", "mp4")]
    (stream,) = fake.streams
    assert (stream.codec, stream.rate, stream.width, stream.height) == ("mpeg4", 30, 10, 6)
    assert stream.pix_fmt == "yuv420p"
    # The frames are the generator's next draw after the bucket, taken as BGR.
    rng = np.random.default_rng(9)
    for low, high in [(4, 5), (5, 6), (0, WordCounter().vocab_size)]:  # lengths, offsets
        rng.integers(low, high, size=1)
    rng.integers(1, 2)  # one item
    rng.choice([(6, 10, 3)], p=[1.0])
    want = rng.integers(0, 256, (3, 6, 10, 3), dtype=np.uint8)
    assert [f for _, f in fake.frames] == ["bgr24"] * 3
    assert np.array_equal(np.stack([a for a, _ in fake.frames]), want)


def test_video_buckets_without_pyav_are_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(UsageError) as info:
        random_mm(1, bucket_config={(8, 8, 1): 0.5, (8, 8, 4): 0.5})
    assert info.value.where == BUCKETS_FLAG
    assert "anyio-llmreq[video]" in str(info.value)


def test_images_without_pillow_are_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    with pytest.raises(UsageError) as info:
        random_mm(1)
    assert "pip install 'anyio-llmreq[multimodal]'" in str(info.value)
    # No item can be drawn: no Pillow needed.
    (request,) = random_mm(1, base_items_per_request=0)
    assert request.multi_modal_data == []


# --- flag parsing and bad options ---------------------------------------------------------


def test_parse_bucket_config() -> None:
    text = "{(256, 256, 1): 0.5, (720, 1280, 16): 1}"
    assert parse_bucket_config(text) == {(256, 256, 1): 0.5, (720, 1280, 16): 1.0}
    # JSON can't write tuple keys: strings of them are read as vLLM reads them.
    assert parse_bucket_config('{"(8, 8, 1)": 0.25}') == {(8, 8, 1): 0.25}


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{(8, 8, 1): 0.5", "not a Python literal"),
        ("[(8, 8, 1)]", "expected a dict, got a list"),
        ("{(8, 8): 1.0}", "invalid bucket key (8, 8)"),
        ("{'big': 1.0}", "invalid bucket key 'big'"),
        ("{(8, 8.5, 1): 1.0}", "invalid bucket key"),
        ("{(8, 8, 1): 'lots'}", "not a number"),
        ("{(8, 8, 1): -0.5, (8, 8, 2): 1}", "not a finite number >= 0"),
        ("{(8, 8, 1): 0, (8, 8, 2): 0.0}", "no bucket has a probability above 0"),
        ("{(8, 8, 0): 1.0}", "at least 1"),
        ("{(0, 8, 1): 1.0}", "at least 1"),
    ],
)
def test_parse_bucket_config_errors(text: str, why: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_bucket_config(text)
    assert info.value.where == BUCKETS_FLAG
    assert why in str(info.value)


def test_parse_limit_mm_per_prompt() -> None:
    assert parse_limit_mm_per_prompt('{"image": 3, "video": 0}') == {"image": 3, "video": 0}


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{'image': 3}", "not valid JSON"),
        ("[3]", "expected a JSON object, got a list"),
        ('{"image": -1}', "not a whole number >= 0"),
        ('{"image": 2.5}', "not a whole number >= 0"),
        ('{"image": true}', "not a whole number >= 0"),
    ],
)
def test_parse_limit_mm_per_prompt_errors(text: str, why: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_limit_mm_per_prompt(text)
    assert info.value.where == LIMITS_FLAG
    assert why in str(info.value)


@pytest.mark.parametrize(
    ("options", "where", "why"),
    [
        ({"limit_mm_per_prompt": {"image": 2}, "bucket_config": {(8, 8, 1): 1, (8, 8, 2): 0}},
         LIMITS_FLAG, "no limit for video"),
        ({"num_mm_items_range_ratio": 1.5}, "--random-mm-num-mm-items-range-ratio", "[0, 1]"),
        ({"base_items_per_request": 3, "limit_mm_per_prompt": {"image": 2}},
         "--random-mm-base-items-per-request", "at least 3 items a request, but at most 2"),
        ({"range_ratio": 1.0}, "--random-range-ratio", "[0, 1)"),
        ({"bucket_config": {(8, 8, 1): 0.0}}, BUCKETS_FLAG, "no bucket"),
    ],
)  # fmt: skip
def test_bad_options_name_their_flag(options: dict[str, Any], where: str, why: str) -> None:
    with pytest.raises(UsageError) as info:
        random_mm(1, **options)
    assert info.value.where == where
    assert why in str(info.value)


# --- custom_mm ----------------------------------------------------------------------------


def write_jsonl(path: Path, lines: list[Any]) -> str:
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    return str(path)


def custom_mm(path: str, n: int = 3, **kwargs: Any) -> list[SampleRequest]:
    options: dict[str, Any] = {
        "output_len": 7,
        "multimodal_chat": False,
        "shuffle": False,
        "seed": 0,
        "request_id_prefix": "c-",
    }
    options.update(kwargs)
    counter = options.pop("counter", WordCounter())
    return sample_custom_mm(counter, n, path=path, **options)


def test_custom_mm_images_by_path_and_url(tmp_path: Path) -> None:
    from PIL import Image

    image = tmp_path / "red.png"
    Image.new("RGB", (4, 3), "red").save(image)
    lines = [
        {"prompt": "what colour is this", "image_files": [str(image), "ignored.png"]},
        {"prompt": "and this one", "image_files": ["https://example.com/a.jpg"]},
        {"prompt": "relative", "image_files": ["pics/b.png"]},
        {"prompt": "already a file URL", "image_files": ["file:///srv/c.png"]},
    ]
    requests = custom_mm(write_jsonl(tmp_path / "d.jsonl", lines), 4)
    urls = [r.multi_modal_data["image_url"]["url"] for r in requests]
    assert urls == [
        f"file://{image}",
        "https://example.com/a.jpg",
        "file://pics/b.png",
        "file:///srv/c.png",
    ]
    assert all(r.multi_modal_data["type"] == "image_url" for r in requests)
    assert [r.prompt for r in requests] == [line["prompt"] for line in lines]
    assert [r.prompt_len for r in requests] == [4, 3, 1, 4]
    assert [r.expected_output_len for r in requests] == [7] * 4
    assert [r.request_id for r in requests] == ["c-0", "c-1", "c-2", "c-3"]


def test_custom_mm_shuffles_with_seed_0_whatever_the_seed(tmp_path: Path) -> None:
    lines = [{"prompt": f"prompt {i}", "image_files": [f"{i}.png"]} for i in range(8)]
    path = write_jsonl(tmp_path / "d.jsonl", lines)
    first = custom_mm(path, 8, shuffle=True, seed=1)
    assert first == custom_mm(path, 8, shuffle=True, seed=2)
    order = list(range(8))
    random.Random(0).shuffle(order)
    assert [r.prompt for r in first] == [f"prompt {i}" for i in order]


def test_custom_mm_oversamples_unless_told_not_to(tmp_path: Path) -> None:
    lines = [{"prompt": f"p {i}", "image_files": [f"{i}.png"]} for i in range(3)]
    path = write_jsonl(tmp_path / "d.jsonl", lines)
    more = custom_mm(path, 7)
    assert [r.request_id for r in more] == [f"c-{i}" for i in range(7)]
    assert [r.prompt for r in more[:3]] == ["p 0", "p 1", "p 2"]
    pick = random.Random(0)
    assert [r.prompt for r in more[3:]] == [pick.choice(["p 0", "p 1", "p 2"]) for _ in range(4)]
    assert len(custom_mm(path, 7, oversample=False)) == 3
    assert len(custom_mm(path, 2)) == 2
    assert len(custom_mm(path, 0)) == 3  # vLLM: 0 or less takes every line


def test_custom_mm_output_lengths_and_chat_prompts(tmp_path: Path) -> None:
    lines = [
        {"prompt": "a b", "image_files": ["x.png"], "output_tokens": 11},
        {"prompt": "c", "image_files": ["y.png"], "output_tokens": "12"},
    ]
    path = write_jsonl(tmp_path / "d.jsonl", lines)
    assert [r.expected_output_len for r in custom_mm(path, 2)] == [7, 7]
    assert [r.expected_output_len for r in custom_mm(path, 2, output_len=-1)] == [11, 12]
    chat = custom_mm(path, 2, multimodal_chat=True)
    part = {"type": "image_url", "image_url": {"url": "file://x.png"}}
    assert chat[0].prompt == [{"role": "user", "content": [{"text": "a b", "type": "text"}, part]}]
    assert chat[0].multi_modal_data == part and chat[0].prompt_len == 2


def test_custom_mm_counts_special_tokens_as_vllm(tmp_path: Path, tiny_tokenizer: Any) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "the lazy dog", "image_files": ["x"]}])
    (request,) = custom_mm(path, 1, counter=HFTokenCounter(tiny_tokenizer, "tiny"))
    assert request.prompt_len == len(tiny_tokenizer("the lazy dog").input_ids)
    plain = tiny_tokenizer("the lazy dog", add_special_tokens=False).input_ids
    assert request.prompt_len == len(plain) + 1


@pytest.mark.parametrize(
    ("name", "content", "why"),
    [
        ("d.json", '{"prompt": "a", "image_files": ["x"]}\n', "reads only JSONL"),
        ("d.jsonl", '{"prompt": "a"}\n', "line 1: 'image_files' must be a non-empty list"),
        ("d.jsonl", '{"prompt": "a", "image_files": []}\n', "non-empty list"),
        ("d.jsonl", '{"prompt": "a", "image_files": "x.png"}\n', "non-empty list"),
        (
            "d.jsonl",
            '\n{"image_files": ["x"]}\n',
            "line 2: each line needs a string field 'prompt'",
        ),
        ("d.jsonl", '{"prompt": "a", \n', "line 1: not valid JSON"),
        ("d.jsonl", "\n\n", "no prompts"),
    ],
)
def test_custom_mm_bad_files(tmp_path: Path, name: str, content: str, why: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UsageError) as info:
        custom_mm(str(path))
    assert info.value.where == f"--dataset-path {path}"
    assert why in str(info.value)


def test_custom_mm_needs_output_tokens_without_an_output_len(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "a", "image_files": ["x"]}])
    with pytest.raises(UsageError, match="line 1: no 'output_tokens'"):
        custom_mm(path, output_len=-1)
    line = {"prompt": "a", "image_files": ["x"], "output_tokens": "many"}
    path = write_jsonl(tmp_path / "e.jsonl", [line])
    with pytest.raises(UsageError, match="output_tokens 'many' is not a whole number"):
        custom_mm(path, output_len=-1)


# --- end to end: the openai-chat backend and the mock server ------------------------------


def test_a_random_mm_request_goes_through_openai_chat_to_the_mock_server() -> None:
    (sample,) = random_mm(1, input_len=9, base_items_per_request=2, request_id_prefix="mm-")
    with MockServerThread(MockBehaviour()) as server:
        request = RequestFuncInput(
            prompt=sample.prompt,
            api_url=f"{server.base_url}/v1/chat/completions",
            prompt_len=sample.prompt_len,
            output_len=sample.expected_output_len,
            model="m",
            multi_modal_content=sample.multi_modal_data,
            request_id=sample.request_id,
        )
        spec = get_backend("openai-chat").build_payload(request)
        content = spec.json["messages"][0]["content"]
        assert content == [{"type": "text", "text": sample.prompt}, *sample.multi_modal_data]
        output = asyncio.run(ASYNC_REQUEST_FUNCS["openai-chat"](request))
        (recorded,) = server.requests
    assert output.success, output.error
    assert output.output_tokens == sample.expected_output_len == 5
    # The mock counts the text part's words and skips the images.
    assert output.prompt_tokens == sample.prompt_len == 9
    assert recorded.json["messages"][0]["content"][1:] == sample.multi_modal_data
    assert ("x-request-id", "mm-0") in [(k.lower(), v) for k, v in recorded.headers]
