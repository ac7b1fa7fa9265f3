"""Deterministic mock tokens and the word counts that stand in for a tokenizer."""

from __future__ import annotations

from typing import Any

__all__ = ["count_words", "token_id", "token_words"]

# Each token is one whitespace-separated word with a leading space, so a client
# that counts words of the generated text counts exactly the generated tokens.
# None needs JSON escaping, so their UTF-8 bytes go into templates verbatim.
_ASCII = tuple(
    " " + w
    for w in (
        "the of and to in is was for on that with as by at from it an be this which "
        "or are not have but had his they one all were we"
    ).split()
)
# Multi-byte words (2-, 3- and 4-byte UTF-8) for clients' split-decoding tests.
_UNICODE = (" café", " 你好", " 😀", " naïve", " 世界", " 🚀", " ß", " данные")

_ASCII_CYCLE = tuple(_ASCII[i % len(_ASCII)] for i in range(len(_ASCII) * len(_UNICODE)))
_UNICODE_CYCLE = tuple(
    _UNICODE[(i // 2) % len(_UNICODE)] if i % 2 else _ASCII[i % len(_ASCII)]
    for i in range(len(_ASCII) * len(_UNICODE))
)
_ALL_WORDS = sorted(set(_ASCII) | set(_UNICODE))
_IDS = {w: 1000 + i for i, w in enumerate(_ALL_WORDS)}

# Keys that never carry prompt text (media URLs, roles, options).
_SKIP_KEYS = frozenset(
    {
        "model",
        "mock",
        "role",
        "type",
        "image_url",
        "video_url",
        "audio_url",
        "input_audio",
        "url",
        "stream",
        "stream_options",
        "parameters",
        "encoding_format",
        "truncate_prompt_tokens",
    }
)


def token_words(n: int, unicode: bool = False) -> list[str]:
    """The first ``n`` tokens of the mock output; with ``unicode`` every other one is
    a multi-byte word."""
    cycle = _UNICODE_CYCLE if unicode else _ASCII_CYCLE
    size = len(cycle)
    if n <= size:
        return list(cycle[:n])
    return [cycle[i % size] for i in range(n)]


def token_id(word: str) -> int:
    """A stable fake vocabulary id for a mock token."""
    return _IDS.get(word, 999)


# ASCII whitespace (what ``str.split`` splits on) -> " ", anything else -> "x".
_WORD_MAP = bytes(0x20 if chr(b).isspace() and b < 128 else 0x78 for b in range(256))


def _count_text(text: str) -> int:
    """``len(text.split())`` without building the list: a multi-turn history of 100k
    words counts in about a sixth of the time (ASCII text; other text is split)."""
    if len(text) < 256 or not text.isascii():
        return len(text.split())
    marks = text.encode("ascii").translate(_WORD_MAP)
    return marks.count(b" x") + (marks[:1] == b"x")


def count_words(value: Any) -> int:
    """Whitespace-separated words in every prompt-like string of a JSON value.

    A list of ints counts as that many token ids (pre-tokenized prompts).
    """
    if isinstance(value, str):
        return _count_text(value)
    if isinstance(value, list):
        if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return len(value)
        return sum(count_words(v) for v in value)
    if isinstance(value, dict):
        return sum(count_words(v) for k, v in value.items() if k not in _SKIP_KEYS)
    return 0
