"""The transport's asyncio (and uvloop) connection stream: a raw asyncio ``Protocol``.

anyio's asyncio socket stream pauses reading after every receive and resumes it before the
next (two selector updates per read) and wakes the reader through an ``asyncio.Event``. On
a stream of small SSE reads that bookkeeping costs more than the HTTP and SSE decoding
together. This stream keeps reading on (pausing only when 1 MiB is buffered), wakes the
reader through one future, and stamps each chunk in ``data_received``: the moment the
event loop took the bytes off the socket, even when the reader was busy then. ``push``
hands a body's reads to a sink from the loop's read callbacks (see :class:`ReadBatch`).

It implements the part of ``anyio.abc.ByteStream`` the transport uses, plus
:class:`~._interface.OwnStream`; anyio's cancel scopes work on it as on any asyncio await.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
from collections import deque
from collections.abc import Callable, Mapping
from time import perf_counter
from typing import Any, cast

import anyio
import anyio.abc

from ._interface import DEFAULT_READ_SIZE, ConnectTimes

__all__ = ["AsyncioStream", "ReadBatch", "open_asyncio_stream"]

# Reading pauses above this many buffered bytes and resumes once the reader drained them.
_HIGH_WATER = 1 << 20


class ReadBatch:
    """Hands the reads of pushed bodies to their consumers at the loop's next turn.

    Consuming a read (decoding, parsing) inside ``data_received`` would delay the next
    socket's read, and so its stamp, by that work: with hundreds of sockets ready at
    once the last would be stamped a millisecond late. Instead every read of a turn is
    stamped as it comes off its socket, and the batch is consumed in one callback right
    after, in order. One batch per event loop.
    """

    __slots__ = ("_pending", "owner")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.owner = loop
        # Not empty exactly while a flush is scheduled.
        self._pending: list[tuple[_Protocol, bytes, float]] = []

    def add(self, protocol: _Protocol, data: bytes, arrival: float) -> None:
        if not self._pending:
            self.owner.call_soon(self._flush)
        self._pending.append((protocol, data, arrival))
        protocol.pending += 1

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for protocol, data, arrival in pending:
            protocol.pending -= 1
            protocol.deliver(data, arrival)


class _Protocol(asyncio.Protocol):
    __slots__ = (
        "batch",
        "buffered",
        "chunks",
        "closed",
        "eof",
        "exception",
        "paused",
        "pending",
        "sink",
        "sink_done",
        "transport",
        "waiter",
        "write_waiter",
    )

    def __init__(self, batch: ReadBatch) -> None:
        self.batch = batch
        self.pending = 0  # reads of this connection waiting in the batch
        self.transport: asyncio.Transport | None = None
        self.chunks: deque[tuple[bytes, float]] = deque()
        self.buffered = 0
        self.waiter: asyncio.Future[None] | None = None
        self.write_waiter: asyncio.Future[None] | None = None
        self.paused = False
        self.eof = False
        self.closed = False
        self.exception: BaseException | None = None
        # While set, each chunk goes to sink(data, arrival) as the loop reads it; once it
        # returns True it is removed and the reader woken (see AsyncioStream.push).
        self.sink: Callable[[bytes, float], bool] | None = None
        self.sink_done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.sink is not None or self.pending:
            self.batch.add(self, data, perf_counter())
            return
        self._buffer(data, perf_counter())

    def deliver(self, data: bytes, arrival: float) -> None:
        """A batched read: to the sink while there is one, else to ``receive``."""
        sink = self.sink
        if sink is None:
            self._buffer(data, arrival)
        elif sink(data, arrival):
            self.sink = None
            self.sink_done = True
            self._wake()

    def _buffer(self, data: bytes, arrival: float) -> None:
        self.chunks.append((data, arrival))
        self.buffered += len(data)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.closed = True
        self.exception = exc
        self._wake()
        waiter, self.write_waiter = self.write_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_writing(self) -> None:
        loop = asyncio.get_running_loop()
        if self.write_waiter is None:
            self.write_waiter = loop.create_future()

    def resume_writing(self) -> None:
        waiter, self.write_waiter = self.write_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class AsyncioStream(anyio.abc.ByteStream):
    """One TCP (or TLS) connection on an asyncio protocol.

    ``arrival`` is the ``perf_counter`` reading taken when the bytes returned by the
    latest ``receive`` came off the socket.
    """

    can_push = True

    def __init__(
        self,
        transport: asyncio.Transport,
        protocol: _Protocol,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._transport = transport
        self._protocol = protocol
        self._closed = False
        self.arrival = 0.0
        # The loop's future factory, looked up once: asyncio.get_running_loop() makes a
        # getpid() system call, and asyncio's create_future is a Python method.
        self._new_future = _future_factory(loop or asyncio.get_running_loop())

    def arrival_time(self) -> float:
        return self.arrival

    def dropped(self) -> bool:
        """Whether, while idle, the loop read the peer's close or unasked-for bytes."""
        protocol = self._protocol
        return self._closed or protocol.eof or bool(protocol.chunks) or protocol.pending > 0

    async def receive(self, max_bytes: int = 65536) -> bytes:
        protocol = self._protocol
        chunks = protocol.chunks
        while not chunks:
            if protocol.eof and not protocol.pending:
                if protocol.exception is not None:
                    raise anyio.BrokenResourceError from protocol.exception
                raise anyio.EndOfStream
            if self._closed:
                raise anyio.ClosedResourceError
            waiter = protocol.waiter = self._new_future()
            try:
                await waiter
            finally:
                protocol.waiter = None
        data, self.arrival = chunks.popleft()
        if len(data) > max_bytes:
            chunks.appendleft((data[max_bytes:], self.arrival))
            data = data[:max_bytes]
        protocol.buffered -= len(data)
        if protocol.paused:
            self._resume_if_drained()
        return data

    async def push(self, sink: Callable[[bytes, float], bool]) -> bool:
        """Hand each chunk to ``sink(data, arrival)`` until it returns True; return True.

        Chunks buffered before the call go first; later ones are handed over inside the
        event loop's read callback, so no task wakes per read. *sink* must not raise.
        ``arrival`` is not updated while pushing: *sink* is given each chunk's.
        Returns False, with the sink removed, as soon as the stream ends or closes first:
        ``receive`` then reports why.
        """
        protocol = self._protocol
        chunks = protocol.chunks
        while chunks:
            data, self.arrival = chunks.popleft()
            protocol.buffered -= len(data)
            if sink(data, self.arrival):
                self._resume_if_drained()
                return True
        self._resume_if_drained()
        if (protocol.eof or self._closed) and not protocol.pending:
            return False
        protocol.sink_done = False
        protocol.sink = sink
        try:
            # Reads still in the batch are the sink's before any end of the stream.
            while not protocol.sink_done and (
                protocol.pending or not (protocol.eof or self._closed)
            ):
                waiter = protocol.waiter = self._new_future()
                try:
                    await waiter
                finally:
                    protocol.waiter = None
        finally:
            protocol.sink = None
        return protocol.sink_done

    def _resume_if_drained(self) -> None:
        protocol = self._protocol
        if protocol.paused and protocol.buffered <= _HIGH_WATER // 4:
            protocol.paused = False
            self._transport.resume_reading()

    async def send(self, item: bytes) -> None:
        if not self.send_nowait(item):
            await self.drain()

    def send_nowait(self, item: bytes) -> bool:
        """Start sending *item*; False when ``drain`` must be awaited before it counts as
        sent (the transport's buffer is over its high-water mark), else True."""
        protocol = self._protocol
        if self._closed:
            raise anyio.ClosedResourceError
        if protocol.closed or self._transport.is_closing():
            if protocol.exception is not None:
                raise anyio.BrokenResourceError from protocol.exception
            raise anyio.ClosedResourceError
        self._transport.write(item)
        return protocol.write_waiter is None

    async def drain(self) -> None:
        """Wait until what ``send_nowait`` started is sent (or the connection is lost)."""
        waiter = self._protocol.write_waiter
        if waiter is not None:
            await asyncio.shield(waiter)

    async def send_eof(self) -> None:
        self._transport.write_eof()

    async def aclose(self) -> None:
        # Synchronous on purpose: anyio's aclose_forcefully calls this in a cancelled scope.
        # abort(), not close(): close() would wait to flush to a peer that may never read,
        # and over TLS for the peer's close_notify; HTTP frames its own bodies, so neither
        # is owed (anyio's tls_standard_compatible=False makes the same choice).
        self._closed = True
        self._transport.abort()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        info = self._transport.get_extra_info
        return {
            anyio.abc.SocketAttribute.raw_socket: lambda: info("socket"),
            anyio.abc.SocketAttribute.family: lambda: info("socket").family,
            anyio.abc.SocketAttribute.local_address: lambda: info("sockname"),
            anyio.abc.SocketAttribute.remote_address: lambda: info("peername"),
        }


