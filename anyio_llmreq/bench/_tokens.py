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

__all__ = [
    "FastTokenCounter",
    "HFTokenCounter",
    "TokenCounter",
    "WordCounter",
    "load_token_counter",
    "save_pending",
]

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

    def count(self, text: str) -> int:
        """Tokens in *text*, without the special tokens the tokenizer adds."""
        ...

    def count_with_special(self, text: str) -> int:
        """Tokens in *text* as ``len(tokenizer(text).input_ids)`` counts them: with the
        special tokens (BOS, EOS) the tokenizer adds, as vLLM's datasets count."""
        ...

    @property
    def all_special_ids(self) -> Sequence[int]:
        """The ids of the special tokens (``tokenizer.all_special_ids``)."""
        ...

    def num_special_tokens_to_add(self) -> int:
        """How many special tokens encoding one text adds."""
        ...

    def apply_chat_template(self, prompt: str) -> str | None:
        """*prompt* as one user message in the model's chat format (with the generation
        prompt), or None when there is no chat template."""
        ...

    def apply_chat_messages(self, messages: list[dict[str, Any]]) -> str | None:
        """*messages* in the model's chat format (with the generation prompt), or None
        when there is no chat template."""
        ...


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

    def count_with_special(self, text: str) -> int:
        return len(text.split())

    @property
    def all_special_ids(self) -> Sequence[int]:
        return ()

    def num_special_tokens_to_add(self) -> int:
        return 0

    def apply_chat_template(self, prompt: str) -> str | None:
        return None

    def apply_chat_messages(self, messages: list[dict[str, Any]]) -> str | None:
        return None


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

    def count_with_special(self, text: str) -> int:
        return len(self.tokenizer(text).input_ids)

    @property
    def all_special_ids(self) -> Sequence[int]:
        ids = getattr(self.tokenizer, "all_special_ids", None)
        if ids is None:  # mistral_common's adapter: BOS and EOS
            ids = [getattr(self.tokenizer, a, None) for a in ("bos_token_id", "eos_token_id")]
        return tuple(int(i) for i in ids if i is not None)

    def num_special_tokens_to_add(self) -> int:
        method = getattr(self.tokenizer, "num_special_tokens_to_add", None)
        if method is not None:
            return int(method())
        # A tokenizer without the method: what encoding an empty text adds.
        return self.count_with_special("") - len(self.encode(""))

    def apply_chat_template(self, prompt: str) -> str | None:
        """The prompt in the model's chat format, or None when it has no template."""
        return self.apply_chat_messages([{"role": "user", "content": prompt}])

    def apply_chat_messages(self, messages: list[dict[str, Any]]) -> str | None:
        if not getattr(self.tokenizer, "chat_template", None):
            return None
        return str(
            self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        )


@attrs.frozen
class FastTokenCounter:
    """A ``tokenizers`` backend saved from a transformers tokenizer that was checked to
    encode and decode exactly as it does (see ``_cached_counter``): the same counts and
    ids as ``HFTokenCounter`` without importing transformers, which with a large
    vocabulary takes seconds. Chat templates still go through transformers, loaded on
    the first ``apply_chat_template`` (only when the tokenizer has one)."""

    backend: Any
    name: str
    vocab_size: int
    cleanup: bool
    has_chat_template: bool
    load_full: Callable[[], HFTokenCounter] = attrs.field(repr=False)
    special_ids: tuple[int, ...] = ()
    _full: list[HFTokenCounter] = attrs.field(factory=list, repr=False, alias="_full")
    kind: str = "tokenizer"

    def encode(self, text: str) -> list[int]:
        return list(self.backend.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Sequence[int]) -> str:
        text = str(self.backend.decode([int(i) for i in ids], skip_special_tokens=False))
        return _clean_up(text) if self.cleanup else text

    def count(self, text: str) -> int:
        return len(self.backend.encode(text, add_special_tokens=False).ids)

    def count_with_special(self, text: str) -> int:
        return len(self.backend.encode(text, add_special_tokens=True).ids)

    @property
    def all_special_ids(self) -> Sequence[int]:
        return self.special_ids

    def num_special_tokens_to_add(self) -> int:
        return int(self.backend.num_special_tokens_to_add(False))

    def apply_chat_template(self, prompt: str) -> str | None:
        return self.apply_chat_messages([{"role": "user", "content": prompt}])

    def apply_chat_messages(self, messages: list[dict[str, Any]]) -> str | None:
        if not self.has_chat_template:
            return None
        if not self._full:
            self._full.append(self.load_full())
        return self._full[0].apply_chat_messages(messages)


