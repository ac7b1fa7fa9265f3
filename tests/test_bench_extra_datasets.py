"""The random-rerank, burstgpt, spec_bench and txt-slices datasets: prompts, lengths,
filters, seeds, flags and errors, in each dataset's real file format."""

from __future__ import annotations

import functools
import http.server
import json
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anyio_llmreq import RequestFuncInput
from anyio_llmreq.backends._registry import get_backend
from anyio_llmreq.bench._config import UsageError
from anyio_llmreq.bench._extra_datasets import (
    sample_burstgpt,
    sample_random_rerank,
    sample_spec_bench,
    sample_txt_slices,
)
from anyio_llmreq.bench._tokens import HFTokenCounter, WordCounter

from .mock_run import check_whole_body, run

WORDS = WordCounter()
SPECIAL = ("<unk>", "<s>", "</s>")


@pytest.fixture(scope="module")
def hf() -> HFTokenCounter:
    """A small byte-level BPE whose special tokens sit inside its vocabulary, which adds
    a BOS to every text, and which has a chat template: built here, nothing downloaded."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [
        "The quick brown fox jumps over the lazy dog.",
        "Speculative decoding drafts tokens and verifies them in one pass.",
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
    ] * 10
    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        special_tokens=list(SPECIAL),
        vocab_size=400,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    raw.train_from_iterator(corpus, trainer)
    bos = raw.token_to_id("<s>")
    raw.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=raw, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    tok.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    return HFTokenCounter(tok, "tiny-bpe")


def _usage_error(excinfo: pytest.ExceptionInfo[UsageError]) -> str:
    return str(excinfo.value)


# --- random-rerank ------------------------------------------------------------------------


def test_rerank_batches_one_query_with_documents() -> None:
    reqs = sample_random_rerank(
        WORDS, 7, input_len=20, batch_size=3, seed=0, request_id_prefix="r-"
    )
    assert [r.request_id for r in reqs] == ["r-0", "r-1", "r-2"]
    assert [len(r.prompt) for r in reqs] == [4, 4, 2]  # the query, then 3 + 3 + 1 documents
    query = reqs[0].prompt[0]
    assert all(r.prompt[0] == query for r in reqs)
    # The query takes half the pair less a separator token; the document the rest.
    assert WORDS.count(query) == 20 // 2 - 1
    docs = [d for r in reqs for d in r.prompt[1:]]
    assert len(set(docs)) == 7 and all(WORDS.count(d) == 10 for d in docs)
    for r in reqs:
        n_docs = len(r.prompt) - 1
        # The query and its separator count once per document.
        assert r.prompt_len == (9 + 1) * n_docs + sum(WORDS.count(d) for d in r.prompt[1:])
        assert r.expected_output_len == 0


def test_rerank_matches_vllm_for_a_seed() -> None:
    # Pinned from vLLM's RandomDatasetForReranking (same numpy draws, same layout).
    reqs = sample_random_rerank(WORDS, 3, input_len=8, batch_size=2, seed=0)
    assert [(r.prompt, r.prompt_len) for r in reqs] == [
        (["minute idea kid", "job word business issue", "point home water room"], 16),
        (["minute idea kid", "way day man thing"], 8),
    ]
    reqs = sample_random_rerank(
        WORDS, 3, input_len=8, range_ratio=0.5, batch_size=2, reranker=False, seed=1
    )
    query = "number night point home water room mother area"
    assert [(r.prompt, r.prompt_len) for r in reqs] == [
        ([query, "is was for on that with as by at from"], 18),
        ([query, "which or are not have but had his they one all were"], 20),
    ]


def test_no_reranker_makes_the_query_one_of_the_inputs() -> None:
    reqs = sample_random_rerank(WORDS, 7, input_len=20, batch_size=3, reranker=False, seed=0)
    # 6 documents, 2 to a request beside the query: each request has batch_size inputs.
    assert [len(r.prompt) for r in reqs] == [3, 3, 3]
    for r in reqs:
        assert all(WORDS.count(text) == 20 for text in r.prompt)
        assert r.prompt_len == 20 * 3  # the query counts once
    assert len({r.prompt[0] for r in reqs}) == 1


def test_rerank_range_ratio_varies_the_documents() -> None:
    reqs = sample_random_rerank(WORDS, 40, input_len=40, range_ratio=0.5, seed=3)
    query_len = WORDS.count(reqs[0].prompt[0])
    assert 9 <= query_len <= 29  # around 40 // 2 - 1
    doc_param = 40 - query_len - 1
    lens = {WORDS.count(r.prompt[1]) for r in reqs}
    assert len(lens) > 5
    assert all(int(doc_param * 0.5) <= n <= -(-doc_param * 3 // 2) for n in lens)


def test_rerank_with_a_tokenizer_counts_tokens_and_avoids_special_ones(
    hf: HFTokenCounter,
) -> None:
    reqs = sample_random_rerank(hf, 6, input_len=40, batch_size=2, seed=5)
    assert len(reqs) == 3
    query = reqs[0].prompt[0]
    # The BOS the tokenizer adds is taken off the query's share: 40 // 2 - 1 - 1.
    assert abs(hf.count(query) - 18) <= 2
    for r in reqs:
        assert r.prompt_len == (hf.count(query) + 1) * 2 + sum(hf.count(d) for d in r.prompt[1:])
        for text in r.prompt:
            assert not any(s in text for s in SPECIAL)


def test_rerank_is_deterministic_and_ignores_shuffle_and_oversample() -> None:
    base = sample_random_rerank(WORDS, 5, input_len=30, batch_size=2, seed=11)
    again = sample_random_rerank(
        WORDS, 5, input_len=30, batch_size=2, seed=11, shuffle=False, oversample=False
    )
    assert again == base
    other = sample_random_rerank(WORDS, 5, input_len=30, batch_size=2, seed=12)
    assert [r.prompt for r in other] != [r.prompt for r in base]


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"range_ratio": 1.0}, "--random-range-ratio"),
        ({"batch_size": 0}, "--random-batch-size"),
        ({"reranker": False, "batch_size": 1}, "--random-batch-size"),
        ({"reranker": False, "batch_size": 4, "num_requests": 1}, "--num-prompts"),
    ],
)
def test_rerank_bad_flags_are_usage_errors(kwargs: dict[str, Any], flag: str) -> None:
    n = kwargs.pop("num_requests", 4)
    with pytest.raises(UsageError) as excinfo:
        sample_random_rerank(WORDS, n, input_len=20, **kwargs)
    assert excinfo.value.where is not None and excinfo.value.where.startswith(flag)


def test_rerank_prompt_is_what_the_rerank_backend_sends() -> None:
    (req,) = sample_random_rerank(WORDS, 3, input_len=12, batch_size=3, seed=2)
    spec = get_backend("vllm-rerank").build_payload(
        RequestFuncInput(req.prompt, "http://h/rerank", req.prompt_len, 0, "m")
    )
    assert spec.json is not None
    assert spec.json["query"] == req.prompt[0]
    assert spec.json["documents"] == req.prompt[1:]


@pytest.mark.anyio
async def test_rerank_requests_reach_the_mock_server() -> None:
    (req,) = sample_random_rerank(WORDS, 2, input_len=12, batch_size=2, seed=4)
    out, server = await run("vllm-rerank", "/rerank", prompt=req.prompt, output_len=0)
    check_whole_body(out)
    body = server.requests[0].json
    assert body["query"] == req.prompt[0] and body["documents"] == req.prompt[1:]
    # The server counts the query once; the dataset counts it per document.
    assert out.prompt_len == sum(WORDS.count(t) for t in req.prompt)


@pytest.mark.anyio
async def test_no_reranker_batches_reach_an_embeddings_server() -> None:
    (req,) = sample_random_rerank(WORDS, 3, input_len=5, batch_size=3, reranker=False, seed=4)
    out, server = await run("openai-embeddings", "/v1/embeddings", prompt=req.prompt)
    check_whole_body(out)
    assert server.requests[0].json["input"] == req.prompt
    assert out.prompt_len == req.prompt_len == 15


# --- burstgpt -----------------------------------------------------------------------------

BURSTGPT_HEADER = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"
BURSTGPT_ROWS = [
    "5,ChatGPT,101,20,121,Conversation log",
    "6,GPT-4,11,31,42,Conversation log",
    "7,GPT-4,12,0,12,Conversation log",  # failed: no response
    "8,GPT-4,13,33,46,API log",
    "9,ChatGPT,104,34,138,API log",
    "10,GPT-4,15,35,50,Conversation log",
    "11,GPT-4,16,36,52,API log",
    "12,GPT-4,17,37,54,Conversation log",
]
USABLE = {(11, 31), (13, 33), (15, 35), (16, 36), (17, 37)}


def _csv(tmp_path: Path, rows: list[str], header: str = BURSTGPT_HEADER) -> str:
    path = tmp_path / "BurstGPT_1.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return str(path)


def _sizes(reqs: list[Any]) -> list[tuple[int, int]]:
    return [(r.prompt_len, r.expected_output_len) for r in reqs]


def test_burstgpt_samples_gpt4_rows_as_pandas_does(tmp_path: Path) -> None:
    path = _csv(tmp_path, BURSTGPT_ROWS)
    # pandas' DataFrame.sample(n, random_state=seed) on the filtered rows, as vLLM does.
    assert _sizes(sample_burstgpt(WORDS, 3, path=path, seed=0)) == [(15, 35), (11, 31), (13, 33)]
    assert _sizes(sample_burstgpt(WORDS, 3, path=path, seed=42)) == [(13, 33), (17, 37), (15, 35)]
    every = _sizes(sample_burstgpt(WORDS, 5, path=path, seed=0))
    assert every == [(15, 35), (11, 31), (13, 33), (16, 36), (17, 37)]
    assert set(every) == USABLE  # no ChatGPT row, no failed row


def test_burstgpt_draws_with_replacement_past_the_rows(tmp_path: Path) -> None:
    path = _csv(tmp_path, BURSTGPT_ROWS)
    reqs = sample_burstgpt(WORDS, 7, path=path, seed=0, request_id_prefix="b")
    assert _sizes(reqs) == [(17, 37), (11, 31), (16, 36), (16, 36), (16, 36), (13, 33), (16, 36)]
    assert [r.request_id for r in reqs] == [f"b{i}" for i in range(7)]
    # No flag changes that (vLLM ignores --disable-shuffle and --no-oversample here).
    assert (
        sample_burstgpt(
            WORDS, 7, path=path, seed=0, shuffle=False, oversample=False, request_id_prefix="b"
        )
        == reqs
    )


def test_burstgpt_prompts_are_consecutive_ids(tmp_path: Path, hf: HFTokenCounter) -> None:
    path = _csv(tmp_path, BURSTGPT_ROWS)
    for counter in (WORDS, hf):
        reqs = sample_burstgpt(counter, 4, path=path, seed=1)
        for i, r in enumerate(reqs):
            ids = [(i + j) % counter.vocab_size for j in range(r.prompt_len)]
            assert r.prompt == counter.decode(ids)
    assert all(WORDS.count(r.prompt) == r.prompt_len for r in sample_burstgpt(WORDS, 4, path=path))


def test_burstgpt_reads_columns_by_name(tmp_path: Path) -> None:
    header = "Log Type,Response tokens,Model,Request tokens"
    path = _csv(tmp_path, ["x,31,GPT-4,11", "x,0,GPT-4,12", "x,5,ChatGPT,99"], header=header)
    assert _sizes(sample_burstgpt(WORDS, 2, path=path)) == [(11, 31), (11, 31)]


@pytest.mark.parametrize(
    ("header", "rows", "needle"),
    [
        ("Timestamp,Model,Request tokens,Total tokens", ["1,GPT-4,3,4"], "'Response tokens'"),
        (BURSTGPT_HEADER, ["1,ChatGPT,3,4,7,API log", "2,GPT-4,3,0,3,API log"], "no row"),
        (BURSTGPT_HEADER, ["1,GPT-4,3,many,7,API log"], "line 2: Response tokens 'many'"),
        (BURSTGPT_HEADER, ["1,GPT-4,,4,4,API log"], "line 2: Request tokens ''"),
        (BURSTGPT_HEADER, [], "no row"),
    ],
)
def test_burstgpt_bad_files_are_usage_errors(
    tmp_path: Path, header: str, rows: list[str], needle: str
) -> None:
    path = _csv(tmp_path, rows, header=header)
    with pytest.raises(UsageError) as excinfo:
        sample_burstgpt(WORDS, 2, path=path)
    assert excinfo.value.where == f"--dataset-path {path}"
    assert needle in _usage_error(excinfo)


def test_burstgpt_missing_file_and_bad_seed(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read the dataset"):
        sample_burstgpt(WORDS, 2, path=str(tmp_path / "absent.csv"))
    with pytest.raises(UsageError) as excinfo:
        sample_burstgpt(WORDS, 2, path=_csv(tmp_path, BURSTGPT_ROWS), seed=-1)
    assert excinfo.value.where == "--seed"


# --- spec_bench ---------------------------------------------------------------------------

CATEGORIES = ["writing", "math_reasoning", "translation", "qa"]


def _questions(tmp_path: Path, n: int = 12) -> str:
    path = tmp_path / "question.jsonl"
    lines = [
        json.dumps(
            {
                "question_id": i,
                "category": CATEGORIES[i % 4],
                "turns": [f"question {i} first turn", f"question {i} second turn"],
            }
        )
        for i in range(n)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _first_turns(ids: list[int]) -> list[str]:
    return [f"question {i} first turn" for i in ids]


def test_spec_bench_prompts_are_first_turns_shuffled_with_the_seed(tmp_path: Path) -> None:
    path = _questions(tmp_path)
    reqs = sample_spec_bench(WORDS, 5, path=path, output_len=99, seed=0, request_id_prefix="s")
    order = list(range(12))
    random.Random(0).shuffle(order)  # vLLM: random.seed(seed); random.shuffle(questions)
    assert [r.prompt for r in reqs] == _first_turns(order[:5])
    assert all(r.expected_output_len == 99 and r.prompt_len == 4 for r in reqs)
    assert [r.request_id for r in reqs] == [f"s{i}" for i in range(5)]
    again = sample_spec_bench(WORDS, 5, path=path, output_len=99, seed=0, request_id_prefix="s")
    assert again == reqs
    other = sample_spec_bench(WORDS, 5, path=path, seed=1)
    assert [r.prompt for r in other] != [r.prompt for r in reqs]


def test_spec_bench_without_shuffle_keeps_the_file_order(tmp_path: Path) -> None:
    reqs = sample_spec_bench(WORDS, 4, path=_questions(tmp_path), shuffle=False)
    assert [r.prompt for r in reqs] == _first_turns([0, 1, 2, 3])


def test_spec_bench_category_filter(tmp_path: Path) -> None:
    path = _questions(tmp_path)
    reqs = sample_spec_bench(WORDS, 0, path=path, category="qa", shuffle=False)
    assert [r.prompt for r in reqs] == _first_turns([3, 7, 11])
    # An empty category means all of them, as in vLLM.
    assert len(sample_spec_bench(WORDS, 0, path=path, category="")) == 12


def test_spec_bench_unknown_category_lists_the_ones_present(tmp_path: Path) -> None:
    path = _questions(tmp_path)
    with pytest.raises(UsageError) as excinfo:
        sample_spec_bench(WORDS, 3, path=path, category="poetry")
    assert excinfo.value.where == "--spec-bench-category poetry"
    message = _usage_error(excinfo)
    assert "math_reasoning, qa, translation, writing" in message and path in message


def test_spec_bench_oversamples_unless_told_not_to(tmp_path: Path) -> None:
    path = _questions(tmp_path, n=3)
    reqs = sample_spec_bench(WORDS, 7, path=path, seed=0)
    assert len(reqs) == 7 and [r.request_id for r in reqs] == [str(i) for i in range(7)]
    assert {r.prompt for r in reqs} == set(_first_turns([0, 1, 2]))
    assert len(sample_spec_bench(WORDS, 7, path=path, seed=0, oversample=False)) == 3
    # 0 or fewer requests: every question.
    assert len(sample_spec_bench(WORDS, 0, path=path)) == 3


def test_spec_bench_uses_the_chat_template_and_counts_special_tokens(
    tmp_path: Path, hf: HFTokenCounter
) -> None:
    reqs = sample_spec_bench(hf, 3, path=_questions(tmp_path), shuffle=False, multimodal_chat=True)
    for i, r in enumerate(reqs):
        assert r.prompt == f"<|user|>question {i} first turn\n<|assistant|>"
        assert r.prompt_len == len(hf.tokenizer(r.prompt).input_ids) == hf.count(r.prompt) + 1


@pytest.mark.parametrize(
    ("lines", "needle"),
    [
        (['{"question_id": 1, "category": "qa"}'], "line 1: field 'turns' is missing"),
        (['{"category": "qa", "turns": "just text"}'], "line 1: field 'turns' is a string"),
        (['{"category": "qa", "turns": ["ok"]}', "{oops"], "line 2: not valid JSON"),
        (["[1, 2]"], "line 1 is a list"),
        (["", "  "], "no question"),
    ],
)
def test_spec_bench_bad_files_are_usage_errors(
    tmp_path: Path, lines: list[str], needle: str
) -> None:
    path = tmp_path / "question.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(UsageError) as excinfo:
        sample_spec_bench(WORDS, 2, path=str(path))
    assert excinfo.value.where == f"--dataset-path {path}"
    assert needle in _usage_error(excinfo)


# --- txt-slices ---------------------------------------------------------------------------


def _text(tmp_path: Path, n: int = 100) -> str:
    path = tmp_path / "book.txt"
    path.write_text(" ".join(f"w{i}" for i in range(n)) + "\n", encoding="utf-8")
    return str(path)


def test_txt_slices_cut_words_at_seeded_offsets(tmp_path: Path) -> None:
    reqs = sample_txt_slices(
        WORDS, 6, path=_text(tmp_path), input_len=10, output_len=7, seed=3, request_id_prefix="t"
    )
    rnd = random.Random(3)  # vLLM: random.seed(seed); random.randint(0, total - 1)
    for r in reqs:
        start = rnd.randint(0, 99)
        assert r.prompt == " ".join(f"w{(start + j) % 100}" for j in range(10))
        assert (r.prompt_len, r.expected_output_len) == (10, 7)
    assert [r.request_id for r in reqs] == [f"t{i}" for i in range(6)]


def test_txt_slices_wrap_around_a_short_text(tmp_path: Path) -> None:
    (req,) = sample_txt_slices(WORDS, 1, path=_text(tmp_path, n=4), input_len=10, seed=0)
    words = req.prompt.split()
    assert len(words) == 10
    start = int(words[0][1:])
    assert words == [f"w{(start + j) % 4}" for j in range(10)]


def test_txt_slices_with_a_tokenizer(tmp_path: Path, hf: HFTokenCounter) -> None:
    path = tmp_path / "fox.txt"
    text = "The quick brown fox jumps over the lazy dog. Naïve café 🙂.\n" * 4
    path.write_text(text, encoding="utf-8")
    ids = hf.encode(text)
    reqs = sample_txt_slices(hf, 5, path=str(path), input_len=12, output_len=3, seed=8)
    rnd = random.Random(8)
    for r in reqs:
        start = rnd.randint(0, len(ids) - 1)
        piece = [ids[(start + j) % len(ids)] for j in range(12)]
        assert r.prompt == hf.decode(piece)
        # Measured as vLLM does: the decoded text with the tokenizer's BOS.
        assert r.prompt_len == len(hf.tokenizer(r.prompt).input_ids)


def test_txt_slices_is_deterministic_and_ignores_shuffle_and_oversample(tmp_path: Path) -> None:
    path = _text(tmp_path)
    base = sample_txt_slices(WORDS, 4, path=path, input_len=5, seed=1)
    assert (
        sample_txt_slices(WORDS, 4, path=path, input_len=5, seed=1, shuffle=False, oversample=False)
        == base
    )
    assert sample_txt_slices(WORDS, 4, path=path, input_len=5, seed=2) != base


def test_txt_slices_bad_files_are_usage_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text(" \n", encoding="utf-8")
    with pytest.raises(UsageError) as excinfo:
        sample_txt_slices(WORDS, 1, path=str(empty))
    assert excinfo.value.where == f"--dataset-path {empty}"
    assert "no token" in _usage_error(excinfo)
    with pytest.raises(UsageError, match="cannot read the dataset"):
        sample_txt_slices(WORDS, 1, path=str(tmp_path / "absent.txt"))


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def file_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An HTTP server on localhost serving *tmp_path*; no proxy in the way."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("all_proxy", raising=False)
    handler = functools.partial(_Quiet, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_txt_slices_reads_a_url(tmp_path: Path, file_server: str) -> None:
    path = _text(tmp_path)
    url = f"{file_server}/book.txt"
    local = sample_txt_slices(WORDS, 3, path=path, input_len=6, seed=4)
    assert sample_txt_slices(WORDS, 3, path=url, input_len=6, seed=4) == local
    with pytest.raises(UsageError) as excinfo:
        sample_txt_slices(WORDS, 1, path=f"{file_server}/absent.txt")
    assert "HTTP 404" in _usage_error(excinfo)
    assert excinfo.value.where == f"--dataset-path {file_server}/absent.txt"
