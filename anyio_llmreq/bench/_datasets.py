"""Prompt datasets: the dispatch on ``--dataset-name`` and the samplers of random,
ShareGPT, sonnet, custom JSONL and prefix repetition (the others are in ``_hf_datasets``,
``_mm_datasets`` and ``_extra_datasets``).

Each sampler is pure apart from reading its file, and deterministic for a seed: the same
prompts as vLLM's for the same seed and tokenizer. Lengths are counted with a
``TokenCounter`` (a tokenizer, or whitespace words).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from typing import Any

import attrs

from ._config import UsageError
from ._tokens import TokenCounter

__all__ = [
    "DATASET_NAMES",
    "FILE_DATASETS",
    "canonical_dataset_name",
    "SampleRequest",
    "sample_custom",
    "sample_prefix_repetition",
    "sample_random",
    "sample_sharegpt",
    "sample_sonnet",
]

#: Where each dataset's sampler lives (imported on use: the hf and multimodal ones
#: need optional packages).
_SAMPLERS: dict[str, tuple[str, str]] = {
    "random": ("._datasets", "sample_random"),
    "sharegpt": ("._datasets", "sample_sharegpt"),
    "sonnet": ("._datasets", "sample_sonnet"),
    "custom": ("._datasets", "sample_custom"),
    "prefix_repetition": ("._datasets", "sample_prefix_repetition"),
    "hf": ("._hf_datasets", "sample_hf"),
    "random-mm": ("._mm_datasets", "sample_random_mm"),
    "custom_mm": ("._mm_datasets", "sample_custom_mm"),
    "random-rerank": ("._extra_datasets", "sample_random_rerank"),
    "burstgpt": ("._extra_datasets", "sample_burstgpt"),
    "spec_bench": ("._extra_datasets", "sample_spec_bench"),
    "txt-slices": ("._extra_datasets", "sample_txt_slices"),
    "trace": ("._trace", "sample_trace"),
}

#: Datasets planned as sessions of several turns (``_sessions``), not sampled here.
SESSION_DATASETS = ("multi-turn",)

#: ``--dataset-name`` choices: vLLM's names (``prefix_repetition``) and the hyphenated
#: spelling this bench accepted before (``prefix-repetition``).
DATASET_NAMES = (*_SAMPLERS, *SESSION_DATASETS, "prefix-repetition")

#: Datasets read from ``--dataset-path`` (the others are generated).
FILE_DATASETS = frozenset(
    {"sharegpt", "sonnet", "custom", "hf", "custom_mm", "burstgpt", "spec_bench", "txt-slices"}
    | {"trace"}
    | set(SESSION_DATASETS)
)


#: Datasets vLLM samples with seed 0 whatever ``--seed`` says.
_SEEDLESS = frozenset({"custom", "custom_mm", "spec_bench"})


def canonical_dataset_name(name: str) -> str:
    """vLLM's spelling of a ``--dataset-name`` (``prefix-repetition`` -> ``prefix_repetition``)."""
    return "prefix_repetition" if name == "prefix-repetition" else name


@attrs.frozen
class SampleRequest:
    """One prompt to send (vLLM's ``SampleRequest``)."""

    prompt: Any
    prompt_len: int
    expected_output_len: int
    request_id: str = ""
    #: Media sent with the prompt, in ``RequestFuncInput.multi_modal_content``'s form:
    #: a dict or list of OpenAI content parts (``image_url``, ``video_url``, ...), or
    #: ``{"audio": (samples, rate)}`` for the audio backend.
    multi_modal_data: Any = None
    #: When to send it, seconds after the run's start, for datasets that carry their own
    #: times (a trace); ``None``: the arrival process decides.
    arrival: float | None = None


def _with_ids(requests: list[SampleRequest], prefix: str) -> list[SampleRequest]:
    return [attrs.evolve(r, request_id=f"{prefix}{i}") for i, r in enumerate(requests)]


def _allowed_ids(counter: TokenCounter) -> Any:
    """The ids below ``vocab_size`` that are not special tokens, ascending: what the
    random datasets draw prompts from (a numpy array)."""
    import numpy as np

    vocab = counter.vocab_size
    keep = np.ones(vocab, dtype=bool)
    special = [i for i in counter.all_special_ids if 0 <= i < vocab]
    keep[special] = False
    return np.flatnonzero(keep)