def _clean_up(text: str) -> str:
    """transformers' ``clean_up_tokenization`` (used when the tokenizer's config asks)."""
    for old, new in _CLEAN_UP:
        text = text.replace(old, new)
    return text


_CLEAN_UP = (
    (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
    (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
)  # fmt: skip


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
) -> HFTokenCounter | FastTokenCounter:
    """Load the tokenizer *name* (a hub id, a local directory or a ``.gguf`` file) with
    ``get_tokenizer``, as vLLM's benchmark does: *tokenizer_mode* ``"slow"`` and
    ``"mistral"`` are honoured.

    A hub id is tried once against the hub: when the hub can't be reached (one check,
    ``HUB_CHECK_TIMEOUT`` seconds) only the local cache is used, since the hub client's
    retries would take tens of seconds to fail the same way.

    In ``"auto"`` mode a tokenizer loaded before from the same files (see
    ``_cached_counter``) comes back as a ``FastTokenCounter`` without transformers. One
    loaded through transformers is saved to that cache later (``save_pending``), off
    the way to the first request.

    Raises:
        UsageError: it can't be loaded; the reason and what to pass instead (*flag*
            names the flag that chose it).
    """
    from .._tokenizer import _hf_offline, get_tokenizer

    what = f"could not load the tokenizer {name!r}"
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

    def load() -> HFTokenCounter:
        _import_transformers_quietly()
        with _offline(offline):
            kwargs = {"local_files_only": True} if offline else {}
            tok = get_tokenizer(
                name, tokenizer_mode=tokenizer_mode, trust_remote_code=trust_remote_code, **kwargs
            )
        return HFTokenCounter(tok, name)

    save_pending()  # what an earlier load left: the cache may hold this one now
    entry = None
    if tokenizer_mode == "auto":
        entry = _cache_entry(name, trust_remote_code, offline or _hf_offline())
    if entry is not None:
        fast = _cached_counter(entry, name, load)
        if fast is not None:
            return fast
    try:
        counter = load()
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
    if entry is not None:
        _defer_store(entry, counter.tokenizer)
    return counter


# Tokenizers loaded through transformers and not yet checked and saved to the cache:
# at most one (each load first saves what the one before left), else saved at exit.
_PENDING: dict[str, Any] = {}
_save_at_exit_registered = False


def _defer_store(entry: str, tok: Any) -> None:
    """Save *tok* at *entry* later: checking and saving a large tokenizer takes about
    half a second, which would delay the first request (and during the run would
    stall the event loop: the GIL is held meanwhile)."""
    global _save_at_exit_registered
    if not _save_at_exit_registered:
        import atexit

        atexit.register(_save_at_exit)
        _save_at_exit_registered = True
    _PENDING[entry] = tok


def save_pending() -> None:
    """Check and save to the cache the tokenizers loaded through transformers that are
    not saved yet (``load_token_counter`` leaves them for later: the next load, or the
    end of the process). Never raises for a cache that can't be written."""
    while _PENDING:
        entry, tok = _PENDING.popitem()
        _store(entry, tok)


def _save_at_exit() -> None:
    try:
        save_pending()
    except KeyboardInterrupt:  # a second Ctrl-C while saving: leave the cache be
        _PENDING.clear()


# Files a tokenizer directory holds that no tokenizer reads: left out of the cache key.
_WEIGHTS = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".h5", ".msgpack", ".onnx")
_CACHE_FORMAT = "2"  # 2: meta.json holds the special ids
#: Cached tokenizers kept; the least recently used beyond this are deleted.
CACHE_ENTRIES = 16
# Verification texts: ASCII, spacing and punctuation that transformers' clean-up would
# change, digits, code, accents, CJK, emoji, RTL, control characters.
_PROBES = (
    "Hello , world . Isn 't it ? I 'm sure they 're right , aren 't they !",
    "  leading and trailing spaces  \t tabs\nnew lines\r\n\n",
    "The 3 quick brown foxes jumped 1234567890 times; 3.14159 != 2.71828.",
    "def f(x):\n    return {'a': [x ** 2, x // 3]}  # comment",
    "naïve café déjà vu — “quotes” ‘single’ …",
    "日本語のテキストと中文文本，한국어 텍스트。",
    "emoji 🙂🚀👩‍👩‍👧 and flags 🇫🇷",
    "مرحبا بالعالم שלום עולם",
    "\x00\x01 control \u200b zero width \ufeff bom",
    "Pick as many lines as you can from these poem lines:\n",
)


