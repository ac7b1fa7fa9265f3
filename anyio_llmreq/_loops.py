"""The event loops a run can be asked for by name (``--loop``, ``MockServerThread``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["LOOPS", "loop_backend"]

#: The name -> ``anyio.run``'s backend and its options (uvloop is asyncio's).
LOOPS: Final[Mapping[str, tuple[str, Mapping[str, Any]]]] = {
    "asyncio": ("asyncio", {}),
    "uvloop": ("asyncio", {"use_uvloop": True}),
    "trio": ("trio", {}),
}


def loop_backend(loop: str) -> tuple[str, dict[str, Any]]:
    """``anyio.run``'s backend and options for the loop named *loop*."""
    backend, options = LOOPS.get(loop, (loop, {}))
    return backend, dict(options)
