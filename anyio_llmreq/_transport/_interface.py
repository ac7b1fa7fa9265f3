"""What the engine may rely on from the transport, and what the body needs of a socket.

The engine sees a response body through :class:`TimedBody` and its stamps through
:class:`Arrival` (``response.extensions[ARRIVAL_EXTENSION]``); :class:`OwnStream` is the
part of the per-loop connection streams (the asyncio protocol's and the trio reactor's)
that the pool and the body use beyond ``anyio.abc.ByteStream``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from time import perf_counter
from typing import Final, Protocol, final

import httpx

__all__ = [
    "ARRIVAL_EXTENSION",
    "DEFAULT_READ_SIZE",
    "Arrival",
    "ConnectTimes",
    "Consume",
    "OwnStream",
    "Sink",
    "TimedBody",
]

#: Response extension holding the :class:`Arrival` of the response.
ARRIVAL_EXTENSION: Final = "anyio_llmreq.arrival"

#: Most bytes asked of one socket read: under malloc's mmap threshold (128 KiB), so a
#: read's buffer comes from the heap (see ``_asyncio_protocol.limit_reads``).
DEFAULT_READ_SIZE: Final = 65536

#: ``consume(payload, arrival)``: one call per socket read of a pushed body.
Consume = Callable[[bytes, float], None]
#: ``sink(data, arrival) -> done``: one call per socket read of a pushing connection.
Sink = Callable[[bytes, float], bool]


@final
class ConnectTimes:
    """How long one connection took to open, in seconds (``None``: not measured: the
    step was part of another or did not happen, like TLS over plain HTTP)."""

    __slots__ = ("connect", "dns", "tls")

    def __init__(
        self, dns: float | None = None, connect: float | None = None, tls: float | None = None
    ) -> None:
        self.dns = dns
        self.connect = connect
        self.tls = tls

    def __repr__(self) -> str:
        return f"ConnectTimes(dns={self.dns!r}, connect={self.connect!r}, tls={self.tls!r})"


@final
class Arrival:
    """When the bytes of one response arrived, as readings of ``clock``.

    Both are taken right after the socket read returned, before any parsing, so they
    exclude the client's own decoding work.

    Attributes:
        time: arrival of the socket read that produced the bytes most recently yielded
            by the response stream. Before the first body bytes are yielded, the read
            that completed the response head.
        first_byte: arrival of the read holding the first byte of the response head.
        clock: the clock every stamp is read from: a consumer timing with another
            clock must not mix these stamps with its own readings.
        head: arrival of the read that completed the response head.
        body: arrival of the first read holding body bytes (0.0 until one did).
        sent: when the request was written to the socket (0.0: not known).
        opened: how the request's new connection opened (``None`` when reused).
        reused: whether the request went on a pooled connection (no ``opened``).
    """

    # A plain class, made once per response: attrs would compile its methods at import.
    __slots__ = ("body", "clock", "first_byte", "head", "opened", "sent", "time")

    time: float
    first_byte: float
    clock: Callable[[], float]
    head: float
    body: float
    sent: float
    opened: ConnectTimes | None

    def __init__(
        self, time: float, first_byte: float, clock: Callable[[], float] = perf_counter
    ) -> None:
        self.time = self.head = time
        self.first_byte = first_byte
        self.clock = clock
        self.body = self.sent = 0.0
        self.opened = None

    @property
    def reused(self) -> bool:
        return self.opened is None

    def __repr__(self) -> str:
        return f"Arrival(time={self.time!r}, first_byte={self.first_byte!r})"


class TimedBody(httpx.AsyncByteStream):
    """A response body of the transport, as the engine uses it.

    Iterating yields one ``bytes`` per socket read (its stamp in ``arrival.time``).
    Where ``can_push`` is true, ``push`` is the other way to read it: each read is handed
    to a callback where it comes off the socket, with no task wakeup per read. A body is
    read one way or the other, chosen before the first read.
    """

    __slots__ = ()

    #: The stamps of this response (the same object as the response's extension).
    arrival: Arrival
    #: Whether ``push`` may be used: fixed when the response head is read.
    can_push: bool

    @property
    def released(self) -> bool:
        """Whether the body has ended and given its connection back: closing it then
        does nothing and never suspends."""
        raise NotImplementedError  # pragma: no cover

    async def push(self, consume: Consume) -> None:
        """Hand the whole body to ``consume(payload, arrival)``, one call per read.

        Errors are those iterating would raise; an exception from *consume* propagates
        unchanged (the connection is then closed by ``aclose``).
        """
        raise NotImplementedError  # pragma: no cover

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        raise NotImplementedError  # pragma: no cover


class OwnStream(Protocol):
    """A connection stream of ours (asyncio protocol, trio reactor): stamps each read
    as it comes off the socket, and may push reads to a sink."""

    #: Whether ``push`` can work on this stream at all (trio: only where epoll exists).
    can_push: bool

    def arrival_time(self) -> float:
        """The stamp of the bytes the latest ``receive`` returned."""

    def dropped(self) -> bool:
        """Whether, while idle, the stream is known closed or holds unasked-for bytes
        (False: ask the socket)."""

    def send_nowait(self, item: bytes) -> bool:
        """Start sending *item* without waiting; False: ``drain`` must be awaited for
        the rest. Raises what ``send`` raises."""

    async def drain(self) -> None:
        """Finish what ``send_nowait`` started."""

    async def push(self, sink: Sink) -> bool:
        """Hand each read to *sink* until it returns True; then return True. Return
        False when the stream ends, fails or closes first: ``receive`` says why."""
