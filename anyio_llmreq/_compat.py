"""Drop-in replacements for vLLM's ``backend_request_func`` module.

Each ``async_request_*`` function takes ``(request_func_input, pbar=None)`` like the
reference, updates ``pbar`` once, and returns a ``RequestFuncOutput``; a failed request
is an output with ``success=False``, never an exception. They work when awaited under
``asyncio.run``, uvloop, ``trio.run`` and ``anyio.run``.

Unlike the reference, which opens an aiohttp session per request, calls made in one event
loop share one pooled ``Client``; it is closed when the event loop ends.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol

import anyio
from anyio.lowlevel import RunVar

from ._client import Client
from ._models import RequestFuncInput, RequestFuncOutput
from .backends._registry import get_backend

__all__ = [
    "ASYNC_REQUEST_FUNCS",
    "OPENAI_COMPATIBLE_BACKENDS",
    "RequestFunc",
    "async_request_openai_chat_completions",
    "async_request_openai_completions",
    "make_request_func",
    "shared_client",
]


class RequestFunc(Protocol):
    """The reference's request-function signature (plus an optional client)."""

    __name__: str

    async def __call__(
        self,
        request_func_input: RequestFuncInput,
        pbar: Any | None = None,
        *,
        client: Client | None = None,
    ) -> RequestFuncOutput: ...


_SHARED: RunVar[Client] = RunVar("anyio_llmreq.shared_client")


async def shared_client() -> Client:
    """The pooled client of the running event loop, created on first use."""
    try:
        return _SHARED.get()
    except LookupError:
        pass
    client = Client()
    await client.__aenter__()
    _SHARED.set(client)
    _close_when_loop_ends(client)
    return client


async def _hold_then_close(client: Client) -> None:
    try:
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            try:
                await client.aclose()
            except Exception:
                pass


def _close_when_loop_ends(client: Client) -> None:
    """Tie *client*'s lifetime to the running event loop.

    A task that sleeps until the loop cancels it at shutdown (``asyncio.run`` cancels
    leftover tasks; trio cancels system tasks when the main task returns) closes the
    client's sockets, so nothing leaks and no ResourceWarning is printed.
    """
    if "trio" in sys.modules:
        import trio

        try:
            trio.lowlevel.current_task()
        except RuntimeError:
            pass
        else:
            trio.lowlevel.spawn_system_task(_hold_then_close, client)
            return
    import asyncio

    task = asyncio.get_running_loop().create_task(_hold_then_close(client))
    _OWNER_TASKS.add(task)
    task.add_done_callback(_OWNER_TASKS.discard)


_OWNER_TASKS: set[Any] = set()


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
    return request_func


async_request_openai_completions = make_request_func(
    "openai", "async_request_openai_completions"
)
async_request_openai_chat_completions = make_request_func(
    "openai-chat", "async_request_openai_chat_completions"
)

ASYNC_REQUEST_FUNCS: dict[str, RequestFunc] = {
    "vllm": async_request_openai_completions,
    "lmdeploy": async_request_openai_completions,
    "openai": async_request_openai_completions,
    "openai-chat": async_request_openai_chat_completions,
    "scalellm": async_request_openai_completions,
    "sglang": async_request_openai_completions,
    "llama.cpp": async_request_openai_completions,
}

OPENAI_COMPATIBLE_BACKENDS: list[str] = [
    k
    for k, v in ASYNC_REQUEST_FUNCS.items()
    if v in (async_request_openai_completions, async_request_openai_chat_completions)
]
