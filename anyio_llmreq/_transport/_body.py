"""The response body: socket reads, stamped, framed, timed out; iterated or pushed.

Every body is one :class:`Body`; what differs between Content-Length, chunked and
read-until-close framing is a small :class:`Framing` that turns one read into its
payload and says when the body ended. The socket read itself (its arrival stamp, its
read timeout, the naming of its errors) is written once, in ``Body._read``.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import TYPE_CHECKING, ClassVar, Final, NoReturn

import anyio
import httpx

from ._errors import describe
from ._http11 import ChunkedDecoder
from ._interface import Arrival, Consume, TimedBody

if TYPE_CHECKING:
    import anyio.abc

    from ._pool import Connection
    from ._timers import Watchdog

__all__ = ["Body", "ChunkedFraming", "CloseFraming", "Framing", "LengthFraming", "shutdown"]

_INF: Final = math.inf


# -- framings ---------------------------------------------------------------------------


class Framing:
    """How a body's reads become its payload, and where it ends."""

    __slots__ = ("clean", "done")

    #: True when the end of the connection is the end of the body.
    ends_at_eof: ClassVar[bool] = False

    def __init__(self) -> None:
        self.done = False  # the body is complete
        self.clean = True  # nothing followed it: the connection may be reused

    def feed(self, data: bytes) -> bytes:
        """The payload in one read (may be empty); raises ``RemoteProtocolError``."""
        raise NotImplementedError  # pragma: no cover


class ChunkedFraming(Framing):
    """``Transfer-Encoding: chunked``: every chunk payload of a read, joined."""

    __slots__ = ("_decode", "_decoder")

    def __init__(self) -> None:
        super().__init__()
        self._decoder = ChunkedDecoder()
        self._decode = self._decoder.decode

    def feed(self, data: bytes) -> bytes:
        parts = self._decode(data)
        decoder = self._decoder
        if decoder.done:
            self.done = True
            self.clean = decoder.clean
        return parts[0] if len(parts) == 1 else b"".join(parts)


class LengthFraming(Framing):
    """``Content-Length``: the reads as they come, until the length is reached."""

    __slots__ = ("_remaining",)

    def __init__(self, length: int) -> None:
        super().__init__()
        self._remaining = length

    def feed(self, data: bytes) -> bytes:
        remaining = self._remaining = self._remaining - len(data)
        if remaining <= 0:
            if remaining < 0:
                raise httpx.RemoteProtocolError("Response body is longer than its Content-Length")
            self.done = True
        return data


class CloseFraming(Framing):
    """No length: the body is every read until the server closes the connection."""

    __slots__ = ()
    ends_at_eof = True

    def __init__(self) -> None:
        super().__init__()
        self.clean = False  # the connection ends with the body

    def feed(self, data: bytes) -> bytes:
        return data


# -- the body ---------------------------------------------------------------------------


