"""More prompt datasets: random rerank batches, BurstGPT traces, Spec-Bench questions and
slices of a text file (vLLM's ``random-rerank``, ``burstgpt``, ``spec_bench`` and
``txt-slices``).

Each sampler is pure apart from reading its file, and deterministic for a seed.
"""

from __future__ import annotations

import csv
import io
import math
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._config import UsageError
from ._datasets import (
    SampleRequest,
    _allowed_ids,
    _bad_file,
    _fit_to_length,
    _kind,
    _oversample,
    _read_jsonl_objects,
    _read_text,
    _with_ids,
)
from ._tokens import TokenCounter

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "sample_burstgpt",
    "sample_random_rerank",
    "sample_spec_bench",
    "sample_txt_slices",
]


# --- random-rerank ------------------------------------------------------------------------


def _lengths_and_offsets(
    rng: np.random.Generator, n: int, range_ratio: float, length: int, n_special: int, vocab: int
) -> tuple[list[int], list[int]]:
    """Lengths uniform in ``[floor(L * (1 - r)), ceil(L * (1 + r))]`` for ``L`` = *length*
    less the special tokens, and a vocabulary offset for each: the draws of vLLM's
    random dataset, in its order (its output-length draw included, though unused)."""
    real = max(0, length - n_special)
    low, high = math.floor(real * (1 - range_ratio)), math.ceil(real * (1 + range_ratio))
    lengths = rng.integers(low, high + 1, size=n)
    # vLLM draws output lengths (always 1) here; a one-value range takes nothing from
    # numpy's stream today, but the call keeps the draws in step should that change.
    rng.integers(1, 2, size=n)
    offsets = rng.integers(0, vocab, size=n)
    return [int(x) for x in lengths], [int(x) for x in offsets]


def sample_random_rerank(
    counter: TokenCounter,
    num_requests: int,
    *,
    input_len: int = 1024,
    range_ratio: float = 0.0,
    batch_size: int = 1,
    reranker: bool = True,
    shuffle: bool = True,
    oversample: bool = True,
    seed: int = 0,
    request_id_prefix: str = "",
) -> list[SampleRequest]:
    """Batches for scoring models (vLLM's ``RandomDatasetForReranking``): one random
    query shared by every request and *num_requests* random documents, *batch_size* to a
    request. Each prompt is ``[query, document, ...]`` (what ``vllm-rerank`` sends as
    ``query`` and ``documents``, and the embeddings backends as ``input``).

    With *reranker* (the default) each query-document pair fills *input_len* tokens:
    the query takes about half, less a separator token, and its tokens count once per
    document. Without it (``--no-reranker``, an embedding model scoring by similarity),
    the query and each document are *input_len* tokens long, the query counts once, and
    it is one of the *batch_size* inputs and of the *num_requests* prompts.

    Expected output lengths are 0: scoring generates nothing. *shuffle* and *oversample*
    have no effect (nor have their flags in vLLM).

    Raises:
        UsageError: *range_ratio* is outside ``[0, 1)``, *batch_size* is under 1, or
            without *reranker* either *batch_size* or *num_requests* is under 2.
    """
    import numpy as np

    if not 0.0 <= range_ratio < 1.0:
        why = f"must be in [0, 1), got {range_ratio:g}"
        raise UsageError("invalid value", where="--random-range-ratio", why=why)
    if batch_size < 1:
        why = f"must be at least 1, got {batch_size}"
        raise UsageError("invalid value", where="--random-batch-size", why=why)
    if not reranker and (batch_size < 2 or num_requests < 2):
        flag, value = ("--random-batch-size", batch_size)
        if batch_size >= 2:
            flag, value = ("--num-prompts", num_requests)
        raise UsageError(
            "invalid value",
            where=f"{flag} {value}",
            why="with --no-reranker the query is one of the inputs, so a request needs "
            "--random-batch-size 2 or more and the run --num-prompts 2 or more",
            hint="Raise them, or drop --no-reranker for a model that reranks natively.",
        )
    rng = np.random.default_rng(seed)
    vocab = counter.vocab_size
    n_special = counter.num_special_tokens_to_add()
    sep = int(reranker)  # the separator token between query and document
    query_param = input_len // 2 - sep if reranker else input_len
    (query_len,), (query_offset,) = _lengths_and_offsets(
        rng, 1, range_ratio, query_param, n_special, vocab
    )
    if reranker:
        n_docs, per_request, doc_param = num_requests, batch_size, input_len - query_len - sep
    else:
        n_docs, per_request, doc_param = num_requests - 1, batch_size - 1, input_len
    doc_lens, doc_offsets = _lengths_and_offsets(
        rng, max(n_docs, 0), range_ratio, doc_param, n_special, vocab
    )
    allowed = _allowed_ids(counter)

    def draw(n: int) -> list[int]:
        extra: list[int] = rng.integers(0, vocab, size=n).tolist()
        return extra

    def text(length: int, offset: int, index: int) -> tuple[str, int]:
        ids = allowed[(offset + index + np.arange(length)) % len(allowed)].tolist()
        prompt, fitted = _fit_to_length(counter, ids, length, draw)
        return prompt, len(fitted)

    query, query_tokens = text(query_len, query_offset, 0)
    docs = [text(doc_lens[i], doc_offsets[i], i + 1) for i in range(max(n_docs, 0))]
    requests = []
    for start in range(0, len(docs), per_request):
        batch = docs[start : start + per_request]
        query_share = (query_tokens + sep) * len(batch) if reranker else query_tokens
        prompt = [query, *(doc for doc, _ in batch)]
        requests.append(SampleRequest(prompt, query_share + sum(n for _, n in batch), 0))
    return _with_ids(requests, request_id_prefix)


