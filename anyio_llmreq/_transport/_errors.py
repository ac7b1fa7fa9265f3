"""One-line names for the OS, TLS and anyio errors the transport wraps in httpx's."""

from __future__ import annotations

from collections.abc import Iterable

import anyio

__all__ = ["describe", "describe_os_error"]


def describe(exc: BaseException) -> str:
    """*exc* as "Type: text"; anyio's broken/closed errors by the OS error behind them."""
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, anyio.BrokenResourceError | anyio.ClosedResourceError) and cause:
        exc = cause
    return _name_and_text(exc)


def describe_os_error(exc: OSError) -> str:
    """A failed connect: every address's error when anyio tried several."""
    cause = exc.__cause__
    # anyio reports several failed addresses as "All connection attempts failed" caused
    # by an exception group (a builtin only from Python 3.11 on, hence getattr).
    group: Iterable[BaseException] | None = getattr(cause, "exceptions", None)
    if group is not None:
        return "; ".join(_flatten(group))
    return _name_and_text(cause or exc)


def _flatten(excs: Iterable[BaseException]) -> Iterable[str]:
    for exc in excs:
        inner: Iterable[BaseException] | None = getattr(exc, "exceptions", None)
        if inner is not None:
            yield from _flatten(inner)
        else:
            yield _name_and_text(exc)


def _name_and_text(exc: BaseException) -> str:
    # The class name says "ConnectionRefusedError" where the text may not.
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
