"""Drop-in replacements for vLLM's ``backend_request_func`` module.

Each ``async_request_*`` function takes ``(request_func_input, pbar=None)`` like the
reference, updates ``pbar`` once, and returns a ``RequestFuncOutput``; a failed request
is an output with ``success=False``, never an exception. They work when awaited under
``asyncio.run``, uvloop, ``trio.run`` and ``anyio.run``.

Unlike the reference, which opens an aiohttp session per request, calls made in one event
loop share one pooled ``Client``; it is closed when the event loop ends. Its deadlines are
``set_default_timeouts``'s (by default ``Timeouts()``: no total deadline); a request's own
``RequestFuncInput.timeout`` bounds that request.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from ._client import Client
from ._engine import Timeouts
from ._models import RequestFuncInput, RequestFuncOutput
from .backends._registry import backend_names, get_backend, on_register

if TYPE_CHECKING:
    from anyio.lowlevel import RunVar

__all__ = [
    "ASYNC_REQUEST_FUNCS",
    "OPENAI_COMPATIBLE_BACKENDS",
    "RequestFunc",
    "async_request_deepspeed_mii",
    "async_request_infinity_embeddings",
    "async_request_infinity_embeddings_clip",
    "async_request_openai_audio",
    "async_request_openai_chat_completions",
    "async_request_openai_completions",
    "async_request_openai_embeddings",
    "async_request_openai_embeddings_chat",
    "async_request_openai_embeddings_clip",
    "async_request_openai_embeddings_vlm2vec",
    "async_request_tgi",
    "async_request_trt_llm",
    "async_request_vllm_pooling",
    "async_request_vllm_rerank",
    "make_request_func",
    "set_default_timeouts",
    "shared_client",
]


class RequestFunc(Protocol):
    """The reference's request-function signature (plus an optional client)."""

    __name__: str
    #: The registry key of the backend it sends with (looked up at each call).
    backend_name: str

    async def __call__(
        self,
        request_func_input: RequestFuncInput,
        pbar: Any | None = None,
        *,
        client: Client | None = None,
    ) -> RequestFuncOutput: ...


class _Shared:
    """The shared client of one event loop. A plain class: an attrs one would compile
    its methods at import, for an object made once per loop."""

    __slots__ = ("client", "lifetime", "owner")

    def __init__(
        self, client: Client, lifetime: AsyncGenerator[None, None], owner: object = None
    ) -> None:
        self.client = client
        # Keeps the lifetime generator alive until the event loop finalizes it.
        self.lifetime = lifetime
        # The event loop (asyncio) or run (trio token) it belongs to; None: unknown.
        self.owner = owner


# Made on first use: ``anyio.lowlevel`` (and the event-loop detection it loads) is not
# needed to import the library.
_SHARED: RunVar[_Shared] | None = None
# The shared client last looked up, with its loop: a ``RunVar`` lookup (anyio's backend
# detection, then a weak mapping) costs more per request than all of this module.
_last: _Shared | None = None


def _run_owner() -> object:
    """The running asyncio loop or trio run (its token); None when neither is known."""
    # Through sys.modules: importing the library does not import asyncio (a trio
    # application never needs it), and no asyncio loop runs before it is imported.
    asyncio = sys.modules.get("asyncio")
    loop = None if asyncio is None else asyncio._get_running_loop()
    if loop is not None:
        return loop
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            return trio.lowlevel.current_trio_token()
        except RuntimeError:
            pass
    return None


def _shared_var() -> RunVar[_Shared]:
    global _SHARED
    if _SHARED is None:
        from anyio.lowlevel import RunVar

        _SHARED = RunVar("anyio_llmreq.shared_client")
    return _SHARED


_default_timeouts = Timeouts()


def set_default_timeouts(timeouts: Timeouts) -> None:
    """Set the deadlines of the shared clients the request functions use, for the whole
    script: e.g. ``set_default_timeouts(Timeouts(total=60, read=10))`` at its top.

    Applies from the next request on, in every event loop.
    """
    global _default_timeouts
    if not isinstance(timeouts, Timeouts):
        raise TypeError(f"expected Timeouts, got {type(timeouts).__name__}")
    _default_timeouts = timeouts


async def shared_client() -> Client:
    """The pooled client of the running event loop, created on first use.

    It is closed when the event loop ends: an async generator suspended in its ``try``
    block is finalized by the loop at shutdown (``asyncio.run`` and uvloop call
    ``shutdown_asyncgens``, trio finalizes leftover generators at the end of
    ``trio.run``), and its ``finally`` closes the client. No task is left running.
    """
    global _last
    owner = _run_owner()
    shared = _last
    if shared is None or owner is None or shared.owner is not owner:
        try:
            shared = _shared_var().get()
        except LookupError:
            shared = None
        if shared is not None and owner is not None:
            shared.owner = owner
            _last = shared
    if shared is not None:
        client = shared.client
        client.timeouts = _default_timeouts
        return client
    client = Client(timeouts=_default_timeouts)
    await client.__aenter__()
    lifetime = _close_at_loop_end(client)
    await lifetime.__anext__()
    shared = _Shared(client, lifetime, owner)
    _shared_var().set(shared)
    if owner is not None:
        _last = shared
    return client


