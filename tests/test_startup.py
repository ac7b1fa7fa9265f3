"""The bench's tokenizer cache: a tokenizer loaded once through transformers is loaded
again with the ``tokenizers`` library alone, with identical ids, counts and decodes."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from anyio_llmreq.bench._tokens import (
    FastTokenCounter,
    HFTokenCounter,
    load_token_counter,
    save_pending,
)

pytestmark = pytest.mark.usefixtures("hf_offline")

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Shall I compare thee to a summer's day? Thou art more lovely and more temperate.",
    "Rough winds do shake the darling buds of May, and summer's lease hath all too short a date.",
    "naïve café déjà vu, 日本語のテキスト, emoji 🙂 and numbers 1234567890.",
    "def f(x):\n    return x ** 2  # squares",
]
TEXTS = [
    *CORPUS,
    "",
    " ",
    "Hello , world . Isn 't it ? I 'm sure they 're right !",
    "<s>a sentence between special tokens</s><s>",
    "<|im_start|>user\nhi<|im_end|>",
    "unknown bytes: \x00\x01 \u200b \ufeff and Ελληνικά, עברית, العربية",
    "  leading, trailing   and   repeated   spaces  \n\n\t",
    "x" * 500,
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
)


def build(path: Path, kind: str, **config: Any) -> Path:
    """A small trained tokenizer saved as transformers saves one (tokenizer.json and
    tokenizer_config.json): byte-level BPE with a BOS post-processor, or a WordLevel
    (whitespace words, an unknown token, clean-up of spaces before punctuation)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    if kind == "bpe":
        raw = Tokenizer(models.BPE())
        raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        raw.decoder = decoders.ByteLevel()
        trainer: Any = trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
    else:
        raw = Tokenizer(models.WordLevel(unk_token="<unk>"))
        raw.pre_tokenizer = pre_tokenizers.Whitespace()
        raw.decoder = decoders.WordPiece()
        trainer = trainers.WordLevelTrainer(special_tokens=specials, show_progress=False)
    raw.train_from_iterator(CORPUS * 3, trainer)
    # BOS on every encoding that asks for special tokens: the bench must not count it.
    raw.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", raw.token_to_id("<s>"))]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        **config,
    )
    fast.save_pretrained(path)
    return path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    where = tmp_path / "cache"
    monkeypatch.setenv("ANYIO_LLMREQ_CACHE_DIR", str(where))
    monkeypatch.delenv("ANYIO_LLMREQ_TOKENIZER_CACHE", raising=False)
    return where


def id_sequences(vocab: int, total: int) -> list[list[int]]:
    rng = random.Random(0)
    return [[rng.randrange(vocab) for _ in range(n)] for n in (1, 5, 40, 200)] + [
        list(range(total))
    ]


@pytest.mark.parametrize(
    ("kind", "config"),
    [
        ("bpe", {}),
        ("wordlevel", {}),
        ("wordlevel", {"clean_up_tokenization_spaces": True}),
    ],
)
def test_the_cached_tokenizer_counts_exactly_as_transformers(
    tmp_path: Path, cache: Path, kind: str, config: dict[str, Any]
) -> None:
    from transformers import AutoTokenizer

    path = build(tmp_path / "tok", kind, **config)
    first = load_token_counter(str(path))
    assert isinstance(first, HFTokenCounter)  # nothing cached yet: transformers
    second = load_token_counter(str(path))
    assert isinstance(second, FastTokenCounter)
    tok = AutoTokenizer.from_pretrained(str(path))
    for text in TEXTS:
        want = list(tok(text, add_special_tokens=False).input_ids)
        assert second.encode(text) == first.encode(text) == want, text
        assert second.count(text) == first.count(text) == len(want)
        # The bench counts without BOS, as HFTokenCounter always has.
        if text:
            assert len(tok(text).input_ids) == len(want) + 1
    assert second.vocab_size == first.vocab_size == tok.vocab_size
    for ids in id_sequences(tok.vocab_size, len(tok)):
        assert second.decode(ids) == first.decode(ids) == tok.decode(ids)
    assert second.apply_chat_template("hi") is None