class Body(TimedBody):
    """The body of one response, on the connection it came on.

    Args:
        conn: the connection; given back through *release* once the body was read whole.
        release: the pool's check-in.
        arrival: the response's stamps; ``arrival.time`` follows each read.
        initial: body bytes that came in with the head.
        framing: the body's framing.
        keep_alive: whether the response allows reusing the connection.
        read_timeout: the longest wait for a read; enforced by ``watch``'s watchdog.
        read_size: most bytes asked of a read.
    """

    __slots__ = (
        "_clock",
        "_conn",
        "_expired",
        "_feed",
        "_framing",
        "_initial",
        "_keep_alive",
        "_own",
        "_read_size",
        "_read_timeout",
        "_receive",
        "_release",
        "_wait_start",
        "_watchdog",
        "_watching",
        "arrival",
        "can_push",
    )

    def __init__(
        self,
        conn: Connection,
        release: Callable[[Connection], Awaitable[None]],
        arrival: Arrival,
        initial: bytes,
        framing: Framing,
        keep_alive: bool,
        read_timeout: float | None,
        read_size: int,
    ) -> None:
        self._conn: Connection | None = conn
        self._release = release
        self._receive = conn.stream.receive
        own = self._own = conn.own
        self._clock = own.arrival_time if own is not None else perf_counter
        self._read_size = read_size
        self.arrival = arrival
        self._initial = initial
        self._framing = framing
        self._feed = framing.feed  # bound once: it runs on every read
        self._keep_alive = keep_alive
        self._read_timeout = read_timeout
        self._watchdog: Watchdog | None = None
        self._watching = False  # in the watchdog's set: from the first wait for a read
        self._wait_start: float | None = None  # while waiting on a read
        self._expired: str | None = None
        # Pushing needs the connection's push and a payload per read to hand over.
        self.can_push = own is not None and own.can_push and type(framing) is ChunkedFraming

    @property
    def released(self) -> bool:
        return self._conn is None

    # -- the two ways to read it -------------------------------------------------------

    async def __anext__(self) -> bytes:
        framing = self._framing
        while True:
            data = self._initial
            if data:
                self._initial = b""
            else:
                data = await self._read()
            try:
                payload = self._feed(data)
            except httpx.RemoteProtocolError as exc:
                await self._fail(exc)
            if framing.done:
                await self._finish(framing.clean)
            if payload:
                return payload

    async def push(self, consume: Consume) -> None:
        """On asyncio the reads are framed and consumed in the event loop's read
        callback, on trio in the run's reactor task. Only where ``can_push``."""
        own = self._own
        assert self.can_push and own is not None
        framing = self._framing
        feed = self._feed
        arrival = self.arrival
        failed: list[tuple[BaseException, bool]] = []  # (error, raised by the framing)
        watched = self._watchdog is not None

        def sink(data: bytes, now: float) -> bool:
            """Frame and consume one read; True once the body is complete or failed."""
            arrival.time = now
            if not arrival.body:
                arrival.body = now
            if watched:
                self._wait_start = now  # a read timeout counts from the latest read
            try:
                payload = feed(data)
            except Exception as exc:
                failed.append((exc, True))
                return True
            try:
                if payload:
                    consume(payload, now)
            except Exception as exc:
                failed.append((exc, False))
                return True
            return framing.done

        done = False
        initial, self._initial = self._initial, b""
        if initial:
            done = sink(initial, arrival.time)
        while not done:
            if watched:
                if self._wait_start is None:
                    self._wait_start = perf_counter()  # else from the read with the head
                if not self._watching:
                    self._start_watching()
            done = await own.push(sink)
            if not done:
                # The connection ended or failed before the body: a read says why.
                done = sink(await self._read(), arrival.time)
        self._wait_start = None
        if failed:
            exc, from_framing = failed[0]
            if from_framing:
                await self._fail(exc)
            raise exc
        await self._finish(framing.clean)

    async def _read(self) -> bytes:
        """The next socket read, stamped into ``arrival.time``.

        Raises ``StopAsyncIteration`` at the end of a read-until-close body (or once the
        body ended), else the httpx error of a failed read.
        """
        if self._conn is None:
            raise StopAsyncIteration
        if self._watchdog is not None:
            self._wait_start = perf_counter()
            if not self._watching:
                self._start_watching()
        try:
            data = await self._receive(self._read_size)
        except BaseException as exc:
            if (
                isinstance(exc, anyio.EndOfStream)
                and self._framing.ends_at_eof
                and self._expired is None
            ):
                await self._finish(False)
                raise StopAsyncIteration from None
            await self._fail(exc)
        arrival = self.arrival
        arrival.time = now = self._clock()
        if not arrival.body:
            arrival.body = now
        self._wait_start = None
        return data

    # -- the end -----------------------------------------------------------------------

    async def aclose(self) -> None:
        conn = self._conn
        if conn is not None:
            # Not fully read (closed early or cancelled): the connection's state is
            # unknown, so it is closed, never reused.
            self._conn = None
            self._unwatch()
            await anyio.aclose_forcefully(conn.stream)

    async def _finish(self, reusable: bool) -> None:
        conn = self._conn
        assert conn is not None
        self._conn = None
        self._unwatch()
        if reusable and self._keep_alive and self._expired is None:
            await self._release(conn)
        else:
            await anyio.aclose_forcefully(conn.stream)

    async def _fail(self, exc: BaseException) -> NoReturn:
        """Close the connection and raise *exc* as httpx names it."""
        conn = self._conn
        if conn is not None:
            self._conn = None
            self._unwatch()
            await anyio.aclose_forcefully(conn.stream)
        if not isinstance(exc, Exception):
            raise exc  # cancellation and the like: propagate untouched
        if self._expired is not None:
            raise httpx.ReadTimeout(self._expired) from exc
        if isinstance(exc, anyio.EndOfStream):
            raise httpx.RemoteProtocolError(
                "Server disconnected before the response body was complete."
            ) from exc
        if isinstance(exc, anyio.BrokenResourceError | anyio.ClosedResourceError | OSError):
            raise httpx.ReadError(f"Error reading the response body: {describe(exc)}") from exc
        raise exc

    # -- read timeout (the watchdog calls check() from its timer, never during a read) --

    def watch(self, watchdog: Watchdog) -> None:
        """Enforce the read timeout with *watchdog*, from the first wait for a read on:
        a body that came whole with its head (most short responses) never waits, so
        it costs the watchdog nothing."""
        self._watchdog = watchdog

    def _start_watching(self) -> None:
        assert self._watchdog is not None and self._wait_start is not None
        self._watching = True
        self._watchdog.add(self, self.check(self._wait_start))

    def _unwatch(self) -> None:
        if self._watching:
            assert self._watchdog is not None
            self._watchdog.discard(self)
            self._watching = False
        self._watchdog = None

    def check(self, now: float) -> float:
        """Expire the body if it waited too long; return when to check it next."""
        read_timeout = self._read_timeout
        if self._conn is None or read_timeout is None:
            return _INF
        wait_start = self._wait_start
        if wait_start is None:
            # The consumer is busy, not waiting on us: look again one period later.
            return now + read_timeout
        if now >= wait_start + read_timeout:
            return self._expire(f"No data received for {read_timeout} s (read timeout)")
        return wait_start + read_timeout

    def _expire(self, reason: str) -> float:
        self._expired = reason
        conn = self._conn
        if conn is not None:
            shutdown(conn.stream)
        return _INF


def shutdown(stream: anyio.abc.ByteStream) -> None:
    """Shut *stream*'s socket down: that wakes a pending receive with EOF on every
    backend, which is how a timed-out read ends without a cancel scope around it."""
    from anyio.abc import SocketAttribute  # not at import: only a timeout needs it

    try:
        raw = stream.extra(SocketAttribute.raw_socket)
        try:
            raw.shutdown(socket.SHUT_RDWR)
        except TypeError:
            # uvloop's transport sockets refuse shutdown(); a dup of the fd does not.
            with socket.socket(fileno=os.dup(raw.fileno())) as dup:
                dup.shutdown(socket.SHUT_RDWR)
    except (OSError, anyio.TypedAttributeLookupError):
        pass
