"""The tokenizer of a GGUF file, read without torch.

transformers reads GGUF metadata only with torch installed. This module reads it itself
(the GGUF key/value section, with ``struct``) and builds a
``transformers.PreTrainedTokenizerFast`` from it with the ``tokenizers`` library, for the
two tokenizer models that nearly every GGUF file uses:

* ``gpt2``: byte-level BPE (Llama 3, Qwen, GPT-2, Mistral Nemo...), the vocabulary and the
  merges as the file lists them, split first as ``tokenizer.ggml.pre`` names (GPT-2's
  split when the key is missing, as transformers does). A name this module has no split
  for is a ``ValueError``: another split would count tokens wrong without a sign;
* ``llama``: SentencePiece (Llama 2, Mistral 7B, ...). llama.cpp tokenizes these by merging
  the adjacent pair whose merged piece scores highest, which is BPE with the merges ranked
  by the merged piece's score; transformers builds the same from a GGUF file.

A file that embeds a whole ``tokenizer.huggingface.json`` is loaded from that instead.
Every other tokenizer model is an ``ImportError`` that says transformers may load it
with torch installed.

``tokenizers`` and ``transformers`` are imported only when a file is loaded; the ``gguf``
package is not needed here.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["load_gguf_tokenizer"]

# llama.cpp's token types (gguf.TokenType).
_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED, _UNUSED, _BYTE = 1, 2, 3, 4, 5, 6

_SPM_SPACE = "\u2581"  # "▁", SentencePiece's spelling of a space

# How byte-level BPE vocabularies split text before merging, by ``tokenizer.ggml.pre``.
# A missing key, as in transformers, and the names mapped to None get GPT-2's split (the
# ByteLevel default). Any other name is refused, as llama.cpp refuses names it doesn't
# know: a guessed split counts tokens wrong without a sign.
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_GPT4O_SPLIT = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_TEKKEN_SPLIT = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# The names llama.cpp splits with GPT-2's expression.
_GPT2_NAMES = (
    "gpt-2", "phi-2", "jina-es", "jina-de", "jina-v2-es", "jina-v2-de", "jina-v2-code",
    "gigachat", "roberta-bpe", "mpt", "olmo", "jais",
)  # fmt: skip
_SPLITS: dict[str, str | None] = {
    **dict.fromkeys(_GPT2_NAMES, None),
    "tekken": _TEKKEN_SPLIT,
    **dict.fromkeys(("llama-bpe", "llama3", "llama-v3", "smaug-bpe", "dbrx"), _LLAMA3_SPLIT),
    **dict.fromkeys(("qwen2", "deepseek-r1-qwen", "megrez"), _QWEN2_SPLIT),
    **dict.fromkeys(("gpt-4o", "llama4"), _GPT4O_SPLIT),
}
# Vocabularies whose reference tokenizer takes a word that is a whole token as it is,
# without merging (llama.cpp's ignore_merges; "ignore_merges" in their tokenizer.json).
_IGNORE_MERGES = frozenset({"llama-bpe", "llama3", "llama-v3", "smaug-bpe", "dbrx"})

_SPECIAL_IDS = {
    "bos_token": "tokenizer.ggml.bos_token_id",
    "eos_token": "tokenizer.ggml.eos_token_id",
    "unk_token": "tokenizer.ggml.unknown_token_id",
    "pad_token": "tokenizer.ggml.padding_token_id",
}


def load_gguf_tokenizer(path: str | os.PathLike[str]) -> Any:
    """A ``transformers.PreTrainedTokenizerFast`` for the tokenizer of the GGUF file *path*.

    Raises:
        ImportError: tokenizers or transformers is missing, or the file's tokenizer
            model is one only transformers (with torch) can build; the message says which.
        ValueError: the file is not a GGUF file, or it holds no usable tokenizer, or its
            byte-level BPE names a ``tokenizer.ggml.pre`` split this module doesn't know.
    """
    path = os.fspath(path)
    meta = _read_metadata(path)
    model = meta.get("tokenizer.ggml.model")
    tokens = meta.get("tokenizer.ggml.tokens")
    if model is None or not tokens:
        raise ValueError(f"the GGUF file {path!r} holds no tokenizer (no tokenizer.ggml.model)")
    embedded = meta.get("tokenizer.huggingface.json")
    if isinstance(embedded, str):
        from tokenizers import Tokenizer

        return _wrap(Tokenizer.from_str(embedded), meta, model, embedded=True)
    if model == "gpt2":
        raw = _byte_level_bpe(meta, path)
    elif model == "llama":
        raw = _sentencepiece_bpe(meta, path)
    else:
        raise ImportError(
            f"the GGUF file {path!r} has a {model!r} tokenizer; without torch only 'gpt2' "
            "(byte-level BPE) and 'llama' (SentencePiece) tokenizers are read. transformers "
            "may load it with torch installed: pip install torch"
        )
    return _wrap(raw, meta, model)


def _read_metadata(path: str) -> dict[str, Any]:
    """The file's ``tokenizer.*`` and ``general.architecture`` values, as Python values."""
    try:
        with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _MetadataReader(data).read(
                lambda key: key.startswith("tokenizer.") or key == "general.architecture"
            )
    except (ValueError, OSError, struct.error, UnicodeDecodeError) as exc:
        raise ValueError(f"could not read the GGUF file {path!r}: {exc}") from exc


