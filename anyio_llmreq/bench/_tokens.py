"""Token counters for prompts and outputs: a Hugging Face tokenizer, or whitespace words.

Whitespace words are the embedded mock server's token rule, so a run against it needs no
tokenizer download and counts exactly what the server counts.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import attrs

from ._config import UsageError

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


_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
#: How long the one reachability check of the hub may take.
HUB_CHECK_TIMEOUT = 3.0
_FIX = (
    "Pass --tokenizer PATH (a local tokenizer directory or .gguf file), or "
    "--tokenizer-mode words to count whitespace words"
)


def load_token_counter(
    name: str,
    tokenizer_mode: str = "auto",
    trust_remote_code: bool = False,
    *,
    flag: str = "--tokenizer",
    say: Callable[[str], None] | None = None,
) -> HFTokenCounter:
    """Load the tokenizer *name* (a hub id, a local directory or a ``.gguf`` file) with
    ``get_tokenizer``, as vLLM's benchmark does: *tokenizer_mode* ``"slow"`` and
    ``"mistral"`` are honoured.

    A hub id is tried once against the hub: when the hub can't be reached (one check,
    ``HUB_CHECK_TIMEOUT`` seconds) only the local cache is used, since the hub client's
    retries would take tens of seconds to fail the same way.

    Raises:
        UsageError: it can't be loaded; the reason and what to pass instead (*flag*
            names the flag that chose it).
    """
    from .._tokenizer import _hf_offline, get_tokenizer

    what = f"could not load the tokenizer {name!r}"
    _import_transformers_quietly()
    offline = False
    if not os.path.exists(name) and os.getenv("VLLM_USE_MODELSCOPE", "").lower() != "true":
        if _looks_like_path(name) or not _REPO_ID.match(name):
            why = (
                "no such file or directory"
                if _looks_like_path(name)
                else "it is neither a local path nor a Hugging Face model id"
            )
            raise UsageError(what, where=flag, why=why, hint=_FIX + ".")
        if not _hf_offline() and not _hub_reachable():
            offline = True
    try:
        with _offline(offline):
            kwargs = {"local_files_only": True} if offline else {}
            tok = get_tokenizer(
                name, tokenizer_mode=tokenizer_mode, trust_remote_code=trust_remote_code, **kwargs
            )
    except ImportError as exc:
        raise UsageError(what, where=flag, why=_first_line(exc), hint=_FIX + ".") from None
    except Exception as exc:
        if offline:
            why = f"{_hub_host()} is not reachable and it is not in the local cache"
        elif _hf_offline():
            why = f"HF_HUB_OFFLINE is set and it is not in the local cache ({_first_line(exc)})"
        else:
            why = _first_line(exc)
        hint = _FIX + "; set HF_HUB_OFFLINE=1 to use only cached tokenizers without the hub."
        raise UsageError(what, where=flag, why=why, hint=hint) from None
    if offline and say is not None:
        say(f"{_hub_host()} is not reachable: using the cached tokenizer {name!r}.")
    return HFTokenCounter(tok, name)


def _import_transformers_quietly() -> None:
    """Import transformers without its "PyTorch was not found" notice: the bench only
    tokenizes, which needs no PyTorch, and stderr is for the bench's own errors."""
    import sys

    if "transformers" in sys.modules or "TRANSFORMERS_VERBOSITY" in os.environ:
        return
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    try:
        import transformers
    except ImportError:
        return
    finally:
        del os.environ["TRANSFORMERS_VERBOSITY"]
    transformers.logging.set_verbosity_warning()  # type: ignore[no-untyped-call]


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith(("/", "./", "../", "~", "\\"))
        or name.endswith(".gguf")
        or (os.sep != "/" and os.sep in name)
    )


def _first_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= 300 else text[:297] + "..."


def _hub_host() -> str:
    from urllib.parse import urlsplit

    return urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "the hub"


def _hub_reachable(timeout: float = HUB_CHECK_TIMEOUT) -> bool:
    """Whether a TCP connection to the hub opens within *timeout* (name lookup included,
    which a socket timeout doesn't bound: it runs in a thread we stop waiting for).
    Behind a proxy the hub is assumed reachable: only the proxy could tell."""
    import socket
    import threading
    from urllib.parse import urlsplit

    if any(os.environ.get(v) for v in _PROXY_VARS):
        return True
    parts = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = parts.hostname
    if not host:
        return True
    port = parts.port or (80 if parts.scheme == "http" else 443)
    ok: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=connect, name="anyio-llmreq-hub-check", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(ok)


@contextlib.contextmanager
def _offline(on: bool) -> Iterator[None]:
    """``HF_HUB_OFFLINE=1`` while loading when the hub is unreachable, for the loaders
    that take no ``local_files_only`` (mistral_common)."""
    if not on:
        yield
        return
    old = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ["HF_HUB_OFFLINE"]
        else:
            os.environ["HF_HUB_OFFLINE"] = old