def _cache_dir() -> str:
    base = os.environ.get("ANYIO_LLMREQ_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "anyio_llmreq",
    )
    return os.path.join(base, "tokenizers")


def _cache_entry(name: str, trust_remote_code: bool, offline: bool) -> str | None:
    """The cache directory for the tokenizer *name* as its files are now, or None when
    it can't be keyed cheaply (no local files yet; a ``.gguf`` file; caching is off)."""
    if os.environ.get("ANYIO_LLMREQ_TOKENIZER_CACHE", "1").lower() in {"0", "off", "false", "no"}:
        return None
    try:
        where = name if os.path.isdir(name) else _snapshot_dir(name, offline)
        if where is None or not os.path.isfile(os.path.join(where, "tokenizer.json")):
            return None
        from importlib.metadata import version

        files = []
        for entry in sorted(os.listdir(where)):
            path = os.path.join(where, entry)
            if entry.endswith(_WEIGHTS) or not os.path.isfile(path):
                continue
            stat = os.stat(path)  # through the hub cache's links, to the blob
            files.append([entry, stat.st_size, stat.st_mtime_ns])
        key = [
            _CACHE_FORMAT,
            version("transformers"),
            version("tokenizers"),
            os.path.realpath(where),
            trust_remote_code,
            files,
        ]
    except Exception:
        return None
    import hashlib
    import json

    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:32]
    return os.path.join(_cache_dir(), digest)


def _snapshot_dir(name: str, offline: bool) -> str | None:
    """The hub snapshot *name* resolves to now (the hub asked once, as transformers
    would, unless offline), or None when it isn't a hub id or isn't downloaded."""
    if os.path.exists(name) or os.getenv("VLLM_USE_MODELSCOPE", "").lower() == "true":
        return None
    if not _REPO_ID.match(name):
        return None
    from huggingface_hub import hf_hub_download

    with _quiet_hub():
        path = hf_hub_download(name, "tokenizer_config.json", local_files_only=offline)
    return os.path.dirname(path)


def _quiet_hub() -> contextlib.AbstractContextManager[None]:
    """No progress bars from the hub client for one small file."""
    return _env_set("HF_HUB_DISABLE_PROGRESS_BARS")


@contextlib.contextmanager
def _env_set(name: str) -> Iterator[None]:
    """*name*=1 in the environment (which the hub client reads) for the block."""
    old = os.environ.get(name)
    os.environ[name] = "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ[name]
        else:
            os.environ[name] = old


def _cached_counter(
    entry: str, name: str, load: Callable[[], HFTokenCounter]
) -> FastTokenCounter | None:
    """The tokenizer cached at *entry*, or None when there is none (or it is unreadable:
    then transformers loads it, as without a cache)."""
    import json

    try:
        with open(os.path.join(entry, "meta.json"), encoding="utf-8") as f:
            meta = json.load(f)
        from tokenizers import Tokenizer

        backend = Tokenizer.from_file(os.path.join(entry, "tokenizer.json"))
        backend.no_truncation()
        backend.no_padding()
        os.utime(entry)  # recently used: kept by the pruning in _store
        return FastTokenCounter(
            backend,
            name,
            vocab_size=int(meta["vocab_size"]),
            cleanup=bool(meta["cleanup"]),
            has_chat_template=bool(meta["has_chat_template"]),
            load_full=load,
            special_ids=tuple(int(i) for i in meta["special_ids"]),
        )
    except Exception:
        return None