async def open_asyncio_stream(
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    local_host: str | None = None,
    batch: ReadBatch | None = None,
    times: ConnectTimes | None = None,
    read_size: int = DEFAULT_READ_SIZE,
) -> AsyncioStream:
    """Connect to *host*:*port* (TLS with *ssl_context*) on the running asyncio loop.

    Names are resolved through anyio, like every other connection of ours (uvloop would
    otherwise use its own resolver), and the addresses are tried in order. *times*
    receives how long resolving, connecting and the TLS handshake took; *read_size*
    bounds each socket read.
    """
    loop = asyncio.get_running_loop()
    if batch is None or batch.owner is not loop:
        batch = ReadBatch(loop)
    last_error: OSError | None = None
    began = perf_counter()
    addresses = await _addresses(host, port)
    resolved = perf_counter()
    for address in addresses:
        try:
            connected = tls_done = 0.0
            if ssl_context is None:
                transport, protocol = await loop.create_connection(
                    functools.partial(_Protocol, batch),
                    address,
                    port,
                    local_addr=(local_host, 0) if local_host else None,
                )
                connected = perf_counter()
            else:
                # TCP first, then TLS on that socket: the handshake timed on its own.
                sock = await _tcp_socket(loop, address, port, local_host)
                connected = perf_counter()
                try:
                    transport, protocol = await loop.create_connection(
                        functools.partial(_Protocol, batch),
                        sock=sock,
                        ssl=ssl_context,
                        server_hostname=host,
                    )
                except BaseException:
                    sock.close()
                    raise
                tls_done = perf_counter()
        except ssl.SSLError:
            raise
        except OSError as exc:
            last_error = exc
            resolved = perf_counter()  # the next address's connect starts now
            continue
        if times is not None:
            times.dns = resolved - began
            times.connect = connected - resolved
            times.tls = tls_done - connected if ssl_context is not None else None
        limit_reads(transport, read_size)
        return AsyncioStream(transport, protocol, loop)
    assert last_error is not None
    raise last_error


