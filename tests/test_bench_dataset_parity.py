"""The random, prefix repetition, ShareGPT, sonnet and custom datasets build vLLM's
prompts for the same seed and tokenizer.

Each expected value is computed here from the tokenizer itself (transformers' API and
Python's and numpy's generators, drawn as ``vllm bench serve`` draws them), never with
the samplers' own helpers. Two small tokenizers are trained in a fixture: a byte-level
BPE, whose decoded ids often encode back to a different length (so the re-encoding
loop runs), and a word-level one, whose ids always come back as they were (so lengths
are exact); both add ``<s>`` and ``</s>`` to every text they encode with special
tokens, and both have a chat template (a copy of the word-level one has none).
"""

from __future__ import annotations

import contextlib
import json
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from anyio_llmreq.bench._config import UsageError
from anyio_llmreq.bench._datasets import (
    SampleRequest,
    sample_custom,
    sample_prefix_repetition,
    sample_random,
    sample_sharegpt,
    sample_sonnet,
)
from anyio_llmreq.bench._tokens import (
    FastTokenCounter,
    HFTokenCounter,
    WordCounter,
    load_token_counter,
)

SPECIALS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
WORDS = (
    "shall i compare thee to a summers day thou art more lovely and temperate rough winds "
    "do shake the darling buds of may summers lease hath all too short date sometime hot "
    "eye heaven shines often is his gold complexion dimmed every fair from declines by "
    "chance or natures changing course untrimmed but thy eternal summer not fade nor lose "
    "possession that owest death brag wanderest in shade when lines time growest so long "
    "as men can breathe eyes see lives this gives life pick many you these poem"
).split()
CORPUS = [" ".join(WORDS[i : i + 12]) for i in range(0, len(WORDS), 12)]
BASE = "Pick as many lines as you can from these poem lines:\n"


def _build(path: Path, kind: str, chat_template: str | None) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if kind == "bpe":
        raw = Tokenizer(models.BPE())
        raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        raw.decoder = decoders.ByteLevel()
        trainer: Any = trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=SPECIALS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
    else:
        raw = Tokenizer(models.WordLevel(unk_token="<unk>"))
        raw.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.WordLevelTrainer(special_tokens=SPECIALS, show_progress=False)
    raw.train_from_iterator(CORPUS * 3, trainer)
    bos, eos = raw.token_to_id("<s>"), raw.token_to_id("</s>")
    raw.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> $B </s>",
        special_tokens=[("<s>", bos), ("</s>", eos)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        additional_special_tokens=SPECIALS[3:],
        chat_template=chat_template,
        clean_up_tokenization_spaces=False,
    )
    fast.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("parity-tok")
    return {
        "bpe": _build(root / "bpe", "bpe", CHAT_TEMPLATE),
        "word": _build(root / "word", "word", CHAT_TEMPLATE),
        "plain": _build(root / "plain", "word", None),
    }


@pytest.fixture(scope="module")
def toks(dirs: dict[str, Path]) -> dict[str, Any]:
    from transformers import AutoTokenizer

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        return {name: AutoTokenizer.from_pretrained(str(path)) for name, path in dirs.items()}


@pytest.fixture(scope="module")
def counters(toks: dict[str, Any]) -> dict[str, HFTokenCounter]:
    return {name: HFTokenCounter(tok, name) for name, tok in toks.items()}


@contextlib.contextmanager
def global_generators() -> Iterator[None]:
    """vLLM draws from Python's and numpy's global generators: the references here do
    too, and leave them as they found them."""
    py, legacy = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(legacy)


def triples(requests: list[SampleRequest]) -> list[tuple[Any, int, int]]:
    return [(r.prompt, r.prompt_len, r.expected_output_len) for r in requests]


def test_the_tokenizers_add_special_tokens(toks: dict[str, Any]) -> None:
    for tok in toks.values():
        assert tok.num_special_tokens_to_add() == 2
        assert tok("thee").input_ids[0] == tok.bos_token_id
        assert sorted(tok.all_special_ids) == [0, 1, 2, 3, 4]


# -- random ---------------------------------------------------------------------------