def _fit_to_length(
    counter: TokenCounter, ids: list[int], target: int, draw: Callable[[int], list[int]]
) -> tuple[str, list[int]]:
    """Decode *ids* and encode the text again, up to ten times, cutting the ids to
    *target* when there are too many and appending ``draw(missing)`` ids when too few
    (a decoded sequence need not encode back to as many tokens). Returns the last
    decoded text and its ids, which are *target* long unless ten tries weren't enough."""
    tries = 10
    while True:
        prompt = counter.decode(ids)
        ids = counter.encode(prompt)
        if tries <= 0 or len(ids) == target:
            return prompt, ids
        if len(ids) < target:
            ids.extend(draw(target - len(ids)))
        else:
            ids = ids[:target]
        tries -= 1


def _batched(requests: list[SampleRequest], batch_size: int) -> list[SampleRequest]:
    """Requests of *batch_size* prompts each (embeddings): the prompts' lengths summed,
    no output."""
    return [
        SampleRequest(
            [r.prompt for r in batch], sum(r.prompt_len for r in batch), expected_output_len=0
        )
        for batch in (requests[i : i + batch_size] for i in range(0, len(requests), batch_size))
    ]


def sample_random(
    counter: TokenCounter,
    num_requests: int,
    *,
    input_len: int = 1024,
    output_len: int = 128,
    range_ratio: float = 0.0,
    prefix_len: int = 0,
    batch_size: int = 1,
    seed: int = 0,
    request_id_prefix: str = "",
    shuffle: bool = True,
    oversample: bool = True,
) -> list[SampleRequest]:
    """Random token prompts, as vLLM's ``RandomDataset`` makes them for the same seed.

    The tokenizer's added special tokens are taken off *input_len*; lengths are uniform
    in ``[floor(len * (1 - ratio)), ceil(len * (1 + ratio))]``; each prompt is a shared
    random prefix of *prefix_len* tokens, then consecutive non-special ids from a random
    offset, decoded and re-encoded until it is exactly that long. With *batch_size* > 1
    (embeddings) each request carries a list of that many prompts. *shuffle* and
    *oversample* mean nothing here."""
    import numpy as np

    if not 0.0 <= range_ratio < 1.0:
        why = f"must be in [0, 1), got {range_ratio:g}"
        raise UsageError("invalid value", where="--random-range-ratio", why=why)
    num_special = counter.num_special_tokens_to_add()
    real_input_len = max(0, input_len - num_special)
    in_low = math.floor(real_input_len * (1 - range_ratio))
    in_high = math.ceil(real_input_len * (1 + range_ratio))
    if prefix_len + in_low < 1:
        raise UsageError(
            "invalid value",
            where="--random-input-len",
            why=f"{input_len} leaves no prompt: the tokenizer adds {num_special} special "
            f"token(s), and with --random-range-ratio {range_ratio:g} and --random-prefix-len "
            f"{prefix_len} a prompt could have {prefix_len + in_low} tokens",
            hint="Raise --random-input-len or --random-prefix-len, or lower --random-range-ratio.",
        )
    out_low = max(math.floor(output_len * (1 - range_ratio)), 1)
    out_high = max(math.ceil(output_len * (1 + range_ratio)), 1)
    # One generator, drawn from in vLLM's order: lengths, offsets, prefix, then the
    # tokens that top up prompts which re-encode short.
    rng = np.random.default_rng(seed)
    input_lens = rng.integers(in_low, in_high + 1, size=num_requests)
    output_lens = rng.integers(out_low, out_high + 1, size=num_requests)
    vocab = counter.vocab_size
    offsets = rng.integers(0, vocab, size=num_requests)
    allowed = _allowed_ids(counter)
    prefix = (
        allowed[rng.integers(0, len(allowed), size=prefix_len)].tolist() if prefix_len > 0 else []
    )

    def draw(n: int) -> list[int]:
        extra: list[int] = rng.integers(0, vocab, size=n).tolist()
        return extra

    requests = []
    for i in range(num_requests):
        n = int(input_lens[i])
        inner = allowed[(int(offsets[i]) + i + np.arange(n)) % len(allowed)].tolist()
        prompt, ids = _fit_to_length(counter, prefix + inner, prefix_len + n, draw)
        requests.append(SampleRequest(prompt, len(ids), int(output_lens[i])))
    if batch_size > 1:
        requests = _batched(requests, batch_size)
    return _with_ids(requests, request_id_prefix)