# GGUF value types (gguf.GGUFValueType), with the struct codes of the fixed-size ones.
_SCALARS = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
_STRING, _ARRAY = 8, 9


class _MetadataReader:
    """The key/value section at the start of a GGUF file (versions 1 to 3, either byte
    order), read with ``struct``. gguf.GGUFReader takes seconds per 100k tokens of
    vocabulary, as it makes a numpy view of every item; this takes a fraction of one."""

    def __init__(self, data: mmap.mmap) -> None:
        self.data = data
        self.offset = 0
        self.order = "<"
        self.size = "Q"  # lengths and counts: 64 bits, 32 in version 1

    def read(self, wanted: Callable[[str], bool]) -> dict[str, Any]:
        """The values of the keys *wanted* accepts."""
        if self.data[:4] != b"GGUF":
            raise ValueError("not a GGUF file (no GGUF magic)")
        self.offset = 4
        (version,) = self._unpack("I")
        if version & 0xFFFF == 0:  # written big-endian
            self.order = ">"
            version = int.from_bytes(version.to_bytes(4, "little"), "big")
        if not 1 <= version <= 3:
            raise ValueError(f"unknown GGUF version {version}")
        if version == 1:
            self.size = "I"
        _tensor_count, kv_count = self._unpack(self.size * 2)
        values: dict[str, Any] = {}
        for _ in range(kv_count):
            key = self._string(keep=True)
            (kind,) = self._unpack("I")
            keep = wanted(key)
            value = self._value(kind, keep)
            if keep:
                values[key] = value
        return values

    def _unpack(self, codes: str) -> tuple[Any, ...]:
        layout = struct.Struct(self.order + codes)
        items = layout.unpack_from(self.data, self.offset)
        self.offset += layout.size
        return items

    def _string(self, keep: bool) -> str:
        (length,) = self._unpack(self.size)
        start, self.offset = self.offset, self.offset + length
        if self.offset > len(self.data):
            raise ValueError("the file ends inside its metadata")
        return self.data[start : self.offset].decode("utf-8") if keep else ""

    def _value(self, kind: int, keep: bool) -> Any:
        """The next value, of GGUF type *kind*; skipped (``None``) unless *keep*."""
        if kind in _SCALARS:
            return self._unpack(_SCALARS[kind])[0]
        if kind == _STRING:
            return self._string(keep)
        if kind != _ARRAY:
            raise ValueError(f"unknown GGUF value type {kind}")
        item_kind, count = self._unpack("I" + self.size)
        if item_kind in _SCALARS:
            codes = f"{count}{_SCALARS[item_kind]}"
            if self.offset + struct.calcsize(self.order + codes) > len(self.data):
                raise ValueError("the file ends inside its metadata")
            if not keep:
                self.offset += struct.calcsize(self.order + codes)
                return None
            return list(self._unpack(codes))
        items = [self._value(item_kind, keep) for _ in range(count)]
        return items if keep else None


def _token_types(meta: dict[str, Any], count: int) -> list[int]:
    types = meta.get("tokenizer.ggml.token_type")
    if not isinstance(types, list) or len(types) != count:
        return [_NORMAL] * count
    return [int(t) for t in types]


