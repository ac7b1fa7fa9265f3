"""``get_model`` and ``get_tokenizer``, as vLLM's benchmark defines them, without vLLM.

Everything heavy (transformers, modelscope, mistral_common) is imported only when
one of these functions needs it, so ``import anyio_llmreq`` stays light. Every failure
names what to install, or the path or name that was tried.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["MistralTokenizerAdapter", "get_model", "get_tokenizer"]

_IGNORED_WEIGHTS = [".*.pt", ".*.safetensors", ".*.bin"]
# Newest first: tekken.json, then the versioned SentencePiece files, then the plain one.
_MISTRAL_FILE = re.compile(r"^(tekken\.json|tokenizer\.model(\.v\d+(\.m\d+)?)?)$")


def _hf_offline() -> bool:
    """huggingface_hub's offline flag (read at its import), or the variable set since."""
    if os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}:
        return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(constants.HF_HUB_OFFLINE)


@contextlib.contextmanager
def _download_lock(name: str) -> Iterator[None]:
    """A per-model file lock, so concurrent processes don't download the same model."""
    try:
        import filelock
    except ImportError:
        yield
        return
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    path = os.path.join(tempfile.gettempdir(), f"anyio_llmreq-{digest}.lock")
    with filelock.FileLock(path):
        yield


def get_model(name: str) -> str:
    """Return a local path or hub name for *name* (vLLM's ``get_model``).

    With ``VLLM_USE_MODELSCOPE=true`` the model is fetched from ModelScope (weights
    excluded) and its local path returned; otherwise *name* is returned unchanged.

    Raises:
        ImportError: ModelScope is requested but not installed.
    """
    if os.getenv("VLLM_USE_MODELSCOPE", "False").lower() != "true":
        return name
    try:
        snapshot_download = importlib.import_module("modelscope").snapshot_download
    except (ImportError, AttributeError) as exc:
        raise ImportError(
            "VLLM_USE_MODELSCOPE=true needs modelscope: pip install 'anyio-llmreq[modelscope]' "
            f"({exc})"
        ) from exc
    with _download_lock(name):
        path: str = snapshot_download(
            model_id=name,
            local_files_only=_hf_offline(),
            ignore_file_pattern=_IGNORED_WEIGHTS,
        )
    return path


def get_tokenizer(
    name: str | os.PathLike[str],
    tokenizer_mode: str = "auto",
    trust_remote_code: bool = False,
    **kwargs: Any,
) -> Any:
    """Load a tokenizer the way vLLM's benchmark does.

    * a name that is not an existing path goes through ``get_model`` first;
    * ``tokenizer_mode="slow"`` loads the slow tokenizer (``use_fast=True`` is an error);
    * ``tokenizer_mode="mistral"`` loads ``tekken.json`` or ``tokenizer.model*`` with
      ``mistral_common`` (the ``mistral`` extra) and returns a
      ``MistralTokenizerAdapter``; *trust_remote_code* and *kwargs* are ignored;
    * a path to a ``.gguf`` file loads its tokenizer through transformers, which reads
      GGUF files only with torch and gguf installed. Where that fails with an
      ``ImportError``, this package reads the file itself (needing neither) and builds
      its byte-level BPE ("gpt2") or SentencePiece ("llama") tokenizer, nearly every GGUF
      file's, ignoring *kwargs* and *tokenizer_mode*; any other tokenizer model is an
      ``ImportError`` that names torch, and a byte-level BPE whose
      ``tokenizer.ggml.pre`` split is unknown here a ``ValueError`` that says to pass
      the model's Hugging Face tokenizer;
    * anything else is ``transformers.AutoTokenizer.from_pretrained``.

    Raises:
        ValueError: ``use_fast=True`` in slow mode; a GGUF file this package can't
            read correctly.
        ImportError: a package this mode needs is missing; the message says which.
        OSError: nothing loadable at the path or name tried; the message names it.
    """
    if name is not None and not os.path.exists(name):
        name = get_model(os.fspath(name))
    if tokenizer_mode == "slow":
        if kwargs.get("use_fast", False):
            raise ValueError("Cannot use the fast tokenizer in slow tokenizer mode.")
        kwargs["use_fast"] = False
    if tokenizer_mode == "mistral":
        return MistralTokenizerAdapter.from_pretrained(os.fspath(name))
    path = os.fspath(name)
    auto_tokenizer = _auto_tokenizer()
    gguf_path = path if path.endswith(".gguf") and os.path.isfile(path) else None
    if gguf_path is not None:
        # No gguf check here: without gguf (or torch) transformers raises ImportError
        # and our own reader, which needs neither, takes over.
        kwargs.setdefault("gguf_file", os.path.basename(gguf_path))
        path = os.path.dirname(os.path.abspath(gguf_path))
    try:
        return auto_tokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, **kwargs)
    except ImportError as exc:
        # transformers reads GGUF metadata only with torch installed (its ImportError does
        # not always say so): read the file ourselves.
        if gguf_path is None:
            raise
        try:
            return _load_gguf(gguf_path)
        except ImportError as own:
            raise own from exc
    except ValueError as exc:
        raise ValueError(f"could not load a tokenizer from {path!r}: {exc}") from exc
    except OSError as exc:
        raise OSError(f"could not load a tokenizer from {path!r}: {exc}") from exc


