"""The mock server: connection handling, routing, timed streaming and faults."""

from __future__ import annotations

import json
import random
import socket
import struct
import time
import traceback
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl

import anyio
import attrs
from anyio.abc import SocketAttribute, SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from . import _dialects
from ._behaviour import MockBehaviour
from ._dialects import BodyReply, Context, Reply, StreamReply
from ._http import (
    MAX_BODY,
    TERMINATOR,
    HTTPRequest,
    ProtocolError,
    chunk,
    read_request,
    response_head,
)
from ._http import parse_multipart as _parse_multipart
from ._metrics import CONTENT_TYPE as _METRICS_TYPE
from ._metrics import MockMetrics
from ._records import RecordedRequest, ServerStats

__all__ = ["MockServer", "open_mock_server"]

# What a vanished client looks like, whichever side noticed first.
_CLIENT_GONE = (
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    anyio.IncompleteRead,
    OSError,
)
_SSE_TYPE = "text/event-stream; charset=utf-8"
_JSON_TYPE = "application/json"
_LINGER_RST = struct.pack("ii", 1, 0)
_RANDOM_STREAM_FAULTS = ("status", "reset", "error_event", "stall")
_RANDOM_BODY_FAULTS = ("status", "reset", "stall")
_MAX_ERRORS = 100

Dialect = Callable[[Context], Reply]


@attrs.frozen
class _Fault:
    kind: str
    after: int
    duration: float | None = None


@attrs.define(eq=False)
class _Load:
    """Requests generating now (``running``) and queued for a slot (``waiting``) under
    ``MockBehaviour.capacity``; the limiter follows the capacity the requests ask for."""

    running: int = 0
    waiting: int = 0
    _limiter: anyio.CapacityLimiter | None = None

    def limiter(self, capacity: int | None) -> anyio.CapacityLimiter | None:
        if capacity is None:
            return None
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(capacity)
        elif self._limiter.total_tokens != capacity:
            self._limiter.total_tokens = capacity
        return self._limiter


@attrs.define(eq=False)
class _Conn:
    """One client connection; ``trickle`` makes every write go out byte by byte."""

    stream: SocketStream
    reader: BufferedByteReceiveStream
    trickle: bool = False

    async def send(self, data: bytes) -> None:
        if not self.trickle:
            await self.stream.send(data)
            return
        for i in range(len(data)):
            await self.stream.send(data[i : i + 1])

    async def wait_closed(self) -> None:
        """Discard input until the client goes away (stalls and hangs end here)."""
        try:
            while True:
                await self.reader.receive()
        except _CLIENT_GONE:
            return

    async def reset(self) -> None:
        """Abort with a TCP RST: linger 0 makes close() drop the connection."""
        raw = self.stream.extra(SocketAttribute.raw_socket)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        await self.stream.aclose()


def _dialect_for(path: str) -> tuple[Dialect, bool] | None:
    """The dialect serving ``path`` (POST) and whether it takes a form instead of JSON."""
    if path.endswith("chat/completions"):
        return _dialects.chat, False
    if path.endswith("completions"):
        return _dialects.completions, False
    if path.startswith("/v2/models/"):
        if path.endswith("/generate_stream"):
            return (lambda ctx: _dialects.triton(ctx, True)), False
        if path.endswith("/generate"):
            return (lambda ctx: _dialects.triton(ctx, False)), False
    if path.endswith("generate_stream"):
        return (lambda ctx: _dialects.tgi(ctx, True)), False
    if path.endswith("/generate"):
        return (lambda ctx: _dialects.tgi(ctx, False)), False
    if path.endswith(("transcriptions", "translations")):
        return _dialects.audio, True
    if path.endswith("embeddings"):
        return _dialects.embeddings, False
    if path.endswith("rerank"):
        return _dialects.rerank, False
    if path.endswith("pooling"):
        return _dialects.pooling, False
    return None


def _cuts(size: int, b: MockBehaviour) -> list[int]:
    """Offsets strictly inside ``size`` bytes where a write is split."""
    cuts = {c for c in b.split_at if 0 < c < size}
    if b.split_every:
        cuts.update(range(b.split_every, size, b.split_every))
    return sorted(cuts)