# --- burstgpt -----------------------------------------------------------------------------

_BURSTGPT_SHAPE = (
    "BurstGPT is a CSV file with a header row: Timestamp,Model,Request tokens,"
    "Response tokens,Total tokens,Log Type"
)
_BURSTGPT_NEEDS = ("Model", "Request tokens", "Response tokens")


def _number(text: str | None) -> float | None:
    """A CSV cell as a number: NaN when empty, None when it isn't one."""
    text = (text or "").strip()
    if not text:
        return math.nan
    try:
        return float(text)
    except ValueError:
        return None


def _burstgpt_rows(path: str) -> list[tuple[int, int]]:
    """``(Request tokens, Response tokens)`` of the rows a benchmark replays: model
    ``GPT-4`` and more than 0 response tokens (a failed request has 0)."""
    text = _read_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        columns = reader.fieldnames or []
        missing = [c for c in _BURSTGPT_NEEDS if c not in columns]
        if missing:
            found = ", ".join(repr(c) for c in columns) or "none"
            why = f"no column {', '.join(repr(c) for c in missing)} (columns: {found})"
            raise _bad_file(path, why, _BURSTGPT_SHAPE)
        rows = []
        for record in reader:
            if record.get("Model") != "GPT-4":
                continue
            line = reader.line_num
            response = _number(record.get("Response tokens"))
            if response is None:
                why = f"line {line}: Response tokens {record['Response tokens']!r} is not a number"
                raise _bad_file(path, why, _BURSTGPT_SHAPE)
            if not response > 0:
                continue
            request = _number(record.get("Request tokens"))
            if request is None or not math.isfinite(request) or request < 0:
                value = record.get("Request tokens")
                why = f"line {line}: Request tokens {value!r} is not a token count"
                raise _bad_file(path, why, _BURSTGPT_SHAPE)
            if not math.isfinite(response):
                why = f"line {line}: Response tokens {record['Response tokens']!r} is not a count"
                raise _bad_file(path, why, _BURSTGPT_SHAPE)
            rows.append((int(request), int(response)))
    except csv.Error as exc:
        raise _bad_file(path, f"not valid CSV: {exc} (line {reader.line_num})") from None
    return rows