def _auto_tokenizer() -> Any:
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise ImportError(
            f"get_tokenizer needs transformers: pip install 'anyio-llmreq[bench]' ({exc})"
        ) from exc
    return AutoTokenizer


def _load_gguf(path: str) -> Any:
    from ._gguf import load_gguf_tokenizer

    return load_gguf_tokenizer(path)


class _Encoding(dict[str, Any]):
    """What ``tokenizer(text)`` returns: ``enc.input_ids`` and ``enc["input_ids"]``."""

    @property
    def input_ids(self) -> Any:
        return self["input_ids"]


class MistralTokenizerAdapter:
    """A ``mistral_common`` tokenizer with the small part of the transformers API that
    token counting needs: ``encode``, ``decode``, ``__call__(...).input_ids``.
    """

    def __init__(self, mistral_tokenizer: Any) -> None:
        self.mistral_tokenizer = mistral_tokenizer
        self._raw = mistral_tokenizer.instruct_tokenizer.tokenizer

    @classmethod
    def from_pretrained(cls, name: str) -> MistralTokenizerAdapter:
        """Load from a ``tekken.json``/``tokenizer.model*`` file, a directory holding
        one, or a Hugging Face hub repository.

        Raises:
            ImportError: ``mistral_common`` is not installed.
            OSError: no Mistral tokenizer file was found where *name* points.
        """
        try:
            module = importlib.import_module("mistral_common.tokens.tokenizers.mistral")
            MistralTokenizer = module.MistralTokenizer
        except (ImportError, AttributeError) as exc:
            raise ImportError(
                "tokenizer_mode='mistral' needs mistral_common: "
                f"pip install 'anyio-llmreq[mistral]' ({exc})"
            ) from exc
        if os.path.isfile(name):
            return cls(MistralTokenizer.from_file(name))
        if os.path.isdir(name):
            return cls(MistralTokenizer.from_file(_pick_mistral_file(name, os.listdir(name))))
        try:
            if hasattr(MistralTokenizer, "from_hf_hub"):
                return cls(MistralTokenizer.from_hf_hub(name, local_files_only=_hf_offline()))
            from huggingface_hub import hf_hub_download, list_repo_files

            filename = _pick_mistral_file(name, list_repo_files(name))
            return cls(MistralTokenizer.from_file(hf_hub_download(name, filename)))
        except OSError as exc:
            raise OSError(f"could not load a Mistral tokenizer from {name!r}: {exc}") from exc

    @property
    def vocab_size(self) -> int:
        return int(self._raw.n_words)

    @property
    def bos_token_id(self) -> int:
        return int(self._raw.bos_id)

    @property
    def eos_token_id(self) -> int:
        return int(self._raw.eos_id)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of *text*, with BOS first when *add_special_tokens*."""
        return list(self._raw.encode(text, bos=add_special_tokens, eos=False))

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """The text of *ids*."""
        return str(self._raw.decode(list(ids)))

    def __call__(self, text: str | Sequence[str], add_special_tokens: bool = True) -> _Encoding:
        if isinstance(text, str):
            ids: Any = self.encode(text, add_special_tokens)
        else:
            ids = [self.encode(t, add_special_tokens) for t in text]
        return _Encoding(input_ids=ids)

    def __len__(self) -> int:
        return self.vocab_size


def _pick_mistral_file(where: str, files: Sequence[str]) -> str:
    candidates = sorted(f for f in files if _MISTRAL_FILE.match(os.path.basename(f)))
    if not candidates:
        raise OSError(f"no Mistral tokenizer file (tekken.json or tokenizer.model*) in {where!r}")
    tekken = [f for f in candidates if f.endswith("tekken.json")]
    chosen = tekken[0] if tekken else candidates[-1]
    return os.path.join(where, chosen) if os.path.isdir(where) else chosen
