"""Prompt datasets: random, ShareGPT, sonnet, custom JSONL and prefix repetition.

Each sampler is pure apart from reading its file, and deterministic for a seed. Lengths
are counted with a ``TokenCounter`` (a tokenizer, or whitespace words).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

import attrs

from ._config import UsageError
from ._tokens import TokenCounter

__all__ = [
    "DATASET_NAMES",
    "SampleRequest",
    "sample_custom",
    "sample_prefix_repetition",
    "sample_random",
    "sample_sharegpt",
    "sample_sonnet",
]

DATASET_NAMES = ("random", "sharegpt", "sonnet", "custom", "prefix-repetition")


@attrs.frozen
class SampleRequest:
    """One prompt to send (vLLM's ``SampleRequest``)."""

    prompt: Any
    prompt_len: int
    expected_output_len: int
    request_id: str = ""


def _with_ids(requests: list[SampleRequest], prefix: str) -> list[SampleRequest]:
    return [attrs.evolve(r, request_id=f"{prefix}{i}") for i, r in enumerate(requests)]


def _text_of_len(counter: TokenCounter, ids: list[int], target: int) -> tuple[str, int]:
    """Decode *ids*; for a real tokenizer re-encode and cut to *target* tokens."""
    text = counter.decode(ids)
    if counter.kind == "words":
        return text, len(ids)
    again = counter.encode(text)
    if len(again) > target:
        text = counter.decode(again[:target])
    return text, counter.count(text)


def sample_random(
    counter: TokenCounter,
    num_requests: int,
    *,
    input_len: int = 1024,
    output_len: int = 128,
    range_ratio: float = 0.0,
    prefix_len: int = 0,
    seed: int = 0,
    request_id_prefix: str = "",
) -> list[SampleRequest]:
    """Random token prompts (vLLM's ``RandomDataset``): lengths uniform in
    ``[len * (1 - ratio), len * (1 + ratio)]``, a shared random prefix of *prefix_len*."""
    import numpy as np

    if not 0.0 <= range_ratio < 1.0:
        why = f"must be in [0, 1), got {range_ratio:g}"
        raise UsageError("invalid value", where="--random-range-ratio", why=why)
    rng = np.random.default_rng(seed)
    vocab = counter.vocab_size
    in_low, in_high = int(input_len * (1 - range_ratio)), int(input_len * (1 + range_ratio))
    out_low = max(int(output_len * (1 - range_ratio)), 1)
    out_high = max(int(output_len * (1 + range_ratio)), 1)
    input_lens = rng.integers(in_low, in_high + 1, size=num_requests)
    output_lens = rng.integers(out_low, out_high + 1, size=num_requests)
    offsets = rng.integers(0, vocab, size=num_requests)
    prefix = rng.integers(0, vocab, size=prefix_len).tolist() if prefix_len > 0 else []
    requests = []
    for i in range(num_requests):
        inner = ((int(offsets[i]) + i + np.arange(int(input_lens[i]))) % vocab).tolist()
        ids = prefix + inner
        prompt, length = _text_of_len(counter, ids, len(ids))
        requests.append(SampleRequest(prompt, length, int(output_lens[i])))
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
) -> list[SampleRequest]:
    """*num_prefixes* random prefixes, each shared by an equal share of the requests
    (vLLM's ``PrefixRepetitionRandomDataset``); shuffled."""
    import numpy as np

    rng = np.random.default_rng(seed)
    vocab = counter.vocab_size
    num_prefixes = max(1, min(num_prefixes, num_requests))
    per_prefix = -(-num_requests // num_prefixes)
    requests = []
    for _ in range(num_prefixes):
        prefix = rng.integers(0, vocab, size=prefix_len).tolist()
        for _ in range(per_prefix):
            suffix = rng.integers(0, vocab, size=suffix_len).tolist()
            ids = prefix + suffix
            prompt, length = _text_of_len(counter, ids, len(ids))
            requests.append(SampleRequest(prompt, length, output_len))
    random.Random(seed).shuffle(requests)
    return _with_ids(requests[:num_requests], request_id_prefix)


def sample_sharegpt(
    counter: TokenCounter,
    num_requests: int,
    path: str,
    *,
    output_len: int | None = None,
    seed: int = 0,
    request_id_prefix: str = "",
) -> list[SampleRequest]:
    """The first two turns of ShareGPT conversations (vLLM's filter: prompt and output
    of at least 4 tokens, prompt at most 1024, both together at most 2048)."""
    data = _read_json(path)
    convs = _sharegpt_conversations(data, path)
    random.Random(seed).shuffle(convs)
    requests: list[SampleRequest] = []
    for conv in convs:
        if len(requests) >= num_requests:
            break
        prompt, completion = conv[0]["value"], conv[1]["value"]
        prompt_len = counter.count(prompt)
        out_len = output_len if output_len is not None else counter.count(completion)
        if prompt_len < 4 or (output_len is None and out_len < 4):
            continue
        if prompt_len > 1024 or prompt_len + out_len > 2048:
            continue
        requests.append(SampleRequest(prompt, prompt_len, out_len))
    if not requests:
        raise _bad_file(
            path,
            "no usable conversation (a prompt and a reply of 4 to 1024 tokens each)",
            hint="Check the file, or pass --sharegpt-output-len.",
        )
    return _with_ids(_oversample(requests, num_requests, seed), request_id_prefix)


def missing_dataset_path(name: str) -> UsageError:
    """The error for a file dataset given no ``--dataset-path``."""
    return UsageError(
        "missing dataset file",
        where="--dataset-path",
        why=f"--dataset-name {name} needs --dataset-path",
        hint="Pass --dataset-path PATH, or use --dataset-name random.",
    )


def _bad_file(path: str, why: str, hint: str | None = None) -> UsageError:
    return UsageError(
        "invalid dataset", where=f"--dataset-path {path}", why=why, hint=hint or "Check the file."
    )


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


def _read_json(path: str) -> Any:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        why = f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        raise _bad_file(path, why) from None


def _sharegpt_conversations(data: Any, path: str) -> list[list[dict[str, Any]]]:
    """The conversations of at least two turns; a ``UsageError`` naming the first record
    and field that isn't ShareGPT's shape (``[{"conversations": [{"value": ...}, ...]}]``)."""
    shape = 'ShareGPT is a JSON list of {"conversations": [{"from": ..., "value": ...}, ...]}'
    if not isinstance(data, list):
        raise _bad_file(path, f"expected a JSON list of records, got {_kind(data)}", shape)
    convs = []
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
        convs.append(conv)
    return convs


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", type(None): "null"}
    return names.get(type(value), f"a {type(value).__name__}")


def _oversample(requests: list[SampleRequest], n: int, seed: int) -> list[SampleRequest]:
    if len(requests) >= n:
        return requests[:n]
    rnd = random.Random(seed)
    return requests + [rnd.choice(requests) for _ in range(n - len(requests))]


def sample_sonnet(
    counter: TokenCounter,
    num_requests: int,
    path: str,
    *,
    input_len: int = 550,
    output_len: int = 150,
    prefix_len: int = 200,
    seed: int = 0,
    chat_template: bool = True,
    request_id_prefix: str = "",
) -> list[SampleRequest]:
    """Poem lines (vLLM's ``SonnetDataset``): a fixed prefix of lines plus random lines up
    to *input_len* tokens, behind "Pick as many lines as you can...". With a tokenizer
    that has a chat template and *chat_template*, the prompt is put in chat format."""
    lines = _read_text(path).splitlines(keepends=True)
    if not lines:
        raise _bad_file(path, "the file is empty", "A sonnet dataset has one poem line a line.")
    base = "Pick as many lines as you can from these poem lines:\n"
    base_len = counter.count(base)
    avg = sum(counter.count(line) for line in lines) / len(lines)
    if input_len <= base_len:
        raise UsageError(
            "invalid value",
            where="--sonnet-input-len",
            why=f"must be over {base_len} (the instruction's length), got {input_len}",
        )
    n_prefix = max(round((prefix_len - base_len) / avg), 0)
    n_input = max(round((input_len - base_len) / avg), n_prefix)
    prefix_lines = lines[:n_prefix]
    rnd = random.Random(seed)
    requests = []
    for _ in range(num_requests):
        extra = rnd.choices(lines, k=n_input - n_prefix)
        prompt = base + "".join(prefix_lines + extra)
        formatted = None
        template = getattr(counter, "apply_chat_template", None)
        if chat_template and template is not None:
            formatted = template(prompt)
        prompt = formatted or prompt
        requests.append(SampleRequest(prompt, counter.count(prompt), output_len))
    return _with_ids(requests, request_id_prefix)


def sample_custom(
    counter: TokenCounter,
    num_requests: int,
    path: str,
    *,
    output_len: int = 256,
    seed: int = 0,
    shuffle: bool = False,
    request_id_prefix: str = "",
) -> list[SampleRequest]:
    """A JSONL file with one ``{"prompt": ...}`` object per line. A line's own
    ``output_tokens`` or ``max_tokens`` wins over *output_len* (``-1`` requires it)."""
    requests: list[SampleRequest] = []
    shape = 'Custom datasets are JSONL: one {"prompt": ...} object per line'
    for lineno, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _bad_file(
                path, f"line {lineno}: not valid JSON: {exc.msg} at column {exc.colno}", shape
            ) from None
        if not isinstance(obj, dict) or "prompt" not in obj:
            raise _bad_file(path, f"line {lineno}: each line needs a 'prompt' field", shape)
        prompt = obj["prompt"]
        out = obj.get("output_tokens", obj.get("max_tokens", output_len))
        try:
            out = None if out is None else int(out)
        except (TypeError, ValueError):
            why = f"line {lineno}: output_tokens/max_tokens {out!r} is not a number"
            raise _bad_file(path, why) from None
        if out is None or out < 0:
            why = f"line {lineno}: no output length"
            raise _bad_file(path, why, "Give each line output_tokens, or pass --custom-output-len.")
        text = prompt if isinstance(prompt, str) else json.dumps(prompt)
        requests.append(SampleRequest(prompt, counter.count(text), out))
    if not requests:
        raise _bad_file(path, "no prompts", shape)
    if shuffle:
        random.Random(seed).shuffle(requests)
    return _with_ids(_oversample(requests, num_requests, seed), request_id_prefix)


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
    """Dispatch on the dataset *name* (``--dataset-name``)."""
    common: dict[str, Any] = {"seed": seed, "request_id_prefix": request_id_prefix}
    if name == "random":
        return sample_random(counter, num_requests, **common, **options)
    if name == "prefix-repetition":
        return sample_prefix_repetition(counter, num_requests, **common, **options)
    if path is None:
        raise missing_dataset_path(name)
    if name == "sharegpt":
        return sample_sharegpt(counter, num_requests, path, **common, **options)
    if name == "sonnet":
        return sample_sonnet(counter, num_requests, path, **common, **options)
    if name == "custom":
        return sample_custom(counter, num_requests, path, **common, **options)
    raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASET_NAMES)}")


def _unused(_: Sequence[Any]) -> None:  # pragma: no cover - keeps Sequence imported
    pass