def test_a_cached_tokenizer_loads_without_transformers(tmp_path: Path, cache: Path) -> None:
    path = build(tmp_path / "tok", "bpe")
    load_token_counter(str(path))
    save_pending()
    code = f"""
        import sys
        from anyio_llmreq.bench._tokens import load_token_counter
        counter = load_token_counter({str(path)!r})
        print(type(counter).__name__, "transformers" in sys.modules, counter.count("a b c"))
    """
    env = {"ANYIO_LLMREQ_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1", "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=60, env=env, check=True,
    ).stdout.split()  # fmt: skip
    assert out[:2] == ["FastTokenCounter", "False"]
    assert int(out[2]) == load_token_counter(str(path)).count("a b c")


def test_changed_files_miss_the_cache(tmp_path: Path, cache: Path) -> None:
    path = build(tmp_path / "tok", "wordlevel")
    load_token_counter(str(path))
    assert isinstance(load_token_counter(str(path)), FastTokenCounter)
    config_file = path / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config["clean_up_tokenization_spaces"] = True
    config_file.write_text(json.dumps(config))
    changed = load_token_counter(str(path))
    assert isinstance(changed, HFTokenCounter)
    again = load_token_counter(str(path))
    assert isinstance(again, FastTokenCounter)
    assert again.decode(again.encode("a , b .")) == changed.decode(changed.encode("a , b ."))


def test_chat_templates_go_through_transformers(tmp_path: Path, cache: Path) -> None:
    path = build(tmp_path / "tok", "bpe", chat_template=CHAT_TEMPLATE)
    want = load_token_counter(str(path))
    assert isinstance(want, HFTokenCounter)
    fast = load_token_counter(str(path))
    assert isinstance(fast, FastTokenCounter)
    assert fast.apply_chat_template("hi") == want.apply_chat_template("hi")
    assert fast.apply_chat_template("hi") == "<|im_start|>user\nhi<|im_end|>\n"


def test_tokenizers_that_split_special_tokens_are_not_cached(tmp_path: Path, cache: Path) -> None:
    path = build(tmp_path / "tok", "bpe", split_special_tokens=True)
    load_token_counter(str(path))
    assert isinstance(load_token_counter(str(path)), HFTokenCounter)


@pytest.mark.parametrize("mode", ["slow", "off"])
def test_only_auto_mode_with_the_cache_on_uses_it(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    path = build(tmp_path / "tok", "bpe")
    load_token_counter(str(path))
    if mode == "off":
        monkeypatch.setenv("ANYIO_LLMREQ_TOKENIZER_CACHE", "0")
        assert isinstance(load_token_counter(str(path)), HFTokenCounter)
    else:
        assert isinstance(load_token_counter(str(path), "slow"), HFTokenCounter)


def test_a_broken_cache_entry_falls_back_to_transformers(tmp_path: Path, cache: Path) -> None:
    path = build(tmp_path / "tok", "bpe")
    load_token_counter(str(path))
    save_pending()
    (entry,) = (cache / "tokenizers").iterdir()
    (entry / "tokenizer.json").write_text("{not json")
    assert isinstance(load_token_counter(str(path)), HFTokenCounter)


def entries(cache: Path) -> list[Path]:
    where = cache / "tokenizers"
    return sorted(where.iterdir()) if where.exists() else []


def test_the_cache_is_written_after_the_load_not_on_the_way(tmp_path: Path, cache: Path) -> None:
    # Checking and saving a large tokenizer takes about half a second: not before the
    # first request. The next load (a sweep's next point) saves it first, and uses it.
    path = build(tmp_path / "tok", "bpe")
    assert isinstance(load_token_counter(str(path)), HFTokenCounter)
    assert entries(cache) == []
    save_pending()
    assert len(entries(cache)) == 1
    save_pending()  # nothing left: a no-op
    assert isinstance(load_token_counter(str(path)), FastTokenCounter)


def test_a_process_that_loaded_through_transformers_saves_the_cache_at_exit(
    tmp_path: Path, cache: Path
) -> None:
    path = build(tmp_path / "tok", "bpe")
    code = f"""
        import os
        from anyio_llmreq.bench._tokens import load_token_counter
        counter = load_token_counter({str(path)!r})
        print(type(counter).__name__, os.path.exists({str(cache / "tokenizers")!r}))
    """
    env = {"ANYIO_LLMREQ_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1", "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=60, env=env, check=True,
    ).stdout.split()  # fmt: skip
    assert out == ["HFTokenCounter", "False"]  # nothing written while it ran
    assert len(entries(cache)) == 1  # written at exit
    assert isinstance(load_token_counter(str(path)), FastTokenCounter)