def _configured_fault(b: MockBehaviour) -> _Fault | None:
    candidates = [
        (b.stall_after, "stall"),
        (b.reset_after, "reset"),
        (b.error_after, "error"),
        (b.error_event_after, "error_event"),
        (b.malformed_after, "malformed"),
    ]
    found = [(after, i, kind) for i, (after, kind) in enumerate(candidates) if after is not None]
    if not found:
        return None
    after, _, kind = min(found)
    return _Fault(kind, after, b.stall_duration if kind == "stall" else None)


def _request_id_header(req: HTTPRequest) -> list[tuple[str, str]]:
    rid = req.header("x-request-id")
    return [("x-request-id", rid)] if rid is not None else []


@attrs.define(eq=False)
class MockServer:
    """A running mock server (see :func:`open_mock_server`).

    ``behaviour`` may be replaced between requests; ``requests`` holds the
    :class:`RecordedRequest` list when ``record`` is true; ``stats`` always counts.
    A request body over ``max_body_size`` bytes (16 MiB by default) is answered 413,
    with a JSON error, and its connection closed without reading the rest.
    """

    host: str
    port: int
    model: str = "mock-model"
    record: bool = True
    max_body_size: int = attrs.field(
        default=MAX_BODY, validator=[attrs.validators.instance_of(int), attrs.validators.ge(0)]
    )
    _behaviour: MockBehaviour = attrs.field(factory=MockBehaviour, alias="behaviour")
    requests: list[RecordedRequest] = attrs.Factory(list)
    stats: ServerStats = attrs.Factory(ServerStats)
    errors: list[str] = attrs.Factory(list)
    _rng: random.Random = attrs.field(init=False)
    _seq: int = attrs.field(init=False, default=0)
    #: What ``GET /metrics`` shows (vLLM's names; see ``_metrics``).
    metrics: MockMetrics = attrs.field(
        init=False, default=attrs.Factory(lambda s: MockMetrics(model=s.model), takes_self=True)
    )
    _load: _Load = attrs.field(init=False, factory=_Load)

    def __attrs_post_init__(self) -> None:
        self._rng = random.Random(self._behaviour.seed)

    @property
    def behaviour(self) -> MockBehaviour:
        return self._behaviour

    @behaviour.setter
    def behaviour(self, value: MockBehaviour) -> None:
        self._behaviour = value
        self._rng = random.Random(value.seed)

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def reset(self) -> None:
        """Forget recorded requests, counters and internal errors."""
        self.requests.clear()
        self.stats.clear()
        self.errors.clear()

    # --- connections -------------------------------------------------------------------

    async def serve_connection(self, stream: SocketStream) -> None:
        """Serve requests on one connection until it closes; never raises ``Exception``."""
        stats = self.stats
        stats.connections += 1
        stats.active_connections += 1
        _limit_reads(stream)
        conn = _Conn(stream, BufferedByteReceiveStream(stream))
        try:
            async with stream:
                try:
                    while await self._serve_one(conn):
                        pass
                except ProtocolError as exc:
                    # The connection's framing can't be trusted past this (or, for a body
                    # too large, the rest is not worth reading): answer and close.
                    body, ctype = _dialects.error_body(exc.status, str(exc))
                    head = response_head(exc.status, ctype, length=len(body), keep_alive=False)
                    await conn.send(head + body)
        except _CLIENT_GONE:
            stats.client_disconnects += 1
        except Exception:
            # One bad request must not take the server down; tests assert on .errors.
            stats.internal_errors += 1
            if len(self.errors) < _MAX_ERRORS:
                self.errors.append(traceback.format_exc())
        finally:
            stats.active_connections -= 1

    async def _serve_one(self, conn: _Conn) -> bool:
        req = await read_request(conn.reader, conn.stream, self.max_body_size)
        if req is None:
            return False
        conn.trickle = False
        path = req.path
        if path.startswith("/mock/"):
            return await self._control(conn, req)
        if path == "/metrics" and req.method == "GET":
            # Like /mock/*, a scrape is neither recorded nor counted as a request.
            page = self.metrics.render(self._behaviour, self._load.waiting)
            return await self._simple(conn, req, None, 200, page, _METRICS_TYPE)
        self.stats.requests += 1
        self.stats.count_path(path)
        rec = None
        if self.record:
            rec = RecordedRequest(req.method, req.target, req.headers, req.body, req.received_at)
            self.requests.append(rec)
        return await self._route(conn, req, rec)

    async def _route(self, conn: _Conn, req: HTTPRequest, rec: RecordedRequest | None) -> bool:
        method, path = req.method, req.path
        if method == "GET" and path == "/health":
            return await self._simple(conn, req, rec, 200, b"", None)
        if method == "POST" and path.endswith(("/start_profile", "/stop_profile")):
            return await self._simple(conn, req, rec, 200, b"", None)
        if method == "GET" and path == "/v1/models":
            model = {"id": self.model, "object": "model", "root": self.model, "owned_by": "mock"}
            body = json.dumps({"object": "list", "data": [model]}).encode()
            return await self._simple(conn, req, rec, 200, body, _JSON_TYPE)
        found = _dialect_for(path)
        if found is None:
            return await self._error(conn, req, rec, 404, f"no route for {path}")
        if method != "POST":
            return await self._error(conn, req, rec, 405, f"{method} not allowed on {path}")
        return await self.metrics.served(req, self._generate(conn, req, rec, *found))

    # --- generation ----------------------------------------------------------------------

    async def _generate(
        self,
        conn: _Conn,
        req: HTTPRequest,
        rec: RecordedRequest | None,
        dialect: Dialect,
        takes_form: bool,
    ) -> bool:
        try:
            body = self._parse_input(req, rec, takes_form)
            b = self._effective_behaviour(req, body)
        except ValueError as exc:
            return await self._error(conn, req, rec, 400, str(exc))
        self._seq += 1
        ctx = Context(body, b, self._model_for(req, body), self._seq, int(time.time()))
        self.metrics.started(req, body, b)
        fault = self._random_fault(b) or _configured_fault(b)
        if b.hang:
            self._note_fault(rec, "hang")
            await conn.wait_closed()
            return False
        if b.status is not None or (fault is not None and fault.kind == "status"):
            self._note_fault(rec, "status")
            status = b.status if b.status is not None else 500
            return await self._error(
                conn, req, rec, status, b.error_message, b.error_body == "html"
            )
        if b.headers_then_hang:
            self._note_fault(rec, "headers_then_hang")
            ctype = b.content_type or _SSE_TYPE
            await conn.send(response_head(200, ctype, length=None, keep_alive=False))
            if rec is not None:
                rec.status = 200
            await conn.wait_closed()
            return False
        reply = dialect(ctx)
        conn.trickle = b.trickle
        if b.capacity is not None or b.ttft_per_active:
            return await self._reply_under_load(conn, req, rec, b, reply, fault)
        return await self._reply(conn, req, rec, b, reply, fault)

    async def _reply(
        self,
        conn: _Conn,
        req: HTTPRequest,
        rec: RecordedRequest | None,
        b: MockBehaviour,
        reply: Reply,
        fault: _Fault | None,
    ) -> bool:
        if isinstance(reply, StreamReply):
            if fault is not None and fault.after < 0:
                fault = attrs.evolve(fault, after=self._rng.randrange(len(reply.events) + 1))
            return await self._stream(conn, req, rec, b, reply, fault)
        if fault is not None and fault.kind not in ("reset", "stall"):
            fault = None  # in-stream faults have no meaning for a whole-body reply
        return await self._body(conn, req, rec, b, reply, fault)

    async def _reply_under_load(
        self,
        conn: _Conn,
        req: HTTPRequest,
        rec: RecordedRequest | None,
        b: MockBehaviour,
        reply: Reply,
        fault: _Fault | None,
    ) -> bool:
        """``capacity`` and ``ttft_per_active``: wait for a generation slot (first come,
        first served), then answer with the TTFT raised by the others generating."""
        load = self._load
        limiter = load.limiter(b.capacity)
        if limiter is not None:
            load.waiting += 1
            try:
                await limiter.acquire()
            finally:
                load.waiting -= 1
        others = load.running
        load.running += 1
        try:
            if b.ttft_per_active and others:
                b = attrs.evolve(b, ttft=b.ttft + b.ttft_per_active * others)
            return await self._reply(conn, req, rec, b, reply, fault)
        finally:
            load.running -= 1
            if limiter is not None:
                limiter.release()

    def _parse_input(
        self, req: HTTPRequest, rec: RecordedRequest | None, takes_form: bool
    ) -> Mapping[str, Any]:
        ctype = (req.header("content-type") or "").lower()
        if takes_form and ctype.startswith("multipart/form-data"):
            try:
                form, files = _parse_multipart(req.body, req.header("content-type") or "")
            except ProtocolError as exc:
                raise ValueError(f"bad multipart body: {exc}") from None
            if rec is not None:
                rec.form, rec.files = form, files
            return form
        if takes_form and ctype.startswith("application/x-www-form-urlencoded"):
            form = dict(parse_qsl(req.body.decode("utf-8", "replace")))
            if rec is not None:
                rec.form = form
            return form
        try:
            data = json.loads(req.body) if req.body.strip() else {}
        except ValueError as exc:
            raise ValueError(f"invalid JSON body: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("the JSON body must be an object")
        if rec is not None:
            rec.json = data
        return data

    def _effective_behaviour(self, req: HTTPRequest, body: Mapping[str, Any]) -> MockBehaviour:
        overrides: dict[str, Any] = {}
        header = req.header("x-mock-behaviour")
        if header:
            try:
                parsed = json.loads(header)
            except ValueError as exc:
                raise ValueError(f"invalid x-mock-behaviour header: {exc}") from None
            if not isinstance(parsed, dict):
                raise ValueError("x-mock-behaviour must be a JSON object")
            overrides.update(parsed)
        in_body = body.get("mock")
        if isinstance(in_body, dict):
            overrides.update(in_body)
        elif isinstance(in_body, str):  # a form field carries JSON text
            try:
                overrides.update(json.loads(in_body))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"invalid mock field: {exc}") from None
        if not overrides:
            return self._behaviour
        return self._behaviour.with_overrides(overrides)

    def _model_for(self, req: HTTPRequest, body: Mapping[str, Any]) -> str:
        model = body.get("model")
        if isinstance(model, str) and model:
            return model
        parts = req.path.split("/")
        if req.path.startswith("/v2/models/") and len(parts) > 3 and parts[3]:
            return parts[3]
        return self.model

    def _random_fault(self, b: MockBehaviour) -> _Fault | None:
        """A soak-test fault for a ``fault_rate`` share of requests; ``after=-1`` is
        resolved once the number of events is known."""
        if not b.fault_rate or self._rng.random() >= b.fault_rate:
            return None
        kind = self._rng.choice(_RANDOM_STREAM_FAULTS)
        return _Fault(kind, -1, b.fault_stall if kind == "stall" else None)

    def _note_fault(self, rec: RecordedRequest | None, kind: str) -> None:
        self.stats.count_fault(kind)
        if rec is not None:
            rec.fault = kind

    def _completed(self, rec: RecordedRequest | None) -> None:
        self.stats.responses_completed += 1
        if rec is not None:
            rec.completed = True

    # --- writing -----------------------------------------------------------------------

    async def _stream(
        self,
        conn: _Conn,
        req: HTTPRequest,
        rec: RecordedRequest | None,
        b: MockBehaviour,
        reply: StreamReply,
        fault: _Fault | None,
    ) -> bool:
        le = b.line_ending.encode()
        end = le + le
        space = reply.data_space if b.data_space is None else b.data_space
        prefix = b"data: " if space else b"data:"
        keep = req.keep_alive
        head = response_head(
            200,
            b.content_type or _SSE_TYPE,
            length=None,
            keep_alive=keep,
            extra=_request_id_header(req),
        )
        base = anyio.current_time()
        await conn.send(head)
        if rec is not None:
            rec.status = 200
        stats = self.stats
        fault_at = fault.after if fault is not None else -1
        step = 0
        for i, event in enumerate(reply.events):
            if i == fault_at and fault is not None:
                outcome = await self._stream_fault(conn, rec, b, fault, prefix, le)
                if outcome is not None:
                    return outcome and keep
                base += fault.duration or 0.0
            if event.wait:
                # Absolute deadlines, so scheduling jitter does not accumulate.
                delay = base + b.ttft + step * b.itl - anyio.current_time()
                step += 1
                if delay > 0:
                    await anyio.sleep(delay)
            frame = prefix + event.data + end
            if b.event_ids:
                frame = b"id: %d" % i + le + frame
            # Stamped as the bytes are handed over, before the write yields to other tasks:
            # clients measure their own delay against it.
            sent = time.perf_counter()
            await self._write_event(conn, frame, b)
            if rec is not None:
                rec.sent_times.append(sent)
                rec.event_tokens.append(event.tokens)
            stats.events += 1
            tokens = len(event.tokens)
            stats.tokens += tokens
            if tokens:  # role, usage and finish events carry none: no metrics to move
                self.metrics.sent(req, tokens, sent)
            if b.ping_every and (i + 1) % b.ping_every == 0:
                await conn.send(chunk(b": ping" + end))
        if fault_at == len(reply.events) and fault is not None:
            outcome = await self._stream_fault(conn, rec, b, fault, prefix, le)
            if outcome is not None:
                return outcome and keep
        self.metrics.finished(req)  # before the end goes out: a later scrape sees it
        if reply.done and b.send_done:
            await self._write_event(conn, prefix + b"[DONE]" + end, b)
        await conn.send(TERMINATOR)
        self._completed(rec)
        return keep

    async def _stream_fault(
        self,
        conn: _Conn,
        rec: RecordedRequest | None,
        b: MockBehaviour,
        fault: _Fault,
        prefix: bytes,
        le: bytes,
    ) -> bool | None:
        """Apply ``fault``: None to carry on streaming, else whether the connection lives."""
        self._note_fault(rec, fault.kind)
        if fault.kind == "stall":
            if fault.duration is not None:
                await anyio.sleep(fault.duration)
                return None
            await conn.wait_closed()
            return False
        if fault.kind == "reset":
            await conn.reset()
            return False
        error = json.dumps(
            {"error": {"message": b.error_message, "type": "server_error", "code": 500}}
        ).encode()
        if fault.kind == "error":
            frame = prefix + error + le + le
        elif fault.kind == "error_event":
            frame = b"event: error" + le + prefix + error + le + le
        else:
            frame = prefix + b"{not json" + le + le
        await self._write_event(conn, frame, b)
        await conn.send(TERMINATOR)
        self._completed(rec)
        return True

    async def _write_event(self, conn: _Conn, frame: bytes, b: MockBehaviour) -> None:
        """One event as one chunk, or as several with a short pause between (split tests)."""
        cuts = _cuts(len(frame), b) if b.split_at or b.split_every else None
        if not cuts:
            await conn.send(chunk(frame))
            return
        start = 0
        for cut in cuts:
            await conn.send(chunk(frame[start:cut]))
            await anyio.sleep(b.split_delay)
            start = cut
        await conn.send(chunk(frame[start:]))

    async def _body(
        self,
        conn: _Conn,
        req: HTTPRequest,
        rec: RecordedRequest | None,
        b: MockBehaviour,
        reply: BodyReply,
        fault: _Fault | None,
    ) -> bool:
        # A whole-body reply arrives once generation would have finished.
        delay = b.ttft + b.itl * max(reply.steps - 1, 0)
        if delay > 0:
            await anyio.sleep(delay)
        if fault is not None and fault.after <= 0:
            self._note_fault(rec, fault.kind)
            if fault.kind == "reset":
                await conn.reset()
                return False
            if fault.duration is None:
                await conn.wait_closed()
                return False
            await anyio.sleep(fault.duration)
        self.metrics.sent(req, len(reply.tokens))
        self.metrics.finished(req)
        keep = req.keep_alive
        head = response_head(
            reply.status,
            b.content_type or reply.content_type,
            length=len(reply.body),
            keep_alive=keep,
            extra=reply.headers + _request_id_header(req),
        )
        if rec is not None:
            rec.status = reply.status
        cuts = _cuts(len(reply.body), b) if b.split_at or b.split_every else None
        if cuts:
            await conn.send(head)
            start = 0
            for cut in [*cuts, len(reply.body)]:
                await conn.send(reply.body[start:cut])
                await anyio.sleep(b.split_delay)
                start = cut
        else:
            await conn.send(head + reply.body)
        if rec is not None:
            rec.sent_times.append(time.perf_counter())
            rec.event_tokens.append(reply.tokens)
        self.stats.events += 1
        self.stats.tokens += len(reply.tokens)
        self._completed(rec)
        return keep

    async def _simple(
        self,
        conn: _Conn,
        req: HTTPRequest,
        rec: RecordedRequest | None,
        status: int,
        body: bytes,
        content_type: str | None,
    ) -> bool:
        keep = req.keep_alive
        head = response_head(
            status,
            content_type,
            length=len(body),
            keep_alive=keep,
            extra=_request_id_header(req),
        )
        await conn.send(head + body)
        if rec is not None:
            rec.status = status
        self._completed(rec)
        return keep

    async def _error(
        self,
        conn: _Conn,
        req: HTTPRequest,
        rec: RecordedRequest | None,
        status: int,
        message: str,
        html: bool = False,
    ) -> bool:
        body, ctype = _dialects.error_body(status, message, html)
        return await self._simple(conn, req, rec, status, body, ctype)

    # --- control plane -------------------------------------------------------------------

    async def _control(self, conn: _Conn, req: HTTPRequest) -> bool:
        """``/mock/*``: introspection for clients in other processes (never recorded)."""
        route = (req.method, req.path)
        payload: Any
        if route == ("GET", "/mock/requests"):
            payload = [r.to_json() for r in self.requests]
        elif route == ("GET", "/mock/stats"):
            payload = self.stats.to_json()
        elif route == ("POST", "/mock/reset"):
            self.reset()
            payload = {}
        elif route == ("GET", "/mock/behaviour"):
            payload = self._behaviour.to_json()
        elif route == ("POST", "/mock/behaviour"):
            try:
                overrides = json.loads(req.body or b"{}")
                if not isinstance(overrides, dict):
                    raise ValueError("the JSON body must be an object")
                self.behaviour = self._behaviour.with_overrides(overrides)
            except ValueError as exc:
                return await self._error(conn, req, None, 400, str(exc))
            payload = self._behaviour.to_json()
        else:
            return await self._error(conn, req, None, 404, f"no route for {req.path}")
        body = json.dumps(payload).encode()
        return await self._simple(conn, req, None, 200, body, _JSON_TYPE)