def sample_prefix_repetition(
    counter: TokenCounter,
    num_requests: int,
    *,
    prefix_len: int = 256,
    suffix_len: int = 256,
    num_prefixes: int = 10,
    output_len: int = 128,
    seed: int = 0,
    request_id_prefix: str = "",
    shuffle: bool = True,
    oversample: bool = True,
) -> list[SampleRequest]:
    """*num_prefixes* random prefixes, each followed by ``num_requests // num_prefixes``
    random suffixes (vLLM's ``PrefixRepetitionRandomDataset``, the same tokens for the
    same seed): that many requests in all, shuffled unless *shuffle* is False.
    *oversample* means nothing here."""
    import numpy as np

    if num_prefixes < 1 or num_requests // num_prefixes == 0:
        raise UsageError(
            "invalid value",
            where="--prefix-repetition-num-prefixes",
            why=f"{num_prefixes} prefixes need at least as many prompts, and "
            f"--num-prompts is {num_requests}"
            if num_prefixes >= 1
            else f"must be at least 1, got {num_prefixes}",
            hint="Use at most --num-prompts prefixes.",
        )
    per_prefix = num_requests // num_prefixes
    # numpy's legacy generator, seeded once: vLLM draws these from the global one.
    legacy = np.random.RandomState(seed)
    vocab = counter.vocab_size

    def draw(n: int) -> list[int]:
        ids: list[int] = legacy.randint(0, vocab, size=n).tolist()
        return ids

    def exact(n: int) -> list[int]:
        return _fit_to_length(counter, draw(n), n, draw)[1]

    requests = []
    for _ in range(num_prefixes):
        prefix = exact(prefix_len)
        for _ in range(per_prefix):
            ids = prefix + exact(suffix_len)
            requests.append(SampleRequest(counter.decode(ids), len(ids), output_len))
    if shuffle:
        random.Random(seed).shuffle(requests)
    return _with_ids(requests, request_id_prefix)


def sample_sharegpt(
    counter: TokenCounter,
    num_requests: int,
    path: str,
    *,
    output_len: int | None = None,
    seed: int = 0,
    request_id_prefix: str = "",
    shuffle: bool = True,
    oversample: bool = True,
) -> list[SampleRequest]:
    """The first two turns of ShareGPT conversations, as vLLM's ``ShareGPTDataset``
    picks them: shuffled with *seed* unless *shuffle* is False, lengths counted with
    the tokenizer's special tokens, kept when the prompt has 4 to 1024 tokens, the
    reply (unless *output_len* replaces it) at least 4 and both together at most 2048;
    repeated at random up to *num_requests* unless *oversample* is False. A record's
    ``image`` or ``video`` path goes with its prompt."""
    records = _sharegpt_records(_read_json(path), path)
    if shuffle:
        random.Random(seed).shuffle(records)
    requests: list[SampleRequest] = []
    for record in records:
        if len(requests) >= num_requests:
            break
        conv = record["conversations"]
        prompt, completion = conv[0]["value"], conv[1]["value"]
        prompt_len = counter.count_with_special(prompt)
        out_len = counter.count_with_special(completion) if output_len is None else output_len
        if not _is_valid_sequence(prompt_len, out_len, check_output=output_len is None):
            continue
        media = _sharegpt_media(record, path)
        requests.append(SampleRequest(prompt, prompt_len, out_len, multi_modal_data=media))
    if not requests:
        raise _bad_file(
            path,
            "no usable conversation (a prompt of 4 to 1024 tokens, a reply of at least 4)",
            hint="Check the file, or pass --sharegpt-output-len.",
        )
    if oversample:
        requests = _oversample(requests, num_requests, seed)
    return _with_ids(requests, request_id_prefix)


