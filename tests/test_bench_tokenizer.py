"""The bench counts tokens with a real local tokenizer when the server sends no usage."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from anyio_llmreq._tokenizer import MistralTokenizerAdapter
from anyio_llmreq.bench import BenchConfig, run_benchmark
from anyio_llmreq.bench._tokens import HFTokenCounter, load_token_counter
from anyio_llmreq.testing import MockBehaviour, MockServerThread
from anyio_llmreq.testing._tokens import token_words

NUM_PROMPTS = 10


# No test here may reach the hub: see the fixture in conftest.py.
pytestmark = pytest.mark.usefixtures("hf_offline")


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small BPE trained on the mock's output words: most words are several tokens, so
    token counts differ from the whitespace-word counts the mock would report."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = ["".join(token_words(n)) for n in range(1, 40)]
    raw = Tokenizer(models.BPE(unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(
        special_tokens=["[UNK]", "<s>", "</s>"], vocab_size=30, show_progress=False
    )
    raw.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=raw, unk_token="[UNK]", bos_token="<s>", eos_token="</s>"
    )
    path = tmp_path_factory.mktemp("bench-tok")
    fast.save_pretrained(path)
    return path


def _count(tok: Any, text: str) -> int:
    return len(tok(text, add_special_tokens=False).input_ids)


def test_run_benchmark_counts_with_a_local_tokenizer(tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    with MockServerThread(MockBehaviour(usage=False)) as server:
        result = run_benchmark(
            BenchConfig(
                base_url=server.base_url,
                tokenizer=str(tokenizer_dir),
                num_prompts=NUM_PROMPTS,
                random_input_len=16,
                random_output_len=8,
                request_rate=float("inf"),
                disable_tqdm=True,
                quiet=True,
                save_detailed=True,
            )
        )
        sent = {
            r.header("x-request-id"): r.json["prompt"]
            for r in server.requests
            if r.path == "/v1/completions"
        }
    records = result.records
    assert [r.output.success for r in records] == [True] * NUM_PROMPTS
    # No usage from the server: every output count is the tokenizer's.
    assert all(r.output.output_tokens == 0 for r in records)
    assert result.input_tokens_source == "tokenizer"
    assert result.result["input_tokens_source"] == "tokenizer"
    assert result.result["output_tokens_source"] == {"tokenizer": NUM_PROMPTS}
    assert result.result["tokenizer_id"] == str(tokenizer_dir)
    assert any(line.endswith(f"tokenizer {tokenizer_dir}") for line in result.report)

    texts = [r.output.generated_text for r in records]
    assert all(texts)
    expected = [_count(tok, t) for t in texts]
    assert result.result["output_lens"] == expected
    assert result.metrics.total_output == sum(expected)
    # The tokenizer splits the mock's words, so these are not whitespace-word counts.
    assert sum(expected) > sum(len(t.split()) for t in texts)

    prompts = [sent[r.request_id] for r in records]
    assert result.result["input_lens"] == [_count(tok, p) for p in prompts]
    assert result.metrics.total_input == sum(_count(tok, p) for p in prompts)


def test_input_tokens_are_the_tokenizers_and_the_servers_count_is_beside(
    tokenizer_dir: Path, tmp_path: Path
) -> None:
    # The mock reports usage, counting whitespace words, which the tokenizer splits:
    # vLLM's total stays the tokenizer's, and the server's is reported beside it.
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    prompts = ["".join(token_words(n)).strip() for n in (5, 9, 14)]
    dataset = tmp_path / "prompts.jsonl"
    dataset.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    with MockServerThread(MockBehaviour(usage=True), record=False) as server:
        result = run_benchmark(
            BenchConfig(
                base_url=server.base_url, tokenizer=str(tokenizer_dir), dataset_name="custom",
                dataset_path=str(dataset), num_prompts=3, custom_output_len=4,
                # The prompts as they are (the tokenizer has no chat template), in order.
                skip_chat_template=True, disable_shuffle=True,
                request_rate=float("inf"), disable_tqdm=True, quiet=True, save_detailed=True,
            )
        )  # fmt: skip
    tokens = [_count(tok, p) for p in prompts]
    words = [len(p.split()) for p in prompts]
    assert [r.output.success for r in result.records] == [True] * 3
    assert sum(tokens) > sum(words)
    assert result.result["input_lens"] == tokens
    assert result.result["total_input_tokens"] == sum(tokens)
    assert result.result["input_lens_server"] == words
    assert result.result["total_input_tokens_server"] == sum(words)
    line = "{:<40} {:<10}".format("Total input tokens (server):", str(sum(words)))
    assert line in result.report


def test_the_bench_loads_tokenizers_through_get_tokenizer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # --tokenizer-mode mistral must reach get_tokenizer's mistral_common path, as in vLLM.
    from tests.test_tokenizer import fake_mistral_common

    loaded = fake_mistral_common(monkeypatch)
    (tmp_path / "tekken.json").write_text("{}")
    counter = load_token_counter(str(tmp_path), "mistral")
    assert isinstance(counter, HFTokenCounter)
    assert isinstance(counter.tokenizer, MistralTokenizerAdapter)
    assert loaded == [str(tmp_path / "tekken.json")]
    assert (counter.count("ab cde"), counter.encode("ab"), counter.vocab_size) == (2, [12], 100)
    assert counter.apply_chat_template("hi") is None


def test_the_bench_passes_a_gguf_path_to_get_tokenizer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_tokenizer import spy_auto_tokenizer

    monkeypatch.setitem(sys.modules, "gguf", types.ModuleType("gguf"))
    calls = spy_auto_tokenizer(monkeypatch)
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")
    counter = load_token_counter(str(path), "slow", trust_remote_code=True)
    assert counter.tokenizer == "tokenizer"
    assert calls == [
        (
            str(tmp_path),
            {"trust_remote_code": True, "use_fast": False, "gguf_file": "model.gguf"},
        )
    ]