def _lengths(
    tok: Any, n: int, input_len: int, output_len: int, ratio: float, seed: int
) -> tuple[list[int], list[int]]:
    """The first draws of vLLM's RandomDataset: input lengths (special tokens taken off,
    floor/ceil bounds), then output lengths."""
    rng = np.random.default_rng(seed)
    real = max(0, input_len - tok.num_special_tokens_to_add())
    ins = rng.integers(math.floor(real * (1 - ratio)), math.ceil(real * (1 + ratio)) + 1, size=n)
    low = max(math.floor(output_len * (1 - ratio)), 1)
    high = max(math.ceil(output_len * (1 + ratio)), 1)
    outs = rng.integers(low, high + 1, size=n)
    return [int(x) for x in ins], [int(x) for x in outs]


def _vllm_random(
    tok: Any, n: int, input_len: int, output_len: int, ratio: float, prefix_len: int, seed: int
) -> list[tuple[str, int, int]]:
    """What vLLM's RandomDataset samples, step by step on the transformers tokenizer."""
    return _vllm_random_and_retries(tok, n, input_len, output_len, ratio, prefix_len, seed)[0]


def _vllm_random_and_retries(
    tok: Any, n: int, input_len: int, output_len: int, ratio: float, prefix_len: int, seed: int
) -> tuple[list[tuple[str, int, int]], int]:
    rng = np.random.default_rng(seed)
    real = max(0, input_len - tok.num_special_tokens_to_add())
    ins = rng.integers(math.floor(real * (1 - ratio)), math.ceil(real * (1 + ratio)) + 1, size=n)
    low = max(math.floor(output_len * (1 - ratio)), 1)
    high = max(math.ceil(output_len * (1 + ratio)), 1)
    outs = rng.integers(low, high + 1, size=n)
    offsets = rng.integers(0, tok.vocab_size, size=n)
    allowed = np.array(list(set(np.arange(tok.vocab_size)) - set(tok.all_special_ids)))
    prefix = allowed[rng.integers(0, len(allowed), size=prefix_len)].tolist() if prefix_len else []
    samples = []
    retries = 0
    for i in range(n):
        seq = prefix + allowed[(offsets[i] + i + np.arange(ins[i])) % len(allowed)].tolist()
        target = prefix_len + int(ins[i])
        for attempt in range(11):
            prompt = tok.decode(seq)
            seq = tok.encode(prompt, add_special_tokens=False)
            if attempt == 10 or len(seq) == target:
                break
            retries += 1
            if len(seq) < target:
                seq = seq + rng.integers(0, tok.vocab_size, size=target - len(seq)).tolist()
            else:
                seq = seq[:target]
        samples.append((prompt, len(seq), int(outs[i])))
    return samples, retries


@pytest.mark.parametrize(("ratio", "prefix_len"), [(0.0, 0), (0.5, 0), (0.3, 7)])
def test_random_prompts_have_exactly_the_drawn_lengths(
    toks: dict[str, Any], counters: dict[str, HFTokenCounter], ratio: float, prefix_len: int
) -> None:
    tok, counter = toks["word"], counters["word"]
    reqs = sample_random(
        counter, 30, input_len=22, output_len=9, range_ratio=ratio, prefix_len=prefix_len,
        seed=7, request_id_prefix="r-",
    )  # fmt: skip
    ins, outs = _lengths(tok, 30, 22, 9, ratio, seed=7)
    assert [r.prompt_len for r in reqs] == [prefix_len + n for n in ins]
    assert [r.expected_output_len for r in reqs] == outs
    assert [r.request_id for r in reqs[:2]] == ["r-0", "r-1"]
    special = set(tok.all_special_ids)
    for r in reqs:
        ids = tok.encode(r.prompt, add_special_tokens=False)
        assert len(ids) == r.prompt_len
        assert not special & set(ids)
    if ratio == 0.0:
        assert {r.prompt_len for r in reqs} == {20}  # 22 less <s> and </s>
    else:
        assert len({r.prompt_len for r in reqs}) > 3
    if prefix_len:
        heads = {tuple(tok.encode(r.prompt, add_special_tokens=False)[:prefix_len]) for r in reqs}
        assert len(heads) == 1
    assert triples(reqs) == _vllm_random(tok, 30, 22, 9, ratio, prefix_len, seed=7)


def test_random_prompts_are_vllms_through_the_reencoding_loop(
    toks: dict[str, Any], counters: dict[str, HFTokenCounter]
) -> None:
    tok, counter = toks["bpe"], counters["bpe"]
    for seed in (0, 1):
        reqs = sample_random(
            counter, 25, input_len=40, output_len=12, range_ratio=0.5, prefix_len=5, seed=seed
        )
        want, retries = _vllm_random_and_retries(tok, 25, 40, 12, 0.5, 5, seed)
        assert triples(reqs) == want
        # Byte-level ids decode to text that encodes to other lengths: the loop ran,
        # topping prompts up from the same generator.
        assert retries > 0
        ins, _ = _lengths(tok, 25, 40, 12, 0.5, seed)
        assert [len(tok.encode(r.prompt, add_special_tokens=False)) for r in reqs] == [
            r.prompt_len for r in reqs
        ]
        assert sum(r.prompt_len == 5 + n for r, n in zip(reqs, ins, strict=True)) >= 10
    a = sample_random(counter, 5, input_len=30, seed=3)
    assert a == sample_random(counter, 5, input_len=30, seed=3)
    assert [r.prompt for r in a] != [
        r.prompt for r in sample_random(counter, 5, input_len=30, seed=4)
    ]


def test_random_batches_for_embeddings(counters: dict[str, HFTokenCounter]) -> None:
    counter = counters["word"]
    single = sample_random(counter, 7, input_len=12, output_len=5, range_ratio=0.4, seed=2)
    batched = sample_random(
        counter, 7, input_len=12, output_len=5, range_ratio=0.4, batch_size=3, seed=2,
        request_id_prefix="e",
    )  # fmt: skip
    assert [r.request_id for r in batched] == ["e0", "e1", "e2"]
    assert [r.prompt for r in batched] == [
        [r.prompt for r in single[0:3]],
        [r.prompt for r in single[3:6]],
        [single[6].prompt],
    ]
    assert [r.prompt_len for r in batched] == [
        sum(r.prompt_len for r in single[0:3]),
        sum(r.prompt_len for r in single[3:6]),
        single[6].prompt_len,
    ]
    assert {r.expected_output_len for r in batched} == {0}


def test_random_refuses_an_input_length_the_special_tokens_use_up(
    counters: dict[str, HFTokenCounter],
) -> None:
    with pytest.raises(UsageError) as err:
        sample_random(counters["word"], 3, input_len=2, output_len=4)
    assert err.value.where == "--random-input-len"
    # A prefix makes up for it, as in vLLM.
    reqs = sample_random(counters["word"], 3, input_len=2, output_len=4, prefix_len=3)
    assert [r.prompt_len for r in reqs] == [3, 3, 3]
    with pytest.raises(UsageError) as err:
        sample_random(counters["word"], 3, input_len=20, range_ratio=1.0)
    assert err.value.where == "--random-range-ratio"


def test_random_with_whitespace_words() -> None:
    words = WordCounter()
    reqs = sample_random(words, 20, input_len=30, output_len=5, range_ratio=0.5, seed=1)
    ins, outs = _lengths(_NoSpecials(), 20, 30, 5, 0.5, seed=1)
    assert [r.prompt_len for r in reqs] == ins
    assert [len(r.prompt.split()) for r in reqs] == ins
    assert [r.expected_output_len for r in reqs] == outs


class _NoSpecials:
    def num_special_tokens_to_add(self) -> int:
        return 0


# -- prefix repetition ----------------------------------------------------------------


