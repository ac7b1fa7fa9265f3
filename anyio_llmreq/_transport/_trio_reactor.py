"""The transport's trio connection stream (plain TCP): lean reads and an epoll reactor.

A receive through anyio's trio socket stream goes through trio's socket wrapper: it tries
``recv`` first (usually ``EAGAIN`` on a token stream), then waits for readability, reads
again, and ends with a checkpoint that yields to the scheduler once more: two scheduler
round trips and two ``recv`` calls per read. This stream waits for readability first
(the one checkpoint a read needs, which keeps it fair to other tasks) and then reads
once, stamping the bytes as they come off the socket.

``push`` goes further for response bodies: one task per trio run (the reactor) waits on
a private epoll set holding every socket whose body is being pushed, and hands each read
to its consumer as it comes off the socket, so a read costs no task switch at all; the
request's task sleeps until its body is complete. That is the trio counterpart of the
asyncio protocol's ``data_received`` callback (trio has no callbacks of its own).

Connecting, sending and closing stay with anyio's stream, which this one wraps.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Callable, Mapping
from time import perf_counter
from typing import Any

import anyio
import anyio.abc
import trio

from ._interface import DEFAULT_READ_SIZE

__all__ = ["TrioStream"]


class TrioStream(anyio.abc.ByteStream):
    """anyio's trio socket stream, with a leaner ``receive``.

    ``arrival`` is the ``perf_counter`` reading taken when the bytes returned by the
    latest ``receive`` came off the socket; *read_size* bounds a pushed body's reads.
    """

    def __init__(self, inner: anyio.abc.SocketStream, read_size: int = DEFAULT_READ_SIZE) -> None:
        self._inner = inner
        self._read_size = read_size
        self._sock: socket.socket = inner.extra(anyio.abc.SocketAttribute.raw_socket)
        self._closed = False
        self._error: OSError | None = None  # met while pushing; the next receive raises it
        self._unsent = b""  # what send_nowait left to drain
        self.arrival = 0.0
        # epoll is Linux's; elsewhere bodies are read by receive().
        self.can_push = _CAN_PUSH

    def arrival_time(self) -> float:
        return self.arrival

    def dropped(self) -> bool:
        """Closed by us; the pool asks the socket about the rest."""
        return self._closed

    async def receive(self, max_bytes: int = 65536) -> bytes:
        sock = self._sock
        while True:
            if self._closed:
                raise anyio.ClosedResourceError
            if self._error is not None:
                raise anyio.BrokenResourceError from self._error
            try:
                await trio.lowlevel.wait_readable(sock)
                data = sock.recv(max_bytes)
            except BlockingIOError:
                continue  # woken without data (it can happen): wait again
            except trio.ClosedResourceError as exc:
                raise anyio.ClosedResourceError from exc
            except OSError as exc:
                if self._closed:
                    raise anyio.ClosedResourceError from exc
                raise anyio.BrokenResourceError from exc
            self.arrival = perf_counter()
            if not data:
                raise anyio.EndOfStream
            return data

    async def push(self, sink: Callable[[bytes, float], bool]) -> bool:
        """Hand each read to ``sink(data, arrival)`` until it returns True; return True.

        The reads happen in the run's reactor task, not this one. *sink* must not raise.
        Returns False as soon as the stream ends, fails or closes first: ``receive``
        then reports why.
        """
        if self._closed or self._error is not None:
            return False
        pushed = _Push(self._sock, sink, self._read_size)
        reactor = _reactor()
        reactor.add(pushed)
        try:
            await pushed.finished.wait()
        finally:
            reactor.discard(pushed)
        self._error = pushed.error
        return pushed.done

    async def send(self, item: bytes) -> None:
        await self._inner.send(item)

    def send_nowait(self, item: bytes) -> bool:
        """Send what the socket takes of *item* now; False when ``drain`` must send
        the rest. A request fits the socket's buffer: no wait, no deadline to set."""
        if self._closed:
            raise anyio.ClosedResourceError
        try:
            sent = self._sock.send(item)
        except BlockingIOError:
            sent = 0
        if sent == len(item):
            return True
        self._unsent = item[sent:]
        return False

    async def drain(self) -> None:
        """Send the rest of what ``send_nowait`` took."""
        rest, self._unsent = self._unsent, b""
        if rest:
            await self._inner.send(rest)

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    async def aclose(self) -> None:
        self._closed = True
        await self._inner.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._inner.extra_attributes


_CAN_PUSH = hasattr(select, "epoll")


class _Push:
    """One body being pushed: its socket, its consumer, and how it ended."""

    __slots__ = ("done", "error", "fd", "finished", "read_size", "recv", "sink", "sock")

    def __init__(
        self, sock: socket.socket, sink: Callable[[bytes, float], bool], read_size: int
    ) -> None:
        self.sock = sock
        self.recv = sock.recv  # bound once: the reactor calls it on every read
        self.read_size = read_size
        self.fd = sock.fileno()
        self.sink = sink
        self.finished = trio.Event()
        self.done = False
        self.error: OSError | None = None


class _Reactor:
    """Reads every pushed socket of one trio run, in one system task."""

    def __init__(self) -> None:
        self._epoll: select.epoll | None = None  # open exactly while the reactor task runs
        self._pushes: dict[int, _Push] = {}
        self._waiting: trio.CancelScope | None = None  # around the wait for readiness

    def add(self, pushed: _Push) -> None:
        if self._epoll is None:
            self._epoll = select.epoll()
            trio.lowlevel.spawn_system_task(self._run, name="anyio_llmreq reactor")
        # Level-triggered: a socket with unread bytes stays ready until it is read.
        self._epoll.register(pushed.fd, select.EPOLLIN)
        self._pushes[pushed.fd] = pushed

    def discard(self, pushed: _Push) -> None:
        if self._pushes.get(pushed.fd) is pushed:
            del self._pushes[pushed.fd]
            if self._epoll is not None:
                self._epoll.unregister(pushed.fd)  # before the socket can be closed
            if not self._pushes and self._waiting is not None:
                self._waiting.cancel()  # nothing left to read: the task ends, not lingers

    async def _run(self) -> None:
        epoll = self._epoll
        assert epoll is not None
        pushes = self._pushes
        try:
            while pushes:
                with trio.CancelScope() as self._waiting:
                    await trio.lowlevel.wait_readable(epoll.fileno())
                self._waiting = None
                # Read (and stamp) every ready socket first, then consume: parsing one
                # read must not delay the next socket's read, nor so its stamp.
                reads: list[tuple[_Push, bytes, float]] = []
                for fd, _events in epoll.poll(0):
                    pushed = pushes.get(fd)
                    if pushed is None:
                        continue
                    try:
                        data = pushed.recv(pushed.read_size)
                    except BlockingIOError:
                        continue
                    except OSError as exc:
                        pushed.error = exc
                        data = b""
                    reads.append((pushed, data, perf_counter()))
                for pushed, data, arrival in reads:
                    if pushed.finished.is_set() or (data and not pushed.sink(data, arrival)):
                        continue
                    pushed.done = bool(data)  # else the end came first
                    self.discard(pushed)
                    pushed.finished.set()
        finally:
            # Ends when nothing is left to read (or the run ends): the epoll set closes
            # with it, and the next push opens both again.
            self._waiting = None
            self._epoll = None
            epoll.close()


_REACTOR: trio.lowlevel.RunVar[_Reactor] = trio.lowlevel.RunVar("anyio_llmreq.reactor")


def _reactor() -> _Reactor:
    try:
        return _REACTOR.get()
    except LookupError:
        reactor = _Reactor()
        _REACTOR.set(reactor)
        return reactor