def limit_reads(transport: asyncio.BaseTransport, read_size: int) -> None:
    """Make asyncio's transport read at most *read_size* bytes at a time.

    asyncio asks for 256 KiB per read (``recv`` on a selector transport, ``SSLObject.read``
    on a TLS one): glibc serves a buffer that large with ``mmap``, shrinks it with
    ``mremap`` to the few hundred bytes an SSE read holds and frees it with ``munmap``,
    three system calls that cost about 18 us a read, several times the read itself.
    Below malloc's mmap threshold (128 KiB) the buffer comes from the heap. uvloop reads
    into buffers of its own and has neither attribute.
    """
    target: Any = getattr(transport, "_ssl_protocol", None) or transport  # TLS: its protocol
    if type(getattr(target, "max_size", None)) is int:
        target.max_size = read_size


async def _tcp_socket(
    loop: asyncio.AbstractEventLoop, address: str, port: int, local_host: str | None
) -> socket.socket:
    """A connected non-blocking TCP socket to *address* (an IP address)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if local_host:
            sock.bind((local_host, 0))
        await loop.sock_connect(sock, (address, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _future_factory(loop: asyncio.AbstractEventLoop) -> Callable[[], asyncio.Future[None]]:
    if type(loop).create_future is asyncio.BaseEventLoop.create_future:
        # What asyncio's create_future returns, without its Python frame.
        return functools.partial(asyncio.Future, loop=loop)
    return loop.create_future  # uvloop's (compiled) or another loop's own


async def _addresses(host: str, port: int) -> list[str]:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [host]
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses
