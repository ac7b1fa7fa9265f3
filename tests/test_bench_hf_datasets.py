"""``--dataset-name hf``: each supported hub dataset's handler, on small local copies.

Every dataset here is written to ``tmp_path`` as parquet (with a README naming its split)
and loaded by path with ``--hf-name`` naming the hub dataset whose schema it has, as
vLLM's docs describe for local copies. The hub is never reached.
"""

from __future__ import annotations

import base64
import io
import math
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import datasets
import numpy as np
import pytest
import soundfile
from PIL import Image

from anyio_llmreq.bench._config import UsageError
from anyio_llmreq.bench._datasets import SampleRequest
from anyio_llmreq.bench._hf_datasets import HF_DATASET_PATHS, sample_hf
from anyio_llmreq.bench._tokens import FastTokenCounter, HFTokenCounter, TokenCounter, WordCounter

WORDS = WordCounter()


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No hub, and the datasets cache in tmp_path (datasets reads its config at import)."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    # datasets 5 sleeps 5 s after a shuffled stream's reader threads (an Arrow
    # workaround): a wait, not a behaviour under test.
    monkeypatch.setattr(datasets.config, "SLEEP_TIME_ON_THREADS_SHUTDOWN", 0, raising=False)
    datasets.disable_progress_bars()


class _ChatTokenizer:
    """A transformers-like tokenizer: whitespace tokens and a visible chat template."""

    chat_template = "fake"
    vocab_size = 100

    def __call__(self, text: str, add_special_tokens: bool = True) -> Any:
        return SimpleNamespace(input_ids=text.split())

    def decode(self, ids: list[int]) -> str:
        return " ".join(map(str, ids))

    def apply_chat_template(
        self, messages: list[dict[str, str]], add_generation_prompt: bool, tokenize: bool
    ) -> str:
        assert add_generation_prompt and not tokenize
        turns = "".join(f"<{m['role']}> {m['content']} " for m in messages)
        return turns + "<assistant>"


CHAT = HFTokenCounter(_ChatTokenizer(), "fake/chat")


def _dataset(
    root: Path,
    splits: dict[str, list[dict[str, Any]]],
    *,
    casts: dict[str, Any] | None = None,
    features: datasets.Features | None = None,
) -> str:
    """A local dataset directory: one parquet file a split, named in the README's
    ``configs`` (as hub datasets name theirs), so any split name works."""
    (root / "data").mkdir(parents=True)
    lines = ["---", "configs:", "- config_name: default", "  data_files:"]
    for split, rows in splits.items():
        ds = datasets.Dataset.from_list(rows, features=features)
        for column, feature in (casts or {}).items():
            ds = ds.cast_column(column, feature)
        ds.to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))
        lines += [f"  - split: {split}", f"    path: data/{split}-*.parquet"]
    (root / "README.md").write_text("\n".join([*lines, "---", ""]))
    return str(root)


def _sample(
    path: str, num_requests: int, counter: TokenCounter = WORDS, **options: Any
) -> list[SampleRequest]:
    kwargs: dict[str, Any] = {
        "hf_name": None,
        "hf_split": None,
        "hf_subset": None,
        "output_len": None,
        "streaming": True,
        "chat_template": True,
        "multimodal_chat": False,
        "backend": "openai-chat",
        "trust_remote_code": False,
        "blazedit_min_distance": 0.0,
        "blazedit_max_distance": 1.0,
        "asr_min_audio_len_sec": 0.0,
        "asr_max_audio_len_sec": math.inf,
        "shuffle": False,
        "seed": 0,
        "request_id_prefix": "r-",
    }
    kwargs.update(options)
    return sample_hf(counter, num_requests, path=path, **kwargs)


def _ids(requests: list[SampleRequest]) -> list[str]:
    return [r.request_id for r in requests]


def _decode_image(part: dict[str, Any]) -> Image.Image:
    assert part["type"] == "image_url"
    url = part["image_url"]["url"]
    head, data = url.split(",", 1)
    assert head == "data:image/jpeg;base64"
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    image.load()
    assert image.format == "JPEG"
    return image


def _png(size: tuple[int, int], colour: tuple[int, ...], mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, colour).save(out, format="PNG")
    return out.getvalue()


def _conv(prompt: str, reply: str) -> dict[str, Any]:
    return {"conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": reply}]}


# -- ShareGPT (Aeala/ShareGPT_Vicuna_unfiltered) --------------------------------------------

SHAREGPT = "Aeala/ShareGPT_Vicuna_unfiltered"


def _sharegpt_rows(n: int) -> list[dict[str, Any]]:
    return [_conv(f"prompt number {i} has words", f"reply {i} with five words") for i in range(n)]


def test_sharegpt_first_two_turns_with_vllms_length_filter(tmp_path: Path) -> None:
    rows = [
        _conv("one two three four five", "a b c d e f"),
        {"conversations": [{"from": "human", "value": "only one turn here"}]},
        _conv("too short", "a b c d e f"),  # prompt under 4 tokens
        _conv("long enough prompt here", "no"),  # reply under 4 tokens
        _conv(" ".join(["w"] * 1025), "a b c d"),  # prompt over 1024
        _conv(" ".join(["w"] * 1000), " ".join(["x"] * 1049)),  # over 2048 in all
        _conv("six words in this prompt now", "seven words in this reply right here"),
    ]
    path = _dataset(tmp_path / "sg", {"train": rows})
    got = _sample(path, 2, hf_name=SHAREGPT)
    assert [(r.prompt, r.prompt_len, r.expected_output_len) for r in got] == [
        ("one two three four five", 5, 6),
        ("six words in this prompt now", 6, 7),
    ]
    assert _ids(got) == ["r-0", "r-1"]
    assert all(r.multi_modal_data is None for r in got)

    # --hf-output-len: every length is that, and only the two-turn rule filters.
    fixed = _sample(path, 10, hf_name=SHAREGPT, output_len=33, oversample=False)
    assert [r.prompt_len for r in fixed] == [5, 2, 4, 1025, 1000, 6]
    assert {r.expected_output_len for r in fixed} == {33}


def test_the_hub_id_as_dataset_path_routes_and_loads_the_same_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = _dataset(tmp_path / "sg", {"train": _sharegpt_rows(3)})
    calls: list[tuple[str, dict[str, Any]]] = []
    real = datasets.load_dataset

    def load(path: str, **kwargs: Any) -> Any:
        calls.append((path, kwargs))
        # The "hub" copy is the local one, which has no subsets.
        return real(local, split=kwargs["split"], streaming=kwargs["streaming"])

    monkeypatch.setattr(datasets, "load_dataset", load)
    got = _sample(SHAREGPT, 3, hf_split="train", hf_subset="sub-x", streaming=False)
    assert calls == [(SHAREGPT, {"name": "sub-x", "split": "train", "streaming": False})]
    assert [r.prompt for r in got] == [r["conversations"][0]["value"] for r in _sharegpt_rows(3)]


def test_trust_remote_code_is_passed_only_when_asked_and_dropped_if_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = _dataset(tmp_path / "sg", {"train": _sharegpt_rows(2)})
    calls: list[dict[str, Any]] = []
    real = datasets.load_dataset

    def load(path: str, **kwargs: Any) -> Any:
        calls.append(dict(kwargs))
        if "trust_remote_code" in kwargs:
            raise TypeError("load_dataset() got an unexpected keyword 'trust_remote_code'")
        return real(path, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", load)
    got = _sample(local, 2, hf_name=SHAREGPT, trust_remote_code=True)
    assert len(got) == 2
    assert [c.get("trust_remote_code") for c in calls] == [True, None]
    calls.clear()
    _sample(local, 2, hf_name=SHAREGPT, trust_remote_code=False)
    assert ["trust_remote_code" in c for c in calls] == [False]


def test_a_dataset_with_several_splits_needs_hf_split(tmp_path: Path) -> None:
    path = _dataset(
        tmp_path / "sg",
        {"train": _sharegpt_rows(2), "test": [_conv("the test split prompt", "a b c d")]},
    )
    with pytest.raises(UsageError) as info:
        _sample(path, 1, hf_name=SHAREGPT)
    assert info.value.where == "--hf-split"
    assert "train" in str(info.value) and "test" in str(info.value)
    got = _sample(path, 1, hf_name=SHAREGPT, hf_split="test")
    assert got[0].prompt == "the test split prompt"


def test_streaming_and_no_stream_give_the_same_requests(tmp_path: Path) -> None:
    path = _dataset(tmp_path / "sg", {"train": _sharegpt_rows(12)})
    streamed = _sample(path, 8, hf_name=SHAREGPT, streaming=True)
    loaded = _sample(path, 8, hf_name=SHAREGPT, streaming=False)
    assert streamed == loaded
    assert [r.prompt for r in streamed] == [f"prompt number {i} has words" for i in range(8)]


def test_shuffle_is_seeded_and_disable_shuffle_keeps_the_file_order(tmp_path: Path) -> None:
    path = _dataset(tmp_path / "sg", {"train": _sharegpt_rows(30)})
    in_order = [f"prompt number {i} has words" for i in range(30)]

    def prompts(**options: Any) -> list[Any]:
        return [r.prompt for r in _sample(path, 30, hf_name=SHAREGPT, **options)]

    assert prompts(shuffle=False) == in_order
    seed0 = prompts(shuffle=True, seed=0)
    assert seed0 == prompts(shuffle=True, seed=0)
    assert seed0 != in_order and sorted(seed0) == sorted(in_order)
    assert prompts(shuffle=True, seed=1) != seed0
    assert prompts(shuffle=True, seed=0, streaming=False) == prompts(
        shuffle=True, seed=0, streaming=False
    )


def test_oversampling_repeats_random_requests_with_new_ids(tmp_path: Path) -> None:
    path = _dataset(tmp_path / "sg", {"train": _sharegpt_rows(3)})
    got = _sample(path, 8, hf_name=SHAREGPT, seed=5)
    assert _ids(got) == [f"r-{i}" for i in range(8)]
    assert [r.prompt for r in got[:3]] == [f"prompt number {i} has words" for i in range(3)]
    assert {r.prompt for r in got[3:]} <= {r.prompt for r in got[:3]}
    assert got == _sample(path, 8, hf_name=SHAREGPT, seed=5)
    # vLLM's draws: random.seed(seed) then one random.choice per missing request.
    import random

    rnd = random.Random(5)
    assert [r.prompt for r in got[3:]] == [rnd.choice(got[:3]).prompt for _ in range(5)]
    assert len(_sample(path, 8, hf_name=SHAREGPT, oversample=False)) == 3


# -- LLaVA-OneVision (multimodal conversations) ----------------------------------------------

LLAVA = "lmms-lab/LLaVA-OneVision-Data"


def _llava(tmp_path: Path) -> str:
    rows = [
        {**_conv("what is in this picture", "a red square on white"), "image": None}
        for _ in range(2)
    ]
    rows[0]["image"] = Image.new("RGBA", (7, 5), (200, 0, 0, 0))
    rows[1]["image"] = Image.new("L", (3, 9), 40)
    features = datasets.Features(
        {
            "conversations": [
                {"from": datasets.Value("string"), "value": datasets.Value("string")}
            ],
            "image": datasets.Image(),
        }
    )
    return _dataset(tmp_path / "llava", {"train": rows}, features=features)


def test_llava_onevision_sends_the_image_as_a_jpeg_data_url(tmp_path: Path) -> None:
    path = _llava(tmp_path)
    got = _sample(path, 2, hf_name=LLAVA)
    assert [r.prompt for r in got] == ["what is in this picture"] * 2
    assert [(r.prompt_len, r.expected_output_len) for r in got] == [(5, 5), (5, 5)]
    first, second = (_decode_image(r.multi_modal_data) for r in got)
    assert (first.size, first.mode) == ((7, 5), "RGB")
    # A transparent pixel goes over white, as vLLM converts RGBA.
    assert min(first.getpixel((3, 2))) > 240  # type: ignore[arg-type]
    assert (second.size, second.mode) == ((3, 9), "RGB")


def test_multimodal_chat_makes_the_prompt_an_openai_message(tmp_path: Path) -> None:
    path = _llava(tmp_path)
    got = _sample(path, 1, hf_name=LLAVA, multimodal_chat=True)
    part = got[0].multi_modal_data
    assert got[0].prompt == [
        {"role": "user", "content": [{"text": "what is in this picture", "type": "text"}, part]}
    ]
    assert got[0].prompt_len == 5


@pytest.mark.parametrize("backend", ["openai", "vllm", "tgi"])
def test_multimodal_datasets_refuse_backends_that_cant_send_media(
    tmp_path: Path, backend: str
) -> None:
    for name in (
        LLAVA,
        "lmarena-ai/VisionArena-Chat",
        "openslr/librispeech_asr",
        "Lin-Chen/MMStar",
    ):
        with pytest.raises(UsageError) as info:
            _sample(str(tmp_path / "nothing"), 1, hf_name=name, backend=backend)
        assert info.value.where == "--backend"
        assert "openai-chat" in str(info.value)


def test_multimodal_datasets_accept_chat_audio_and_embeddings_backends(tmp_path: Path) -> None:
    path = _llava(tmp_path)
    for backend in ("openai-chat", "openai-audio", "openai-embeddings-clip"):
        assert len(_sample(path, 2, hf_name=LLAVA, backend=backend)) == 2


# -- VisionArena ---------------------------------------------------------------------------


def test_vision_arena_both_schemas_first_message_and_first_image(tmp_path: Path) -> None:
    image = {"bytes": _png((4, 6), (0, 0, 255)), "path": None}
    chat_rows = [
        {
            "conversation": [[{"role": "user", "content": f"describe image {i} please"}]],
            "images": [image, image],
        }
        for i in range(2)
    ]
    bench_rows = [{"turns": [[{"role": "user", "content": "bench prompt"}]], "images": [image]}]
    chat = _dataset(tmp_path / "va", {"train": chat_rows})
    bench = _dataset(tmp_path / "vb", {"train": bench_rows})
    got = _sample(chat, 2, hf_name="lmarena-ai/VisionArena-Chat", hf_subset="dropped")
    assert [r.prompt for r in got] == ["describe image 0 please", "describe image 1 please"]
    assert [(r.prompt_len, r.expected_output_len) for r in got] == [(4, 128), (4, 128)]
    assert _decode_image(got[0].multi_modal_data).size == (4, 6)
    got = _sample(bench, 1, hf_name="lmarena-ai/vision-arena-bench-v0.1", output_len=9)
    assert (got[0].prompt, got[0].expected_output_len) == ("bench prompt", 9)
    assert _decode_image(got[0].multi_modal_data).size == (4, 6)


# -- MMVU (video) ----------------------------------------------------------------------------


def test_mmvu_question_choices_and_video_url(tmp_path: Path) -> None:
    rows = [
        {"question": "What moves?", "choices": {"A": "cat", "B": "dog"}, "video": "clips/a.mp4"},
        {"question": "Which?", "choices": {"A": "x", "B": "y"}, "video": "https://h/v.mp4"},
    ]
    path = _dataset(tmp_path / "mmvu", {"validation": rows})
    # vLLM doesn't mark MMVU multimodal: any backend may run it.
    got = _sample(path, 2, hf_name="yale-nlp/MMVU", backend="openai")
    assert [r.prompt for r in got] == ["What moves? A.cat B.dog", "Which? A.x B.y"]
    assert [r.expected_output_len for r in got] == [128, 128]
    assert [r.multi_modal_data for r in got] == [
        {"type": "video_url", "video_url": {"url": "file://clips/a.mp4"}},
        {"type": "video_url", "video_url": {"url": "https://h/v.mp4"}},
    ]


def test_mmvu_video_bytes_become_an_mp4_data_url(tmp_path: Path) -> None:
    rows = [{"question": "Q", "choices": {"A": "a"}, "video": {"bytes": b"\x00mp4", "path": None}}]
    path = _dataset(tmp_path / "mmvu", {"validation": rows})
    got = _sample(path, 1, hf_name="yale-nlp/MMVU", multimodal_chat=True)
    url = "data:video/mp4;base64," + base64.b64encode(b"\x00mp4").decode()
    part = {"type": "video_url", "video_url": {"url": url}}
    assert got[0].multi_modal_data == part
    assert got[0].prompt == [{"role": "user", "content": [{"text": "Q A.a", "type": "text"}, part]}]


# -- text datasets with chat templates ------------------------------------------------------


def test_instruct_coder_prompt_in_chat_format(tmp_path: Path) -> None:
    rows = [{"input": f"def f{i}(): pass", "instruction": "Rename it."} for i in range(3)]
    path = _dataset(tmp_path / "ic", {"train": rows})
    raw = "def f0(): pass\n\nRename it. Just output the code, do not include any explanation."
    got = _sample(path, 2, CHAT, hf_name="likaixin/InstructCoder")
    assert got[0].prompt == f"<user> {raw} <assistant>"
    assert got[0].prompt_len == len(got[0].prompt.split())
    assert [r.expected_output_len for r in got] == [200, 200]
    skipped = _sample(path, 2, CHAT, hf_name="likaixin/InstructCoder", chat_template=False)
    assert skipped[0].prompt == raw
    # Words have no chat template: the prompt is sent as it is.
    assert _sample(path, 1, hf_name="likaixin/InstructCoder")[0].prompt == raw


def test_mt_bench_first_turn(tmp_path: Path) -> None:
    rows = [{"turns": ["first question here", "follow up"]}, {"turns": ["second one"]}]
    path = _dataset(tmp_path / "mt", {"train": rows})
    got = _sample(path, 2, CHAT, hf_name="philschmid/mt-bench")
    assert [r.prompt for r in got] == [
        "<user> first question here <assistant>",
        "<user> second one <assistant>",
    ]
    assert [(r.prompt_len, r.expected_output_len) for r in got] == [(5, 256), (4, 256)]


def test_blazedit_distance_filter_and_prompt(tmp_path: Path) -> None:
    rows = [
        {"code": f"x = {i}", "change_request": f"make it {i + 1}", "norm_distance": d}
        for i, d in enumerate([0.05, 0.3, 0.6, 0.9])
    ]
    path = _dataset(tmp_path / "bz", {"train": rows})
    got = _sample(
        path,
        5,
        hf_name="vdaita/edit_5k_char",
        chat_template=False,
        blazedit_min_distance=0.2,
        blazedit_max_distance=0.7,
        oversample=False,
    )
    assert len(got) == 2
    assert got[0].prompt == (
        "Given a code file, please apply the change requests and generate the new file."
        "\n\nOriginal file:\n```python\nx = 1\n```\n\nChange request:\nmake it 2\n\n"
        'Please generate the new code file in the "New file" section below.'
    )
    assert "x = 2" in got[1].prompt
    assert [r.expected_output_len for r in got] == [4000, 4000]
    assert _ids(got) == ["r-0", "r-1"]
    with pytest.raises(UsageError, match="--blazedit-min-distance"):
        _sample(path, 2, hf_name="vdaita/edit_10k_char", blazedit_min_distance=0.95)


def test_aimo_problem_and_solution_length(tmp_path: Path) -> None:
    rows = [
        {"problem": "find x if x plus one is two", "solution": "x is one clearly here"},
        {"problem": "too short", "solution": "a b c d e"},
        {"problem": "a valid problem statement", "solution": "ok"},
    ]
    path = _dataset(tmp_path / "aimo", {"train": rows})
    got = _sample(path, 3, hf_name="AI-MO/NuminaMath-CoT", oversample=False)
    assert [(r.prompt, r.prompt_len, r.expected_output_len) for r in got] == [
        ("find x if x plus one is two", 8, 5)
    ]
    fixed = _sample(path, 3, hf_name="AI-MO/aimo-validation-aime", output_len=50)
    assert [(r.prompt_len, r.expected_output_len) for r in fixed] == [(8, 50), (2, 50), (4, 50)]


def test_zeta_prompt_and_output_from_the_editable_region(tmp_path: Path) -> None:
    rows = [
        {
            "events": "User edited file.py",
            "input": "<|editable_region_start|>\nold code\n<|editable_region_end|>",
            "output": "preamble words <|editable_region_start|> new code here",
        }
    ]
    path = _dataset(tmp_path / "zeta", {"train": rows})
    got = _sample(path, 1, hf_name="zed-industries/zeta", output_len=7)
    assert got[0].prompt.startswith("### Instruction:\nYou are a code completion assistant")
    assert "### User Edits:\n\nUser edited file.py\n\n### User Excerpt:\n\n<|editable" in (
        got[0].prompt
    )
    assert got[0].prompt.endswith("### Response:\n\n")
    assert got[0].prompt_len == len(got[0].prompt.split())
    # "<|editable_region_start|> new code here": 4 words; --hf-output-len is ignored.
    assert got[0].expected_output_len == 4


MLPERF = "mgoin/mlperf-inference-llama2-data"


def test_mlperf_system_and_question_in_chat_format(tmp_path: Path) -> None:
    rows = [
        {
            "system_prompt": "You are terse.",
            "question": "Name three colours.",
            "output": "red green blue and more",
        },
        {"system_prompt": "S", "question": "Q", "output": "no"},  # reply under 4 tokens
    ]
    path = _dataset(tmp_path / "mlp", {"train": rows})
    got = _sample(path, 2, CHAT, hf_name=MLPERF, chat_template=False)
    # The template applies even with --skip-chat-template, as in vLLM.
    assert [r.prompt for r in got] == [
        "<system> You are terse. <user> Name three colours. <assistant>"
    ] * 2
    assert [(r.prompt_len, r.expected_output_len) for r in got] == [(9, 5), (9, 5)]
    # A cached tokenizer loads transformers' for the template, once.
    loads: list[str] = []

    def load_full() -> HFTokenCounter:
        loads.append("x")
        return CHAT

    backend = SimpleNamespace(
        encode=lambda text, add_special_tokens: SimpleNamespace(ids=text.split())
    )
    fast = FastTokenCounter(backend, "fake/chat", 100, False, True, load_full)
    assert [r.prompt for r in _sample(path, 2, fast, hf_name=MLPERF)] == [r.prompt for r in got]
    assert loads == ["x"]
    words = _sample(path, 1, hf_name="mgoin/mlperf-inference-llama3.1-data", output_len=12)
    assert (words[0].prompt, words[0].expected_output_len) == (
        "You are terse.\n\nName three colours.",
        12,
    )


def test_mmstar_question_without_options_and_image(tmp_path: Path) -> None:
    image = {"bytes": _png((5, 5), (1, 2, 3)), "path": None}
    rows = [{"question": "How many dots? Options: A: 1 B: 2", "image": image}]
    path = _dataset(tmp_path / "mmstar", {"val": rows})
    got = _sample(path, 1, hf_name="Lin-Chen/MMStar", hf_subset="ignored")
    assert (got[0].prompt, got[0].prompt_len, got[0].expected_output_len) == (
        "How many dots?",
        3,
        128,
    )
    assert _decode_image(got[0].multi_modal_data).size == (5, 5)
    chat = _sample(path, 1, hf_name="Lin-Chen/MMStar", multimodal_chat=True)
    assert chat[0].multi_modal_data is None  # in the message only
    assert chat[0].prompt[0]["content"][0] == {"text": "How many dots?", "type": "text"}
    assert _decode_image(chat[0].prompt[0]["content"][1]).size == (5, 5)


# -- ASR ----------------------------------------------------------------------------------------


def _sine(seconds: float, rate: int = 16_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def test_asr_raw_arrays_with_the_length_filter(tmp_path: Path) -> None:
    # Raw samples in vLLM's read shape: datasets decodes an Audio feature only with
    # torchcodec (torch), which the suite doesn't install; see the next test.
    lengths = [0.5, 1.5, 3.0, 1.0]
    rows = [{"audio": {"array": _sine(s).tolist(), "sampling_rate": 16_000}} for s in lengths]
    path = _dataset(tmp_path / "ls", {"train": rows})
    got = _sample(
        path,
        5,
        hf_name="openslr/librispeech_asr",
        backend="openai-audio",
        asr_min_audio_len_sec=0.8,
        asr_max_audio_len_sec=2.0,
        oversample=False,
    )
    assert [(r.prompt, r.prompt_len, r.expected_output_len) for r in got] == [("", 0, 1024)] * 2
    durations = []
    for r, seconds in zip(got, [1.5, 1.0], strict=True):
        samples, rate = r.multi_modal_data["audio"]
        assert rate == 16_000
        np.testing.assert_allclose(samples, _sine(seconds), atol=1e-6)
        durations.append(len(samples) / rate)
    assert durations == [1.5, 1.0]
    whisper = HFTokenCounter(_ChatTokenizer(), "openai/whisper-large-v3")
    got = _sample(path, 1, whisper, hf_name="facebook/voxpopuli", output_len=64)
    assert got[0].prompt == "<|startoftranscript|><|en|><|transcribe|><|notimestamps|>"
    assert (got[0].prompt_len, got[0].expected_output_len) == (1, 64)


def test_asr_audio_feature_decoded_without_torchcodec(tmp_path: Path) -> None:
    def wav(samples: np.ndarray, rate: int) -> dict[str, Any]:
        out = io.BytesIO()
        soundfile.write(out, samples, rate, format="WAV", subtype="FLOAT")
        return {"bytes": out.getvalue(), "path": None}

    stereo = np.stack([_sine(0.5), np.zeros(8000, np.float32)], axis=1)
    rows = [{"audio": wav(_sine(1.0), 16_000)}, {"audio": wav(stereo, 16_000)}]
    audio = datasets.Audio(sampling_rate=16_000)
    path = _dataset(tmp_path / "ami", {"train": rows}, casts={"audio": audio})
    got = _sample(path, 2, hf_name="edinburghcstr/ami", backend="openai-audio")
    (mono, rate), (mixed, _) = (r.multi_modal_data["audio"] for r in got)
    assert rate == 16_000
    np.testing.assert_allclose(mono, _sine(1.0), atol=1e-6)
    np.testing.assert_allclose(mixed, _sine(0.5) / 2, atol=1e-6)  # channels averaged

    # The rate the Audio feature asks for is the rate sent.
    path = _dataset(
        tmp_path / "ted", {"train": rows[:1]}, casts={"audio": datasets.Audio(sampling_rate=8000)}
    )
    samples, rate = _sample(path, 1, hf_name="LIUM/tedlium", streaming=False)[0].multi_modal_data[
        "audio"
    ]
    assert (rate, len(samples)) == (8000, 8000)


# -- errors ------------------------------------------------------------------------------------


def test_an_unknown_dataset_lists_the_supported_ones(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        _sample("someone/unknown-set", 1)
    assert info.value.where == "--dataset-path someone/unknown-set"
    for name in ("philschmid/mt-bench", "Lin-Chen/MMStar", "zed-industries/zeta"):
        assert name in str(info.value)
    assert len(HF_DATASET_PATHS) == 22
    with pytest.raises(UsageError) as info:
        _sample(str(tmp_path), 1, hf_name="nope/nope")
    assert info.value.where == "--hf-name nope/nope"


def test_a_missing_datasets_package_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(UsageError) as info:
        _sample(str(tmp_path), 1, hf_name=SHAREGPT)
    assert "anyio-llmreq[hf]" in str(info.value)


def test_a_record_without_a_field_names_it(tmp_path: Path) -> None:
    path = _dataset(tmp_path / "mt", {"train": [{"question": "no turns"}]})
    with pytest.raises(UsageError) as info:
        _sample(path, 1, hf_name="philschmid/mt-bench")
    assert info.value.where == f"--dataset-path {path}"
    assert "record 0: no field turns" in str(info.value)
    assert "MT-Bench" in str(info.value)


def test_a_missing_local_dataset_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="could not load the dataset"):
        _sample(str(tmp_path / "absent"), 1, hf_name=SHAREGPT, hf_split="train")


def test_a_non_positive_output_len_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        _sample(str(tmp_path), 1, hf_name=SHAREGPT, output_len=0)
    assert info.value.where == "--hf-output-len"


def test_an_unreadable_file_is_a_usage_error(tmp_path: Path) -> None:
    path = _dataset(tmp_path / "mt", {"train": [{"turns": ["fine"]}]})
    (tmp_path / "mt" / "data" / "train-00000-of-00001.parquet").write_bytes(b"not parquet")
    with pytest.raises(UsageError) as info:
        _sample(path, 1, hf_name="philschmid/mt-bench")
    assert info.value.where == f"--dataset-path {path}"


def test_missing_pillow_and_soundfile_name_their_extras(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = {"bytes": _png((2, 2), (0, 0, 0)), "path": None}
    rows = [{"question": "Q", "image": image}]
    mmstar = _dataset(tmp_path / "mmstar", {"val": rows})
    wav = io.BytesIO()
    soundfile.write(wav, _sine(0.1), 16_000, format="WAV")
    audio = {"audio": {"bytes": wav.getvalue(), "path": None}}
    asr = _dataset(
        tmp_path / "asr", {"train": [audio]}, casts={"audio": datasets.Audio(sampling_rate=16_000)}
    )
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    monkeypatch.setitem(sys.modules, "soundfile", None)
    with pytest.raises(UsageError, match=r"anyio-llmreq\[multimodal\]"):
        _sample(mmstar, 1, hf_name="Lin-Chen/MMStar")
    with pytest.raises(UsageError, match=r"anyio-llmreq\[audio\]"):
        _sample(asr, 1, hf_name="kensho/spgispeech", backend="openai-audio")