def _vllm_prefix_repetition(
    tok: Any, n: int, prefix_len: int, suffix_len: int, num_prefixes: int, seed: int
) -> list[tuple[str, int, int]]:
    """vLLM's PrefixRepetitionRandomDataset on the global generators, seeded as its
    constructor seeds them."""
    with global_generators():
        random.seed(seed)
        np.random.seed(seed)

        def exact(length: int) -> list[int]:
            seq = np.random.randint(0, tok.vocab_size, size=length).tolist()
            for attempt in range(11):
                seq = tok.encode(tok.decode(seq), add_special_tokens=False)
                if attempt == 10 or len(seq) == length:
                    break
                if len(seq) < length:
                    seq += np.random.randint(0, tok.vocab_size, size=length - len(seq)).tolist()
                else:
                    seq = seq[:length]
            return list(seq)

        samples = []
        for _ in range(num_prefixes):
            prefix = exact(prefix_len)
            for _ in range(n // num_prefixes):
                ids = prefix + exact(suffix_len)
                samples.append((tok.decode(ids), len(ids), 11))
        random.shuffle(samples)
    return samples


def test_prefix_repetition_is_vllms(
    toks: dict[str, Any], counters: dict[str, HFTokenCounter]
) -> None:
    for name in ("word", "bpe"):
        reqs = sample_prefix_repetition(
            counters[name], 11, prefix_len=9, suffix_len=5, num_prefixes=3, output_len=11,
            seed=4, request_id_prefix="p",
        )  # fmt: skip
        assert triples(reqs) == _vllm_prefix_repetition(toks[name], 11, 9, 5, 3, seed=4)
        # 11 // 3 prompts for each prefix: 9, not 11.
        assert [r.request_id for r in reqs] == [f"p{i}" for i in range(9)]
    tok = toks["word"]
    ordered = sample_prefix_repetition(
        counters["word"], 6, prefix_len=4, suffix_len=3, num_prefixes=2, output_len=1,
        shuffle=False,
    )  # fmt: skip
    heads = [tuple(tok.encode(r.prompt, add_special_tokens=False)[:4]) for r in ordered]
    assert heads[0] == heads[1] == heads[2] != heads[3] == heads[4] == heads[5]
    assert {r.prompt_len for r in ordered} == {7}


def test_prefix_repetition_needs_a_prompt_per_prefix(counters: dict[str, HFTokenCounter]) -> None:
    for counter in (counters["word"], WordCounter()):
        with pytest.raises(UsageError) as err:
            sample_prefix_repetition(counter, 2, prefix_len=3, suffix_len=3, num_prefixes=3)
        assert err.value.where == "--prefix-repetition-num-prefixes"
    reqs = sample_prefix_repetition(WordCounter(), 7, prefix_len=3, suffix_len=2, num_prefixes=3)
    assert len(reqs) == 6 and {r.prompt_len for r in reqs} == {5}


# -- ShareGPT -------------------------------------------------------------------------


def _conversation(prompt: str, reply: str) -> dict[str, Any]:
    return {"conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": reply}]}