def _store(entry: str, tok: Any) -> None:
    """Save *tok*'s backend at *entry* if it encodes and decodes exactly as *tok* does;
    never raises (a run doesn't fail for want of a cache)."""
    import json
    import shutil
    import tempfile

    try:
        checked = _verified_backend(tok)
        if checked is None:
            return
        backend, cleanup = checked
        root = os.path.dirname(entry)
        os.makedirs(root, exist_ok=True)
        tmp = tempfile.mkdtemp(dir=root, prefix=".tmp-")
        try:
            backend.save(os.path.join(tmp, "tokenizer.json"))
            meta = {
                "vocab_size": int(tok.vocab_size),
                "cleanup": cleanup,
                "has_chat_template": bool(getattr(tok, "chat_template", None)),
                "special_ids": [int(i) for i in tok.all_special_ids],
            }
            with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as f:
                json.dump(meta, f)
            os.replace(tmp, entry)  # atomic: a reader sees all of it or none
        except BaseException:
            # Not left half-written, whatever stopped it (an OSError: no cache then).
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _prune(root)
    except Exception:
        return


def _prune(root: str) -> None:
    entries = [os.path.join(root, e) for e in os.listdir(root) if not e.startswith(".")]
    entries.sort(key=os.path.getmtime, reverse=True)
    import shutil

    for old in entries[CACHE_ENTRIES:]:
        shutil.rmtree(old, ignore_errors=True)


def _verified_backend(tok: Any) -> tuple[Any, bool] | None:
    """A copy of *tok*'s ``tokenizers`` backend and whether decoding applies
    transformers' clean-up, if on the probe texts, the tokenizer's added tokens and ids
    across the vocabulary the copy encodes and decodes exactly as *tok* (transformers
    v5 rebuilds some tokenizers from vocab and merges, so tokenizer.json alone is not
    proof); else None. Tokenizers whose class is not transformers' own (remote code)
    or that split special tokens are never cached."""
    backend_tok = getattr(tok, "backend_tokenizer", None)
    if backend_tok is None or not type(tok).__module__.startswith("transformers."):
        return None
    if getattr(tok, "split_special_tokens", False):
        return None
    # The backend itself, not a copy (parsing a large vocabulary again costs ~0.5 s):
    # its saved form reloads losslessly, and the loader turns truncation and padding
    # off as transformers does for each call.
    backend = backend_tok
    added = [str(t) for t in tok.get_added_vocab()]
    texts = [*_PROBES, *added, " ".join(added), "x".join(added[:50])]
    sequences: list[list[int]] = []
    for text in texts:
        want = list(tok(text, add_special_tokens=False).input_ids)
        if backend.encode(text, add_special_tokens=False).ids != want:
            return None
        # The datasets count prompts with the special tokens the tokenizer adds.
        if backend.encode(text).ids != list(tok(text).input_ids):
            return None
        sequences.append(want)
    vocab = int(tok.vocab_size)
    total = len(tok)
    sequences.append(list(range(min(vocab, 256))))
    sequences.append([(k * 7919 + 13) % vocab for k in range(512)])
    sequences.append(list(range(vocab, total))[:256])
    decoded = [(str(tok.decode(ids)), str(backend.decode(ids, skip_special_tokens=False)))
               for ids in sequences if ids]  # fmt: skip
    for cleanup in (False, True):
        if all(want == (_clean_up(raw) if cleanup else raw) for want, raw in decoded):
            break
    else:
        return None
    # When no probe told the two apart, a tokenizer that asks for clean-up is not cached.
    if getattr(tok, "clean_up_tokenization_spaces", False) and all(
        _clean_up(raw) == raw for _, raw in decoded
    ):
        return None
    for text, _ in decoded:  # the random dataset re-encodes decoded ids
        if backend.encode(text, add_special_tokens=False).ids != list(
            tok(text, add_special_tokens=False).input_ids
        ):
            return None
    return backend, cleanup


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


def _offline(on: bool) -> contextlib.AbstractContextManager[None]:
    """``HF_HUB_OFFLINE=1`` while loading when the hub is unreachable, for the loaders
    that take no ``local_files_only`` (mistral_common)."""
    return _env_set("HF_HUB_OFFLINE") if on else contextlib.nullcontext()