def sample_burstgpt(
    counter: TokenCounter,
    num_requests: int,
    *,
    path: str,
    shuffle: bool = True,
    oversample: bool = True,
    seed: int = 0,
    request_id_prefix: str = "",
) -> list[SampleRequest]:
    """Request and response sizes replayed from a BurstGPT trace (vLLM's
    ``BurstGPTDataset``): rows of model ``GPT-4`` with a response (``Response tokens``
    over 0) are sampled as ``pandas.DataFrame.sample(n, random_state=seed)`` picks them
    (with replacement when *num_requests* exceeds them). Request *i* is the decoded ids
    ``(i + j) % vocab`` for ``j`` below the row's ``Request tokens``, which is its
    prompt length; ``Response tokens`` is its output length.

    *shuffle* and *oversample* have no effect (nor have their flags in vLLM): the rows
    are drawn at random, and with replacement when there are too few.

    Raises:
        UsageError: the file is not such a CSV, has no usable row, or *seed* is outside
            ``[0, 2**32)`` (what numpy's legacy generator accepts).
    """
    import numpy as np

    rows = _burstgpt_rows(path)
    if not rows:
        why = "no row with Model GPT-4 and Response tokens over 0"
        raise _bad_file(path, why, "BurstGPT benchmarks replay the GPT-4 rows of the trace.")
    if not 0 <= seed < 2**32:
        why = f"must be in [0, 2**32) for --dataset-name burstgpt, got {seed}"
        raise UsageError("invalid value", where="--seed", why=why)
    # pandas' DataFrame.sample: RandomState(seed).choice over the row positions.
    picks = np.random.RandomState(seed).choice(
        len(rows), size=num_requests, replace=num_requests > len(rows)
    )
    vocab = counter.vocab_size
    requests = []
    for i, pick in enumerate(picks.tolist()):
        input_len, output_len = rows[pick]
        prompt = counter.decode([(i + j) % vocab for j in range(input_len)])
        requests.append(SampleRequest(prompt, input_len, output_len))
    return _with_ids(requests, request_id_prefix)


# --- spec_bench ---------------------------------------------------------------------------

_SPEC_BENCH_SHAPE = (
    'Spec-Bench question.jsonl has one {"question_id": ..., "category": ..., '
    '"turns": ["first turn", ...]} object per line'
)


def _spec_bench_questions(path: str) -> list[tuple[Any, str]]:
    """``(category, first turn)`` of each line of a Spec-Bench question file."""
    questions = []
    for lineno, obj in _read_jsonl_objects(path, _SPEC_BENCH_SHAPE):
        turns = obj.get("turns")
        if not isinstance(turns, list) or not turns or not isinstance(turns[0], str):
            got = "missing" if "turns" not in obj else _kind(turns)
            why = f"line {lineno}: field 'turns' is {got}, expected a list of strings"
            raise _bad_file(path, why, _SPEC_BENCH_SHAPE)
        questions.append((obj.get("category"), turns[0]))
    return questions