def _sharegpt_file(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    data = [
        _conversation(" ".join(WORDS[i : i + 2 + i % 5]), " ".join(WORDS[i : i + 3 + i % 4]))
        for i in range(0, 60, 3)
    ]
    data.insert(4, {"conversations": [{"from": "human", "value": "only one turn"}]})
    data.insert(9, {"id": "no conversations"})
    path = tmp_path / "sg.json"
    path.write_text(json.dumps(data))
    return path, data


def _vllm_sharegpt(
    tok: Any,
    data: list[dict[str, Any]],
    n: int,
    seed: int,
    output_len: int | None = None,
    shuffle: bool = True,
    oversample: bool = True,
) -> list[tuple[str, int, int]]:
    entries = [e for e in data if "conversations" in e and len(e["conversations"]) >= 2]
    with global_generators():
        random.seed(seed)
        if shuffle:
            random.shuffle(entries)
        samples: list[tuple[str, int, int]] = []
        for e in entries:
            if len(samples) >= n:
                break
            prompt, reply = e["conversations"][0]["value"], e["conversations"][1]["value"]
            prompt_len = len(tok(prompt).input_ids)
            out = len(tok(reply).input_ids) if output_len is None else output_len
            if prompt_len < 4 or (output_len is None and out < 4):
                continue
            if prompt_len > 1024 or prompt_len + out > 2048:
                continue
            samples.append((prompt, prompt_len, out))
        if oversample and len(samples) < n:
            random.seed(seed)
            samples += [random.choice(samples) for _ in range(n - len(samples))]
    return samples


def test_sharegpt_counts_with_special_tokens_as_vllm(
    tmp_path: Path, toks: dict[str, Any], counters: dict[str, HFTokenCounter]
) -> None:
    path, data = _sharegpt_file(tmp_path)
    tok, counter = toks["word"], counters["word"]
    reqs = sample_sharegpt(counter, 30, str(path), seed=5, request_id_prefix="s")
    want = _vllm_sharegpt(tok, data, 30, seed=5)
    assert triples(reqs) == want
    assert [r.request_id for r in reqs] == [f"s{i}" for i in range(30)]
    # Two-word prompts count 4 with <s> and </s>: vLLM keeps them.
    two = [
        e["conversations"][0]["value"]
        for e in data
        if len(e.get("conversations", [])) >= 2
        and len(tok.encode(e["conversations"][0]["value"], add_special_tokens=False)) == 2
    ]
    assert two and set(two) <= {p for p, _, _ in want}
    assert all(r.prompt_len == len(tok(r.prompt).input_ids) for r in reqs)
    # Another seed, another order.
    assert triples(sample_sharegpt(counter, 30, str(path), seed=6)) == _vllm_sharegpt(
        tok, data, 30, seed=6
    )
    fixed = sample_sharegpt(counter, 5, str(path), output_len=2, seed=5)
    assert triples(fixed) == _vllm_sharegpt(tok, data, 5, seed=5, output_len=2)
    assert {r.expected_output_len for r in fixed} == {2}


def test_sharegpt_order_and_oversampling_flags(
    tmp_path: Path, toks: dict[str, Any], counters: dict[str, HFTokenCounter]
) -> None:
    path, data = _sharegpt_file(tmp_path)
    tok, counter = toks["bpe"], counters["bpe"]
    in_order = sample_sharegpt(counter, 30, str(path), seed=5, shuffle=False)
    assert triples(in_order) == _vllm_sharegpt(tok, data, 30, seed=5, shuffle=False)
    firsts = [e["conversations"][0]["value"] for e in data if len(e.get("conversations", [])) > 1]
    prompts = [r.prompt for r in in_order]
    usable = len(set(prompts))
    assert prompts[:usable] == [p for p in firsts if p in set(prompts)]
    few = sample_sharegpt(counter, 30, str(path), seed=5, oversample=False)
    assert triples(few) == _vllm_sharegpt(tok, data, 30, seed=5, oversample=False)
    assert len(few) == usable < 30
    assert len(sample_sharegpt(counter, 30, str(path), seed=5)) == 30


def test_sharegpt_media_paths(tmp_path: Path) -> None:
    record = _conversation("a b c d e", "f g h i j")
    path = tmp_path / "mm.json"
    path.write_text(json.dumps([{**record, "image": "/data/cat.png"}]))
    (req,) = sample_sharegpt(WordCounter(), 1, str(path))
    assert req.multi_modal_data == {
        "type": "image_url",
        "image_url": {"url": "file:///data/cat.png"},
    }


# -- sonnet ---------------------------------------------------------------------------


def _poem(tmp_path: Path) -> tuple[Path, list[str]]:
    # Mostly short lines, every fourth a long one: some draws run over the length.
    lines = [" ".join(WORDS[i : i + (20 if i % 4 == 1 else 2)]) + "\n" for i in range(40)]
    path = tmp_path / "sonnet.txt"
    path.write_text("".join(lines))
    return path, lines


def _template(tok: Any, text: str) -> str:
    return str(
        tok.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
        )
    )


def _vllm_sonnet(
    tok: Any, lines: list[str], n: int, input_len: int, prefix_len: int, seed: int, chat: bool
) -> tuple[list[tuple[str, int, int]], int]:
    """vLLM's SonnetDataset, and how many prompts it drew and threw away."""
    avg = sum(len(tok(line).input_ids) for line in lines) / len(lines)
    base_offset = len(tok(_template(tok, BASE)).input_ids)
    num_input = round((input_len - base_offset) / avg)
    num_prefix = max(round((prefix_len - base_offset) / avg), 0)
    samples: list[tuple[str, int, int]] = []
    rejected = 0
    with global_generators():
        random.seed(seed)  # vLLM's benchmark seeds the global generator with --seed
        while len(samples) < n:
            extra = random.choices(lines, k=num_input - num_prefix)
            prompt = BASE + "".join(lines[:num_prefix] + extra)
            formatted = _template(tok, prompt)
            length = len(tok(formatted).input_ids)
            if length <= input_len:
                samples.append((formatted if chat else prompt, length, 13))
            else:
                rejected += 1
    return samples, rejected