def _limit_reads(stream: SocketStream) -> None:
    """Reads of at most 64 KiB on asyncio's own loop, as the client's transport makes
    (its ``limit_reads`` says why): anyio's asyncio stream keeps the transport as
    ``_transport``; other streams have none and read as they do."""
    transport = getattr(stream, "_transport", None)
    if transport is not None:
        from .._transport._asyncio_protocol import limit_reads
        from .._transport._interface import DEFAULT_READ_SIZE

        limit_reads(transport, DEFAULT_READ_SIZE)


@asynccontextmanager
async def open_mock_server(
    behaviour: MockBehaviour | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    model: str = "mock-model",
    record: bool = True,
    max_body_size: int = MAX_BODY,
) -> AsyncIterator[MockServer]:
    """Listen on ``host:port`` (0 picks a free port) and serve until the block exits.

    A request body over *max_body_size* bytes is answered 413 (see :class:`MockServer`).

    Every connection is handled in a task of the server's own task group, which is
    cancelled on exit, so no handler outlives the block.
    """
    server = MockServer(
        host=host,
        port=port,
        model=model,
        record=record,
        max_body_size=max_body_size,
        behaviour=behaviour or MockBehaviour(),
    )  # before listening, so a bad argument opens no socket
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    async with listener, anyio.create_task_group() as tg:
        server.port = listener.extra(SocketAttribute.local_port)
        tg.start_soon(listener.serve, server.serve_connection, tg)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()
