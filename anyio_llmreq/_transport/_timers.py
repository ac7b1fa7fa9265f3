"""Read timeouts of responses (heads and bodies): one rarely waking timer per event loop.

A cancel scope per socket read would cost more than the read. Instead each waiting body
(or connection awaiting its response head) stores when it started waiting (one attribute
store per read), and one timer per loop sleeps until the earliest time one could have
waited too long, then asks each (``check``) whether it has; an expired one shuts its
socket down, which wakes the pending read with an error.
"""

from __future__ import annotations

import math
from time import perf_counter
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    import asyncio

    import trio

__all__ = ["AsyncioWatchdog", "TrioWatchdog", "Watchdog"]

_INF: Final = math.inf
# How long the timer outlives the last watched read (see ``Watchdog.discard``).
_IDLE_GRACE: Final = 0.05


class Watched(Protocol):
    def check(self, now: float) -> float:
        """Expire if due; return the ``perf_counter`` time to check again (inf: never)."""


class Watchdog:
    """Enforces the read timeouts of the bodies of one event loop."""

    __slots__ = ("_active", "_due", "owner")

    def __init__(self, owner: object) -> None:
        self.owner = owner  # the loop (asyncio) or run (trio token) it serves
        self._active: set[Watched] = set()
        self._due = _INF  # perf_counter() time the timer is set for

    def add(self, body: Watched, due: float) -> None:
        self._active.add(body)
        if due < self._due:
            self._due = due
            self._arm(due)

    def discard(self, body: Watched) -> None:
        active = self._active
        active.discard(body)
        if not active and self._due != _INF:
            # Nothing left to watch: the timer ends soon, instead of sleeping until the
            # last time it was armed for (up to a whole read timeout). Not at once: one
            # request after another would otherwise arm and stop it every time.
            soon = perf_counter() + _IDLE_GRACE
            if self._due > soon:
                self._due = soon
                self._arm(soon)

    def _sweep(self) -> float:
        now = perf_counter()
        due = _INF
        for body in list(self._active):
            next_check = body.check(now)
            if next_check == _INF:
                self._active.discard(body)
            elif next_check < due:
                due = next_check
        # Never spin: timers may fire a hair early and clocks are coarse.
        self._due = max(due, now + 0.001) if due != _INF else _INF
        return self._due

    def _arm(self, due: float) -> None:
        raise NotImplementedError  # pragma: no cover


class AsyncioWatchdog(Watchdog):
    """The timer is a ``call_later`` handle of the loop."""

    __slots__ = ("_handle", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self._loop = loop
        self._handle: asyncio.TimerHandle | None = None

    def _arm(self, due: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_later(max(due - perf_counter(), 0.0), self._fire)

    def _fire(self) -> None:
        self._handle = None
        due = self._sweep()
        if due != _INF:
            self._arm(due)


class TrioWatchdog(Watchdog):
    """The timer is a system task sleeping in a cancel scope whose deadline moves."""

    __slots__ = ("_running", "_scope")

    def __init__(self, token: trio.lowlevel.TrioToken) -> None:
        super().__init__(token)
        self._scope: trio.CancelScope | None = None
        self._running = False

    def _arm(self, due: float) -> None:
        import trio

        if self._scope is not None:
            self._scope.deadline = _to_trio_time(due)
        elif not self._running:
            # trio has no timer callbacks; a system task needs no nursery of ours and
            # is cancelled when the run ends.
            self._running = True
            trio.lowlevel.spawn_system_task(self._run, name="anyio_llmreq watchdog")

    async def _run(self) -> None:
        import trio

        try:
            while self._due != _INF:
                with trio.CancelScope(deadline=_to_trio_time(self._due)) as scope:
                    self._scope = scope
                    await trio.sleep_forever()
                self._scope = None
                self._sweep()
        finally:
            self._scope = None
            self._running = False
            self._due = _INF


def _to_trio_time(perf: float) -> float:
    import trio

    return perf - perf_counter() + trio.current_time()