async def _close_at_loop_end(client: Client) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        with anyio.CancelScope(shield=True):
            await client.aclose()


def make_request_func(backend_name: str, func_name: str) -> RequestFunc:
    """Build a reference-style request function for the backend *backend_name*."""

    async def request_func(
        request_func_input: RequestFuncInput,
        pbar: Any | None = None,
        *,
        client: Client | None = None,
    ) -> RequestFuncOutput:
        backend = get_backend(backend_name)
        if client is None:
            client = await shared_client()
        output = await client.send(backend, request_func_input)
        if pbar is not None:
            pbar.update(1)
        return output

    request_func.__name__ = request_func.__qualname__ = func_name
    request_func.__doc__ = (
        f"Send one request with the {backend_name!r} backend; never raises for a failed request."
    )
    request_func.backend_name = backend_name  # type: ignore[attr-defined]
    return request_func  # type: ignore[return-value]


async_request_tgi = make_request_func("tgi", "async_request_tgi")
async_request_trt_llm = make_request_func("tensorrt-llm", "async_request_trt_llm")
async_request_deepspeed_mii = make_request_func("deepspeed-mii", "async_request_deepspeed_mii")
async_request_openai_completions = make_request_func("openai", "async_request_openai_completions")
async_request_openai_chat_completions = make_request_func(
    "openai-chat", "async_request_openai_chat_completions"
)
async_request_openai_audio = make_request_func("openai-audio", "async_request_openai_audio")
async_request_openai_embeddings = make_request_func(
    "openai-embeddings", "async_request_openai_embeddings"
)
async_request_openai_embeddings_chat = make_request_func(
    "openai-embeddings-chat", "async_request_openai_embeddings_chat"
)
async_request_openai_embeddings_clip = make_request_func(
    "openai-embeddings-clip", "async_request_openai_embeddings_clip"
)
async_request_openai_embeddings_vlm2vec = make_request_func(
    "openai-embeddings-vlm2vec", "async_request_openai_embeddings_vlm2vec"
)
async_request_infinity_embeddings = make_request_func(
    "infinity-embeddings", "async_request_infinity_embeddings"
)
async_request_infinity_embeddings_clip = make_request_func(
    "infinity-embeddings-clip", "async_request_infinity_embeddings_clip"
)
async_request_vllm_pooling = make_request_func("vllm-pooling", "async_request_vllm_pooling")
async_request_vllm_rerank = make_request_func("vllm-rerank", "async_request_vllm_rerank")

ASYNC_REQUEST_FUNCS: dict[str, RequestFunc] = {
    "tgi": async_request_tgi,
    "vllm": async_request_openai_completions,
    "lmdeploy": async_request_openai_completions,
    "deepspeed-mii": async_request_deepspeed_mii,
    "openai": async_request_openai_completions,
    "openai-chat": async_request_openai_chat_completions,
    "openai-audio": async_request_openai_audio,
    "tensorrt-llm": async_request_trt_llm,
    "scalellm": async_request_openai_completions,
    "sglang": async_request_openai_completions,
    "llama.cpp": async_request_openai_completions,
    "openai-embeddings": async_request_openai_embeddings,
    "openai-embeddings-chat": async_request_openai_embeddings_chat,
    "openai-embeddings-clip": async_request_openai_embeddings_clip,
    "openai-embeddings-vlm2vec": async_request_openai_embeddings_vlm2vec,
    "infinity-embeddings": async_request_infinity_embeddings,
    "infinity-embeddings-clip": async_request_infinity_embeddings_clip,
    "vllm-pooling": async_request_vllm_pooling,
    "vllm-rerank": async_request_vllm_rerank,
}

OPENAI_COMPATIBLE_BACKENDS: list[str] = [
    k
    for k, v in ASYNC_REQUEST_FUNCS.items()
    if v in (async_request_openai_completions, async_request_openai_chat_completions)
]


def _func_name(backend_name: str) -> str:
    slug = "".join(c if c.isalnum() else "_" for c in backend_name.lower())
    return f"async_request_{slug}"


def _add_request_func(name: str) -> None:
    """Give a newly registered (or replaced) backend its ``ASYNC_REQUEST_FUNCS`` entry."""
    func = ASYNC_REQUEST_FUNCS.get(name)
    if func is None or func.backend_name != name:
        ASYNC_REQUEST_FUNCS[name] = make_request_func(name, _func_name(name))


def _follow_registry() -> None:
    # Backends registered before this module was imported, then every later one.
    for name in backend_names():
        if name not in ASYNC_REQUEST_FUNCS:
            _add_request_func(name)
    on_register(_add_request_func)


_follow_registry()