def test_sonnet_measures_the_instruction_in_chat_form_and_rejects_long_prompts(
    tmp_path: Path, toks: dict[str, Any], counters: dict[str, HFTokenCounter]
) -> None:
    path, lines = _poem(tmp_path)
    tok, counter = toks["word"], counters["word"]
    templated = len(tok(_template(tok, BASE)).input_ids)
    plain = len(tok(BASE).input_ids)
    assert templated > plain
    for chat in (True, False):
        reqs = sample_sonnet(
            counter, 12, str(path), input_len=60, output_len=13, prefix_len=30,
            chat_template=chat, seed=3, request_id_prefix="q",
        )  # fmt: skip
        want, rejected = _vllm_sonnet(tok, lines, 12, 60, 30, seed=3, chat=chat)
        assert triples(reqs) == want
        assert rejected > 0  # some drew lines too long and were drawn again
        assert all(r.prompt_len <= 60 for r in reqs)
        assert [r.request_id for r in reqs] == [f"q{i}" for i in range(12)]
        assert all(r.prompt.startswith("<|im_start|>user\nPick") == chat for r in reqs)
    # The lines per prompt follow from the templated instruction's length.
    avg = sum(len(tok(line).input_ids) for line in lines) / len(lines)
    lines_in = round((65 - templated) / avg)
    assert lines_in != round((65 - plain) / avg)
    (one,) = sample_sonnet(
        counter, 1, str(path), input_len=65, output_len=1, prefix_len=0, chat_template=False
    )
    assert one.prompt.count("\n") == 1 + lines_in
    with pytest.raises(UsageError) as err:
        sample_sonnet(counter, 1, str(path), input_len=templated, output_len=1, prefix_len=0)
    assert err.value.where == "--sonnet-input-len"
    assert str(templated) in str(err.value)


def test_sonnet_needs_a_chat_template_unless_the_backend_is_chat(
    tmp_path: Path, toks: dict[str, Any], counters: dict[str, HFTokenCounter]
) -> None:
    path, lines = _poem(tmp_path)
    with pytest.raises(UsageError) as err:
        sample_sonnet(
            counters["plain"], 2, str(path), input_len=70, prefix_len=10, chat_template=True
        )
    assert "chat template" in str(err.value) and "openai-chat" in str(err.value)
    # Plain prompts (openai-chat) need none: lengths are the plain prompt's.
    reqs = sample_sonnet(
        counters["plain"], 3, str(path), input_len=60, prefix_len=10, chat_template=False
    )
    assert all(r.prompt.startswith(BASE) for r in reqs)
    assert all(r.prompt_len == len(toks["plain"](r.prompt).input_ids) <= 60 for r in reqs)
    # Whitespace words have no template and no special tokens: plain prompts, no error.
    words = sample_sonnet(WordCounter(), 3, str(path), input_len=60, prefix_len=20)
    assert all(r.prompt.startswith(BASE) and r.prompt_len == len(r.prompt.split()) for r in words)
    assert all(r.prompt_len <= 60 for r in words)


# -- custom ---------------------------------------------------------------------------


def _custom_file(tmp_path: Path, with_output: bool = True) -> tuple[Path, list[dict[str, Any]]]:
    rows = []
    for i in range(8):
        row: dict[str, Any] = {"prompt": " ".join(WORDS[i * 3 : i * 3 + 2 + i])}
        if with_output:
            row["output_tokens"] = 10 + i
        rows.append(row)
    path = tmp_path / "custom.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows


def _vllm_custom(
    tok: Any, rows: list[dict[str, Any]], n: int, output_len: int, chat: bool,
    shuffle: bool = True,
) -> list[tuple[str, int, int]]:  # fmt: skip
    rows = list(rows)
    with global_generators():
        random.seed(0)  # the custom dataset keeps its default seed, whatever --seed is
        if shuffle:
            random.shuffle(rows)
        samples = []
        for row in rows[:n]:
            out = int(row["output_tokens"]) if output_len == -1 else output_len
            prompt = _template(tok, row["prompt"]) if chat else row["prompt"]
            samples.append((prompt, len(tok(prompt).input_ids), out))
        if len(samples) < n:
            random.seed(0)
            samples += [random.choice(samples) for _ in range(n - len(samples))]
    return samples


