"""Token counters for prompts and outputs: a Hugging Face tokenizer, or whitespace words.

Whitespace words are the embedded mock server's token rule, so a run against it needs no
tokenizer download and counts exactly what the server counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import attrs

__all__ = ["HFTokenCounter", "TokenCounter", "WordCounter", "load_token_counter"]

# A plain vocabulary for word prompts: one ASCII word per token, no escaping needed.
_VOCAB = tuple(
    (
        "the of and to in is was for on that with as by at from it an be this which or are "
        "not have but had his they one all were we time year people way day man thing woman "
        "life child world school state family student group country problem hand part place "
        "case week company system program question work government number night point home "
        "water room mother area money story fact month lot right study book eye job word "
        "business issue side kind head house service friend father power hour game line end "
        "member law car city community name president team minute idea kid body information "
        "back parent face others level office door health person art war history party result"
    ).split()
)
_INDEX = {w: i for i, w in enumerate(_VOCAB)}


class TokenCounter(Protocol):
    """What the bench needs from a tokenizer."""

    @property
    def kind(self) -> str:
        """``"words"`` or ``"tokenizer"``: the label the report shows."""
        ...

    @property
    def name(self) -> str:
        """The tokenizer id for the result JSON."""
        ...

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def count(self, text: str) -> int: ...


@attrs.frozen
class WordCounter:
    """Whitespace words: ``count`` is ``len(text.split())``; ids index a small vocabulary."""

    kind: str = "words"
    name: str = "whitespace-words"

    @property
    def vocab_size(self) -> int:
        return len(_VOCAB)

    def encode(self, text: str) -> list[int]:
        return [_INDEX.get(w, 0) for w in text.split()]

    def decode(self, ids: Sequence[int]) -> str:
        n = len(_VOCAB)
        return " ".join(_VOCAB[int(i) % n] for i in ids)

    def count(self, text: str) -> int:
        return len(text.split())


@attrs.frozen
class HFTokenCounter:
    """A ``transformers`` tokenizer; counts exclude special tokens."""

    tokenizer: Any
    name: str
    kind: str = "tokenizer"

    @property
    def vocab_size(self) -> int:
        return int(self.tokenizer.vocab_size)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids)))

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def apply_chat_template(self, prompt: str) -> str | None:
        """The prompt in the model's chat format, or None when it has no template."""
        if not getattr(self.tokenizer, "chat_template", None):
            return None
        return str(
            self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
            )
        )


def load_token_counter(
    name: str, tokenizer_mode: str = "auto", trust_remote_code: bool = False
) -> HFTokenCounter:
    """Load the tokenizer *name* (a hub id, a local directory or a ``.gguf`` file) with
    ``get_tokenizer``, as vLLM's benchmark does: *tokenizer_mode* ``"slow"`` and
    ``"mistral"`` are honoured.

    Raises:
        Exception: whatever ``get_tokenizer`` raises when it can't load it.
    """
    from .._tokenizer import get_tokenizer

    tok = get_tokenizer(name, tokenizer_mode=tokenizer_mode, trust_remote_code=trust_remote_code)
    return HFTokenCounter(tok, name)
