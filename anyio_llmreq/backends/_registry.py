"""Registry of backends by name (vLLM's ``--backend`` keys plus our own)."""

from __future__ import annotations

from .._exceptions import ConfigError
from ._base import Backend
from ._openai import OpenAIChat, OpenAICompletions

__all__ = ["backend_names", "get_backend", "register_backend"]

_completions = OpenAICompletions()
_chat = OpenAIChat()

# Insertion order is the order `ASYNC_REQUEST_FUNCS` lists them in.
_BACKENDS: dict[str, Backend] = {
    "vllm": _completions,
    "lmdeploy": _completions,
    "openai": _completions,
    "openai-chat": _chat,
    "scalellm": _completions,
    "sglang": _completions,
    "llama.cpp": _completions,
}


def get_backend(name: str) -> Backend:
    """Return the backend registered under *name*.

    Raises:
        ConfigError: no backend has that name.
    """
    try:
        return _BACKENDS[name]
    except KeyError:
        known = ", ".join(sorted(_BACKENDS))
        raise ConfigError(f"unknown backend {name!r}; known backends: {known}") from None


def register_backend(name: str, backend: Backend, *, replace: bool = False) -> None:
    """Register *backend* under *name* so the engine, compat layer and bench can use it.

    Raises:
        ConfigError: *name* is taken and *replace* is false.
    """
    if name in _BACKENDS and not replace:
        raise ConfigError(f"a backend is already registered as {name!r}; pass replace=True")
    _BACKENDS[name] = backend


def backend_names() -> list[str]:
    """All registered names, in registration order."""
    return list(_BACKENDS)