def test_custom_output_length_chat_template_and_order(
    tmp_path: Path, toks: dict[str, Any], counters: dict[str, HFTokenCounter]
) -> None:
    path, rows = _custom_file(tmp_path)
    tok, counter = toks["word"], counters["word"]
    # --custom-output-len wins over the lines' output_tokens; the chat template applies.
    reqs = sample_custom(counter, 5, str(path), output_len=7, chat_template=True, seed=9)
    assert triples(reqs) == _vllm_custom(tok, rows, 5, 7, chat=True)
    assert {r.expected_output_len for r in reqs} == {7}
    assert all(r.prompt.startswith("<|im_start|>user\n") for r in reqs)
    # The seed doesn't reach vLLM's custom dataset: the same prompts for every seed.
    assert reqs == sample_custom(counter, 5, str(path), output_len=7, chat_template=True, seed=1)
    # -1: each line's own output_tokens; --skip-chat-template: the prompt as it is,
    # counted with <s> and </s>.
    own = sample_custom(counter, 12, str(path), output_len=-1, chat_template=False)
    assert triples(own) == _vllm_custom(tok, rows, 12, -1, chat=False)
    assert len(own) == 12 and {r.expected_output_len for r in own} <= set(range(10, 18))
    assert own[0].prompt_len == len(tok.encode(own[0].prompt, add_special_tokens=False)) + 2
    in_order = sample_custom(
        counter, 8, str(path), output_len=-1, chat_template=False, shuffle=False
    )
    assert [r.prompt for r in in_order] == [r["prompt"] for r in rows]
    assert [r.expected_output_len for r in in_order] == [r["output_tokens"] for r in rows]
    few = sample_custom(counter, 12, str(path), output_len=3, chat_template=False, oversample=False)
    assert len(few) == 8
    assert len(sample_custom(counter, 0, str(path), output_len=3, chat_template=False)) == 8


def test_custom_errors_and_whitespace_words(
    tmp_path: Path, counters: dict[str, HFTokenCounter]
) -> None:
    path, _ = _custom_file(tmp_path, with_output=False)
    with pytest.raises(UsageError) as err:
        sample_custom(counters["word"], 3, str(path), output_len=-1, chat_template=False)
    assert "output_tokens" in str(err.value) and err.value.where == f"--dataset-path {path}"
    with pytest.raises(UsageError) as err:
        sample_custom(counters["plain"], 3, str(path), output_len=4, chat_template=True)
    assert "chat template" in str(err.value) and "--skip-chat-template" in str(err.value)
    assert (
        len(sample_custom(counters["plain"], 3, str(path), output_len=4, chat_template=False)) == 3
    )
    # No tokenizer: no template, no error; words counted.
    words = sample_custom(WordCounter(), 3, str(path), output_len=4, chat_template=True)
    assert all(
        r.prompt_len == len(r.prompt.split()) and "<|im_start|>" not in r.prompt for r in words
    )


# -- the cached tokenizer -------------------------------------------------------------


def test_the_cached_tokenizer_samples_as_transformers(
    tmp_path: Path, dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANYIO_LLMREQ_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("ANYIO_LLMREQ_TOKENIZER_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sg, _ = _sharegpt_file(tmp_path)
    poem, _ = _poem(tmp_path)
    custom, _ = _custom_file(tmp_path)
    for name in ("bpe", "word"):
        first = load_token_counter(str(dirs[name]))
        second = load_token_counter(str(dirs[name]))
        assert isinstance(first, HFTokenCounter) and isinstance(second, FastTokenCounter)
        assert tuple(second.all_special_ids) == tuple(first.all_special_ids)
        assert second.num_special_tokens_to_add() == first.num_special_tokens_to_add() == 2
        for counter_run in (
            lambda c: sample_random(c, 10, input_len=30, range_ratio=0.5, prefix_len=3, seed=2),
            lambda c: sample_prefix_repetition(c, 4, prefix_len=5, suffix_len=5, num_prefixes=2),
            lambda c: sample_sharegpt(c, 8, str(sg), seed=1),
            lambda c: sample_sonnet(c, 3, str(poem), input_len=70, prefix_len=20, seed=1),
            lambda c: sample_custom(c, 4, str(custom), output_len=-1),
        ):
            assert counter_run(second) == counter_run(first)