def _vocab(tokens: Sequence[str]) -> dict[str, int]:
    """Token -> id; a token listed twice keeps its last id, as in llama.cpp and
    transformers."""
    return {token: index for index, token in enumerate(tokens)}


def _byte_alphabet() -> dict[int, str]:
    """GPT-2's byte -> printable character table, as byte-level BPE spells its tokens."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table = {byte: chr(byte) for byte in printable}
    shifted = 0
    for byte in range(256):
        if byte not in table:
            table[byte] = chr(256 + shifted)
            shifted += 1
    return table


def _byte_level_bpe(meta: dict[str, Any], path: str) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tokens: list[str] = meta["tokenizer.ggml.tokens"]
    types = _token_types(meta, len(tokens))
    spelling = _byte_alphabet()
    alphabet = set(spelling.values())
    # A few converters write a plain token in its UTF-8 text rather than in the byte
    # alphabet; respell those. Control and user-defined tokens are matched whole in the
    # text, never built by merges, so they keep their spelling.
    spelled = [
        token
        if types[index] in (_CONTROL, _USER_DEFINED) or set(token) <= alphabet
        else "".join(spelling[byte] for byte in token.encode("utf-8"))
        for index, token in enumerate(tokens)
    ]
    merges = [_merge_pair(m, path) for m in meta.get("tokenizer.ggml.merges") or []]
    pre = meta.get("tokenizer.ggml.pre")
    if pre is not None and (not isinstance(pre, str) or pre not in _SPLITS):
        known = ", ".join(sorted(_SPLITS))
        raise ValueError(
            f"the GGUF file {path!r} has the pre-tokenizer tokenizer.ggml.pre={pre!r}, which "
            f"this package can't reproduce (it knows: {known}); guessing would count tokens "
            "wrong. Pass the model's Hugging Face tokenizer instead (bench: --tokenizer "
            "ORG/MODEL or a directory with its tokenizer.json)"
        )
    vocab = _vocab(spelled)
    try:
        bpe = models.BPE(vocab, merges, ignore_merges=pre in _IGNORE_MERGES)
    except TypeError:  # tokenizers < 0.19 has no ignore_merges
        bpe = models.BPE(vocab, merges)
    raw = Tokenizer(bpe)
    split = _SPLITS[pre] if pre is not None else None
    if split is None:
        raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        from tokenizers import Regex

        raw.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(split), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    raw.decoder = decoders.ByteLevel()
    _add_tokens(raw, spelled, types)
    return raw


def _merge_pair(merge: str, path: str) -> tuple[str, str]:
    left, sep, right = merge.partition(" ")
    if not sep or not left or not right:
        raise ValueError(f"the GGUF file {path!r} has a malformed merge {merge!r}")
    return left, right


def _sentencepiece_bpe(meta: dict[str, Any], path: str) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tokens: list[str] = meta["tokenizer.ggml.tokens"]
    types = _token_types(meta, len(tokens))
    scores = meta.get("tokenizer.ggml.scores")
    if not isinstance(scores, list) or len(scores) != len(tokens):
        raise ValueError(
            f"the GGUF file {path!r} has a 'llama' tokenizer without one score per token"
        )
    vocab = _vocab(tokens)
    unk_id = meta.get("tokenizer.ggml.unknown_token_id")
    if not isinstance(unk_id, int) or not 0 <= unk_id < len(tokens):
        unk_id = next((i for i, t in enumerate(types) if t == _UNKNOWN), None)
    bpe = models.BPE(
        vocab,
        _merges_by_score(tokens, [float(s) for s in scores], types),
        unk_token=tokens[unk_id] if unk_id is not None else None,
        fuse_unk=True,
        byte_fallback=True,
    )
    raw = Tokenizer(bpe)
    add_space = meta.get("tokenizer.ggml.add_space_prefix", True) is not False
    raw.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement=_SPM_SPACE, prepend_scheme="first" if add_space else "never", split=False
    )
    steps = [decoders.Replace(_SPM_SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
    if add_space:
        steps.append(decoders.Strip(" ", 1, 0))
    raw.decoder = decoders.Sequence(steps)
    _add_tokens(raw, tokens, types)
    return raw


def _merges_by_score(
    tokens: Sequence[str], scores: Sequence[float], types: Sequence[int]
) -> list[tuple[str, str]]:
    """Every (left, right) pair of pieces that joins into another piece, best merged piece
    first: llama.cpp's SentencePiece tokenizer joins the pair whose join scores highest.
    Equal scores go to the longer left part, then the longer right part, then the piece
    listed first, which is the order transformers gives them."""
    ids = _vocab(tokens)
    ranked: list[tuple[float, int, int, int, int, int, str, str]] = []
    for index, piece in enumerate(tokens):
        if types[index] in (_UNKNOWN, _CONTROL, _BYTE) or ids[piece] != index:
            continue
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in ids and right in ids:
                key = (-scores[index], -cut, cut - len(piece), index, ids[left], ids[right])
                ranked.append((*key, left, right))
    ranked.sort()
    return [(left, right) for *_, left, right in ranked]


def _add_tokens(raw: Any, tokens: Sequence[str], types: Sequence[int]) -> None:
    """Control tokens become special tokens, user-defined ones plain added tokens: both
    are matched whole in the text, as llama.cpp does, instead of being cut up."""
    from tokenizers import AddedToken

    special = [
        AddedToken(t, normalized=False, special=True)
        for t, k in zip(tokens, types, strict=True)
        if k == _CONTROL
    ]
    added = [
        AddedToken(t, normalized=False, special=False)
        for t, k in zip(tokens, types, strict=True)
        if k == _USER_DEFINED
    ]
    if special:
        raw.add_special_tokens(special)
    if added:
        raw.add_tokens(added)


def _wrap(raw: Any, meta: dict[str, Any], model: str, embedded: bool = False) -> Any:
    """The transformers tokenizer around *raw*, with the file's special tokens, BOS/EOS
    flags and chat template. An *embedded* tokenizer.json keeps its own post-processor."""
    try:
        from transformers import PreTrainedTokenizerFast as fast_class
    except ImportError as exc:
        raise ImportError(
            f"get_tokenizer needs transformers: pip install 'anyio-llmreq[bench]' ({exc})"
        ) from exc
    tokens: list[str] = meta["tokenizer.ggml.tokens"]
    named: dict[str, str] = {}
    for name, key in _SPECIAL_IDS.items():
        token_id = meta.get(key)
        if isinstance(token_id, int) and 0 <= token_id < len(tokens):
            named[name] = raw.id_to_token(token_id) or tokens[token_id]
    extra: dict[str, Any] = {}
    if not embedded:
        # llama.cpp adds BOS to a SentencePiece vocabulary that does not say otherwise.
        add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", model == "llama"))
        add_eos = bool(meta.get("tokenizer.ggml.add_eos_token", False))
        extra["add_bos_token"] = add_bos = add_bos and "bos_token" in named
        extra["add_eos_token"] = add_eos = add_eos and "eos_token" in named
        # Also set here for transformers releases that leave add_bos_token to subclasses.
        raw.post_processor = _post_processor(
            named.get("bos_token") if add_bos else None,
            named.get("eos_token") if add_eos else None,
            raw,
        )
    chat_template = meta.get("tokenizer.chat_template")
    if isinstance(chat_template, str):
        extra["chat_template"] = chat_template
    make: Any = fast_class  # untyped in transformers
    return make(
        tokenizer_object=raw,
        clean_up_tokenization_spaces=False,
        **named,
        **extra,
    )


def _post_processor(bos: str | None, eos: str | None, raw: Any) -> Any:
    """BOS and/or EOS around each sequence, as transformers' Llama tokenizer does."""
    from tokenizers import processors

    def around(sequence: str, type_id: int) -> str:
        first = [f"{bos}:{type_id}"] if bos is not None else []
        last = [f"{eos}:{type_id}"] if eos is not None else []
        return " ".join([*first, f"{sequence}:{type_id}", *last])

    return processors.TemplateProcessing(
        single=around("$A", 0),
        pair=f"{around('$A', 0)} {around('$B', 1)}",
        special_tokens=[(t, raw.token_to_id(t)) for t in (bos, eos) if t is not None],
    )