def _is_valid_sequence(prompt_len: int, output_len: int, *, check_output: bool = True) -> bool:
    """vLLM's length filter for conversation datasets: a prompt of 4 to 1024 tokens,
    an output of at least 4 (when *check_output*), at most 2048 together."""
    return (
        4 <= prompt_len <= 1024
        and (not check_output or output_len >= 4)
        and prompt_len + output_len <= 2048
    )


def _sharegpt_media(record: dict[str, Any], path: str) -> Any:
    """The content part for a record's ``image`` or ``video`` (a path or URL)."""
    for key in ("image", "video"):
        where = record.get(key)
        if not where:
            continue
        if not isinstance(where, str):
            raise _bad_file(path, f"field {key!r} is {_kind(where)}, expected a path or URL")
        if not where.startswith(("http://", "https://", "file://")):
            where = f"file://{where}"
        return {"type": f"{key}_url", f"{key}_url": {"url": where}}
    return None


def missing_dataset_path(name: str) -> UsageError:
    """The error for a file dataset given no ``--dataset-path``."""
    return UsageError(
        "missing dataset file",
        where="--dataset-path",
        why=f"--dataset-name {name} needs --dataset-path",
        hint="Pass --dataset-path PATH, or use --dataset-name random.",
    )


def _bad_file(
    path: str, why: str, hint: str | None = None, *, what: str = "invalid dataset"
) -> UsageError:
    return UsageError(what, where=f"--dataset-path {path}", why=why, hint=hint or "Check the file.")


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as exc:
        raise _bad_file(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise UsageError(
            "cannot read the dataset",
            where=f"--dataset-path {path}",
            why=exc.strerror or str(exc),
            hint="Check the path.",
        ) from None


def _read_jsonl_objects(path: str, shape: str) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` of each non-blank line of a JSONL file; a
    ``UsageError`` naming the first line that is not valid JSON or not an object (*shape*
    says what the file should hold)."""
    objects = []
    for lineno, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            why = f"line {lineno}: not valid JSON: {exc.msg} at column {exc.colno}"
            raise _bad_file(path, why, shape) from None
        if not isinstance(obj, dict):
            raise _bad_file(path, f"line {lineno} is {_kind(obj)}, expected an object", shape)
        objects.append((lineno, obj))
    return objects


def _read_json(path: str) -> Any:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        why = f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        raise _bad_file(path, why) from None


def _sharegpt_records(data: Any, path: str) -> list[dict[str, Any]]:
    """The records whose conversation has at least two turns; a ``UsageError`` naming
    the first record and field that isn't ShareGPT's shape
    (``[{"conversations": [{"value": ...}, ...]}]``)."""
    shape = 'ShareGPT is a JSON list of {"conversations": [{"from": ..., "value": ...}, ...]}'
    if not isinstance(data, list):
        raise _bad_file(path, f"expected a JSON list of records, got {_kind(data)}", shape)
    records = []
    for i, record in enumerate(data):
        if not isinstance(record, dict):
            raise _bad_file(path, f"record {i} is {_kind(record)}, expected an object", shape)
        conv = record.get("conversations", [])
        if not isinstance(conv, list):
            why = f"record {i}: field 'conversations' is {_kind(conv)}, expected a list"
            raise _bad_file(path, why, shape)
        if len(conv) < 2:
            continue
        for turn, message in enumerate(conv[:2]):
            if not isinstance(message, dict) or not isinstance(message.get("value"), str):
                why = f"record {i}: conversations[{turn}] has no string field 'value'"
                raise _bad_file(path, why, shape)
        records.append(record)
    return records


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", type(None): "null", int: "an int"}
    return names.get(type(value), f"a {type(value).__name__}")


def _oversample(requests: list[SampleRequest], n: int, seed: int) -> list[SampleRequest]:
    if len(requests) >= n:
        return requests[:n]
    rnd = random.Random(seed)
    return requests + [rnd.choice(requests) for _ in range(n - len(requests))]


#: vLLM's sonnet instruction.
_SONNET_BASE = "Pick as many lines as you can from these poem lines:\n"
#: Prompts rejected in a row (over *input_len*) before sonnet gives up: vLLM would
#: loop for ever.
_SONNET_MAX_REJECTED = 1000


def sample_sonnet(
    counter: TokenCounter,
    num_requests: int,
    path: str,
    *,
    input_len: int = 550,
    output_len: int = 150,
    prefix_len: int = 200,
    chat_template: bool = True,
    seed: int = 0,
    request_id_prefix: str = "",
    shuffle: bool = True,
    oversample: bool = True,
) -> list[SampleRequest]:
    """Poem lines behind "Pick as many lines as you can...", as vLLM's ``SonnetDataset``
    builds them: the first lines as a shared prefix, then lines drawn at random, as many
    as the average line's tokens allow after the instruction's chat-formatted length.
    Lengths are those of the chat-formatted prompt, special tokens included, and a
    prompt over *input_len* tokens is drawn again. *chat_template* sends the formatted
    prompt (vLLM does unless the backend is ``openai-chat``), else the plain one.
    *shuffle* and *oversample* mean nothing here.

    Raises:
        UsageError: *chat_template* and the tokenizer has no chat template (whitespace
            words have none and send the plain prompt); *input_len* is not over the
            instruction's length; no prompt fits in *input_len*.
    """
    import io

    lines = io.StringIO(_read_text(path)).readlines()  # split on "\n" only, as vLLM
    if not lines:
        raise _bad_file(path, "the file is empty", "A sonnet dataset has one poem line a line.")
    avg_len = sum(counter.count_with_special(line) for line in lines) / len(lines)
    if avg_len <= 0:
        raise _bad_file(path, "the poem lines have no tokens")
    base_fmt = counter.apply_chat_template(_SONNET_BASE)
    if base_fmt is None and chat_template and counter.kind != "words":
        raise UsageError(
            "the tokenizer has no chat template",
            where="--dataset-name sonnet",
            why="the sonnet dataset sends chat-formatted prompts to backends other than "
            "openai-chat (vLLM: Tokenizer/model must have chat template for sonnet dataset)",
            hint="Use --backend openai-chat, or a --tokenizer with a chat template.",
        )

    def formatted(prompt: str) -> str:
        return counter.apply_chat_template(prompt) or prompt

    base_offset = counter.count_with_special(formatted(_SONNET_BASE))
    if input_len <= base_offset:
        raise UsageError(
            "invalid value",
            where="--sonnet-input-len",
            why=f"must be over {base_offset} (the instruction's length), got {input_len}",
        )
    num_input_lines = round((input_len - base_offset) / avg_len)
    num_prefix_lines = max(round((prefix_len - base_offset) / avg_len), 0)
    prefix_lines = lines[:num_prefix_lines]
    # vLLM draws from the global generator its benchmark seeds with --seed.
    rnd = random.Random(seed)
    requests: list[SampleRequest] = []
    rejected = 0
    while len(requests) < num_requests:
        extra = rnd.choices(lines, k=num_input_lines - num_prefix_lines)
        prompt = _SONNET_BASE + "".join(prefix_lines + extra)
        prompt_formatted = formatted(prompt)
        prompt_len = counter.count_with_special(prompt_formatted)
        if prompt_len <= input_len:
            chosen = prompt_formatted if chat_template else prompt
            requests.append(SampleRequest(chosen, prompt_len, output_len))
            rejected = 0
            continue
        rejected += 1
        if rejected >= _SONNET_MAX_REJECTED:
            raise UsageError(
                "invalid value",
                where="--sonnet-input-len",
                why=f"{_SONNET_MAX_REJECTED} prompts in a row of {num_input_lines} poem "
                f"lines were over {input_len} tokens",
                hint="Raise --sonnet-input-len, or use shorter poem lines.",
            )
    return _with_ids(requests, request_id_prefix)


def sample_custom(
    counter: TokenCounter,
    num_requests: int,
    path: str,
    *,
    output_len: int | None = 256,
    chat_template: bool = True,
    seed: int = 0,
    request_id_prefix: str = "",
    shuffle: bool = True,
    oversample: bool = True,
) -> list[SampleRequest]:
    """A JSONL file with one ``{"prompt": ...}`` object per line, as vLLM's
    ``CustomDataset`` reads it: shuffled unless *shuffle* is False, the first
    *num_requests* lines (all when it is 0 or less) put in the tokenizer's chat format
    unless *chat_template* is False, their lengths counted with special tokens, and
    repeated at random up to *num_requests* unless *oversample* is False.

    *output_len* (``--custom-output-len``) is every request's output length; when it is
    -1 (or None) each line's ``output_tokens`` is (``max_tokens`` if it has none).
    vLLM's custom dataset shuffles and oversamples with seed 0 whatever ``--seed`` is,
    so *seed* is not used, and the prompts are vLLM's for any seed.

    Raises:
        UsageError: a line is not a JSON object with a ``prompt``; a line's output
            length is missing or not a number when *output_len* is -1; *chat_template*
            and the tokenizer has none (whitespace words have none: no template).
    """
    del seed  # see the docstring
    shape = 'Custom datasets are JSONL: one {"prompt": ...} object per line'
    lines = _read_jsonl_objects(path, shape)
    for lineno, obj in lines:
        if "prompt" not in obj:
            raise _bad_file(path, f"line {lineno}: each line needs a 'prompt' field", shape)
    if not lines:
        raise _bad_file(path, "no prompts", shape)
    if chat_template and counter.kind != "words" and counter.apply_chat_template("") is None:
        raise UsageError(
            "the tokenizer has no chat template",
            where="--dataset-name custom",
            why="custom prompts are put in the tokenizer's chat format",
            hint="Pass --skip-chat-template to send them as they are, or use a --tokenizer "
            "with a chat template.",
        )
    if shuffle:
        random.Random(_CUSTOM_SEED).shuffle(lines)
    if num_requests <= 0:
        num_requests = len(lines)
    per_line = output_len is None or output_len == -1
    requests: list[SampleRequest] = []
    for lineno, obj in lines[:num_requests]:
        out = _line_output_len(obj, lineno, path) if per_line else output_len
        assert out is not None
        prompt = obj["prompt"]
        text = prompt if isinstance(prompt, str) else json.dumps(prompt)
        if chat_template:
            text = counter.apply_chat_template(text) or text
            prompt = text
        requests.append(SampleRequest(prompt, counter.count_with_special(text), out))
    if oversample:
        requests = _oversample(requests, num_requests, _CUSTOM_SEED)
    return _with_ids(requests, request_id_prefix)


#: The seed vLLM's custom dataset shuffles and oversamples with: its benchmark doesn't
#: pass ``--seed`` to it.
_CUSTOM_SEED = 0


def _line_output_len(obj: dict[str, Any], lineno: int, path: str) -> int:
    """A custom line's own output length (``output_tokens``, else ``max_tokens``)."""
    raw = obj.get("output_tokens", obj.get("max_tokens"))
    if raw is None:
        why = f"line {lineno}: no 'output_tokens' (--custom-output-len is -1)"
        raise _bad_file(path, why, "Give each line output_tokens, or pass --custom-output-len N.")
    try:
        return int(raw)
    except (TypeError, ValueError, OverflowError):
        why = f"line {lineno}: output_tokens {raw!r} is not an integer"
        raise _bad_file(path, why) from None


def sample_requests(
    name: str,
    counter: TokenCounter,
    num_requests: int,
    *,
    path: str | None,
    seed: int,
    request_id_prefix: str,
    options: dict[str, Any],
) -> list[SampleRequest]:
    """Dispatch on the dataset *name* (``--dataset-name``); *options* are the
    sampler's own keyword arguments (``_plan`` maps the flags to them)."""
    import importlib

    name = canonical_dataset_name(name)
    if name not in _SAMPLERS:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASET_NAMES)}")
    if name in _SEEDLESS:
        seed = 0  # vLLM builds these without --seed: the same order as its runs
    common: dict[str, Any] = {"seed": seed, "request_id_prefix": request_id_prefix}
    if name in FILE_DATASETS:
        if path is None:
            raise missing_dataset_path(name)
        common["path"] = path
    module, function = _SAMPLERS[name]
    sampler = getattr(importlib.import_module(module, __package__), function)
    result: list[SampleRequest] = sampler(counter, num_requests, **common, **options)
    return result