def sample_spec_bench(
    counter: TokenCounter,
    num_requests: int,
    *,
    path: str,
    output_len: int = 256,
    category: str | None = None,
    multimodal_chat: bool = False,
    shuffle: bool = True,
    oversample: bool = True,
    seed: int = 0,
    request_id_prefix: str = "",
) -> list[SampleRequest]:
    """Spec-Bench questions (vLLM's ``SpecBench``): the first turn of each line of
    ``question.jsonl``, of *category* only when given, shuffled with ``seed`` unless
    *shuffle* is False, in the tokenizer's chat format (when it has a template; vLLM
    always applies it), measured with special tokens as vLLM does. *num_requests* of 0
    or less takes every question; fewer questions than asked are repeated at random
    unless *oversample* is False. *multimodal_chat* has no effect, as in vLLM.

    vLLM shuffles and oversamples this dataset with seed 0 whatever ``--seed`` says;
    pass ``seed=0`` for its order.

    Raises:
        UsageError: the file is not Spec-Bench JSONL, is empty, or has no question of
            *category* (the message lists the categories it has).
    """
    del multimodal_chat  # accepted for uniformity: vLLM's Spec-Bench ignores it too
    questions = _spec_bench_questions(path)
    prompts = [text for cat, text in questions if not category or cat == category]
    if not prompts:
        if not questions:
            raise _bad_file(path, "the file has no question", _SPEC_BENCH_SHAPE)
        present = sorted({str(cat) for cat, _ in questions if cat is not None})
        raise UsageError(
            "unknown category",
            where=f"--spec-bench-category {category}",
            why=f"{path} has no question of category {category!r}; its categories: "
            + (", ".join(present) or "none"),
            hint="Pass one of them, or drop --spec-bench-category for all questions.",
        )
    rnd = random.Random(seed)
    if shuffle:
        rnd.shuffle(prompts)
    if num_requests <= 0:
        num_requests = len(prompts)
    requests = []
    for text in prompts[:num_requests]:
        prompt = counter.apply_chat_template(text) or text
        requests.append(SampleRequest(prompt, counter.count_with_special(prompt), output_len))
    if oversample:
        requests = _oversample(requests, num_requests, seed)
    return _with_ids(requests, request_id_prefix)


# --- txt-slices ---------------------------------------------------------------------------

#: How long fetching a ``txt-slices`` URL may take.
URL_TIMEOUT = 60.0


def _is_url(path: str) -> bool:
    return path.startswith(("http://", "https://"))


def _read_source(path: str) -> str:
    """The text at *path*: a local file, or an ``http(s)://`` URL fetched once."""
    if not _is_url(path):
        return _read_text(path)
    import httpx

    from ._redact import redact_url

    where = f"--dataset-path {redact_url(path)}"
    try:
        response = httpx.get(path, follow_redirects=True, timeout=URL_TIMEOUT)
        response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        why = f"the server answered HTTP {exc.response.status_code}"
        raise UsageError("cannot fetch the dataset", where=where, why=why) from None
    except httpx.HTTPError as exc:
        why = str(exc) or type(exc).__name__
        raise UsageError(
            "cannot fetch the dataset", where=where, why=why, hint="Check the URL."
        ) from None
    try:
        return response.content.decode("utf-8")
    except UnicodeDecodeError as exc:
        why = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
        raise UsageError("invalid dataset", where=where, why=why) from None


def sample_txt_slices(
    counter: TokenCounter,
    num_requests: int,
    *,
    path: str,
    input_len: int = 1024,
    output_len: int = 128,
    shuffle: bool = True,
    oversample: bool = True,
    seed: int = 0,
    request_id_prefix: str = "",
) -> list[SampleRequest]:
    """Slices of a text file (vLLM's ``TxtSlicesDataset``): the whole text is tokenized,
    and each prompt is the *input_len* tokens from a random start (``random.Random(seed)
    .randint``), wrapping around at the end, decoded. Its prompt length is the decoded
    text's count with special tokens, as vLLM measures it. *path* may be an
    ``http(s)://`` URL. With whitespace words as tokens the slices are the text's own
    words. *shuffle* and *oversample* have no effect (nor have their flags in vLLM).

    Raises:
        UsageError: the file can't be read or holds no token.
    """
    text = _read_source(path)
    words = counter.kind == "words"
    tokens: Sequence[Any] = text.split() if words else counter.encode(text)
    if not tokens:
        from ._redact import redact_url

        why, hint = "the text has no token to slice", "Pass a non-empty text file."
        raise _bad_file(redact_url(path) if _is_url(path) else path, why, hint)
    total = len(tokens)
    rnd = random.Random(seed)
    requests = []
    for _ in range(num_requests):
        start = rnd.randint(0, total - 1)
        piece = [tokens[(start + j) % total] for j in range(input_len)]
        if words:
            prompt = " ".join(piece)
            requests.append(SampleRequest(prompt, len(piece), output_len))
        else:
            prompt = counter.decode(piece)
            requests.append(SampleRequest(prompt, counter.count_with_special(prompt), output_len))
    return _with_ids(requests, request_id_prefix)
