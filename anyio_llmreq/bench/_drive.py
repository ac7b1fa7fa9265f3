"""The local executor: the hot loop that releases requests on schedule, inside one task
group, and collects them (or, for a multi-turn plan, starts its sessions on schedule,
each sending its turns in order: ``_sessions.run_session``).

``LocalExecutor`` runs it in this process (``--workers 1``); each worker process of
``WorkerExecutor`` (``_workers``) runs ``drive`` as is.
"""

from __future__ import annotations

import contextlib
import functools
import math
import signal
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import attrs

from .._client import Client
from .._engine import Timeouts
from .._models import RequestFuncInput, RequestFuncOutput
from ..backends._base import Backend, api_key_from_env
from ._execute import Execution, PhaseStats, RecordCallback, RequestRecord, measured_phase
from ._plan import ScheduledRequest, WorkloadPlan
from ._selfcheck import LoopLagMonitor

if TYPE_CHECKING:
    from ._sessions import SessionShare

__all__ = [
    "LocalExecutor",
    "cancel_on_signal",
    "drive",
    "one_line_error",
    "send_counted",
    "stop_signals",
    "watch_signals",
]


@attrs.frozen
class LocalExecutor:
    """The ``Executor`` that sends every request from this process's event loop.

    *client* is the one the setup warmed up (its connections are open); without one,
    ``run`` opens its own. *stop_after* finished requests stop the run as Ctrl-C would;
    with *handle_signals*, SIGINT and SIGTERM stop it.
    """

    client: Client | None = None
    stop_after: int | None = attrs.field(default=None, kw_only=True)
    handle_signals: bool = attrs.field(default=True, kw_only=True)

    async def run(self, plan: WorkloadPlan, on_record: RecordCallback) -> Execution:
        from ._workers import drive_spec, worker_specs  # the one share of one sender

        (share,) = worker_specs(plan, 1)
        async with contextlib.AsyncExitStack() as stack:
            client = self.client
            if client is None:
                client = await stack.enter_async_context(
                    run_client(plan.timeouts, plan.target.verify)
                )
            with measured_phase() as phase:
                start = time.perf_counter()
                records, stats = await drive_spec(
                    client,
                    share,
                    start=start,
                    on_record=on_record,
                    signals=None if self.handle_signals else (),
                    stop_after=self.stop_after,
                )
                cpu = phase.cpu_s()
        return Execution(
            records=records,
            stats=[stats],
            planned=len(plan.requests),
            duration=stats.end - start,
            wall_start=phase.wall_start,
            cpu_s=[cpu],
            stop_signal=stats.stop_signal,
        )


def stop_signals() -> tuple[signal.Signals, ...]:
    """The signals that stop a run: SIGINT and SIGTERM (none on Windows)."""
    if sys.platform == "win32":  # pragma: no cover
        return ()
    return (signal.SIGINT, signal.SIGTERM)


async def watch_signals(
    sigs: tuple[signal.Signals, ...],
    on_signal: Callable[[int], bool],
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Call ``on_signal(signum)`` for each of *sigs* received, until it returns True.
    Started once listening; where no handler can be set (not the main thread, a
    platform without them) it watches nothing."""
    started = False
    try:
        if sigs:
            with anyio.open_signal_receiver(*sigs) as received:
                task_status.started()
                started = True
                async for signum in received:
                    if on_signal(int(signum)):
                        return
    except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover
        pass
    if not started:
        task_status.started()


def cancel_on_signal(
    scope: anyio.CancelScope, caught: list[int], flag: list[bool] | None = None
) -> Callable[[int], bool]:
    """``watch_signals``'s callback that notes the signal and cancels *scope* at the first."""

    def on_signal(signum: int) -> bool:
        if flag is not None:
            flag[0] = True
        caught.append(signum)
        scope.cancel()
        return True

    return on_signal


def run_client(timeouts: Timeouts, verify: bool | str | ssl.SSLContext) -> Client:
    """The client a run sends with, in this process: ``OPENAI_API_KEY`` is read once,
    as the run starts (the scrubber reads it then too), not at each request."""
    return Client(timeouts=timeouts, verify=verify, api_key=api_key_from_env() or "")


async def send_counted(
    client: Client, backend: Backend | str, request: RequestFuncInput
) -> RequestFuncOutput:
    """``client.send``, with a request that can't be built counted as failed, not raised:
    one bad row of a dataset (a ``ConfigError``, an extra body JSON can't encode, any
    other exception while building it) must not end the run."""
    try:
        return await client.send(backend, request)
    except Exception as exc:
        return RequestFuncOutput(prompt_len=request.prompt_len, error=one_line_error(exc))


def one_line_error(exc: BaseException) -> str:
    """``"TypeError: reason"`` on one line, for the report's list of errors."""
    text = " ".join(str(exc).split())
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


async def drive(
    client: Client,
    backend: Backend | str,
    requests: Sequence[ScheduledRequest],
    *,
    start: float,
    max_concurrency: int | None = None,
    on_record: RecordCallback | None = None,
    signals: tuple[signal.Signals, ...] | None = None,
    stop_after: int | None = None,
    worker: int = 0,
    sessions: SessionShare | None = None,
) -> tuple[list[RequestRecord], PhaseStats]:
    """Send *requests* at ``start + delay`` (``start`` on ``time.perf_counter``) and wait
    for them; or, given *sessions*, start each session at its ``delay`` and send its
    turns in order (``_sessions.run_session``), *requests* unused.

    SIGINT/SIGTERM (or *signals*), or *stop_after* finished requests, cancel the run:
    in-flight requests are abandoned, everything finished is returned. Never raises for
    a failed request.
    """
    records: list[RequestRecord] = []
    monitor = LoopLagMonitor(origin=start)
    interrupted = [False]
    caught: list[int] = []
    sent = 0
    counts = [0]  # sessions: turns sent
    cpu0 = time.process_time()
    clock = time.perf_counter
    wall0 = clock()

    async with anyio.create_task_group() as outer:
        finish = _finisher(records, on_record, stop_after, interrupted, outer)

        async def sent_at(item: ScheduledRequest, dispatched: float, acquired: float) -> None:
            """Send *item*, released at *dispatched*, given its slot at *acquired*."""
            try:
                out = await send_counted(client, backend, item.request)
            finally:
                monitor.leave()
            out.client_queue_time = acquired - dispatched
            rec = RequestRecord(
                index=item.index,
                request_id=item.request.request_id or "",
                scheduled=item.delay,
                dispatched=dispatched - start,
                output=out,
                worker=worker,
                timeout=item.request.timeout,
            )
            finish(rec)

        outer.start_soon(
            watch_signals,
            stop_signals() if signals is None else signals,
            cancel_on_signal(outer.cancel_scope, caught, interrupted),
        )
        outer.start_soon(monitor.run)
        senders: _Senders | None = None
        try:
            async with anyio.create_task_group() as tg:
                if sessions is not None:
                    await _release_sessions(
                        tg,
                        sessions,
                        client,
                        backend,
                        start=start,
                        max_concurrency=max_concurrency,
                        monitor=monitor,
                        worker=worker,
                        counts=counts,
                        finish=finish,
                    )
                senders = _Senders(tg, sent_at, max_concurrency)
                with senders:
                    for item in requests if sessions is None else ():
                        if item.delay > 0:
                            wait = start + item.delay - clock()
                            if wait > 0:
                                await anyio.sleep(wait)
                        elif start > clock():
                            await anyio.sleep(start - clock())
                        sent += 1
                        monitor.enter()
                        senders.release(item, clock())
        finally:
            if senders is not None:
                senders.close()
        outer.cancel_scope.cancel()

    end = clock()
    stats = PhaseStats(
        loop_lags=monitor.samples,
        loop_lag_starts=monitor.starts,
        cpu_s=time.process_time() - cpu0,
        wall_s=end - wall0,
        end=end,
        sent=sent + counts[0],
        finished=len(records),
        interrupted=interrupted[0],
        stop_signal=caught[0] if caught else None,
    )
    return records, stats


_Released = tuple[ScheduledRequest, float]


class _Senders:
    """The tasks that send released requests.

    A sender starts only when none is idle (and fewer than *cap* run), then takes the
    next released request each time it is done: a run starts as many tasks as it has
    requests in flight at its peak, not one per request (a task, and a limiter to cap
    them, cost about 80 us a request). Past the cap, released requests wait for a
    sender in order, as they would for a first-come limiter.
    """

    def __init__(
        self,
        tg: anyio.abc.TaskGroup,
        send: Callable[[ScheduledRequest, float, float], Awaitable[None]],
        cap: int | None,
    ) -> None:
        self._tg = tg
        self._send = send  # (request, released at, sender free at)
        self._cap = cap
        self._release, self._released = anyio.create_memory_object_stream[_Released](math.inf)
        self._started = 0
        self._idle = 0

    def __enter__(self) -> _Senders:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._release.close()  # idle senders end once the queue is empty

    def release(self, item: ScheduledRequest, released: float) -> None:
        if self._idle:
            self._idle -= 1  # one waiting sender gets it (none is waiting with a queue)
            self._release.send_nowait((item, released))
        elif self._cap is None or self._started < self._cap:
            self._started += 1
            self._tg.start_soon(self._run, item, released)
        else:
            self._release.send_nowait((item, released))

    async def _run(self, item: ScheduledRequest, released: float) -> None:
        await self._send(item, released, released)
        queue = self._released
        clock = time.perf_counter
        while True:
            try:
                item, released = queue.receive_nowait()
            except anyio.WouldBlock:
                self._idle += 1
                try:
                    item, released = await queue.receive()
                except anyio.EndOfStream:
                    return
            except anyio.EndOfStream:
                return
            await self._send(item, released, clock())

    def close(self) -> None:
        """Close both ends, once the senders' task group has ended."""
        self._release.close()
        self._released.close()


def _finisher(
    records: list[RequestRecord],
    on_record: RecordCallback | None,
    stop_after: int | None,
    interrupted: list[bool],
    outer: anyio.abc.TaskGroup,
) -> Callable[[RequestRecord], None]:
    """What ``drive`` does with each finished request (or session turn)."""

    def finish(rec: RequestRecord) -> None:
        records.append(rec)
        if on_record is not None:
            on_record(rec)
        if stop_after is not None and len(records) >= stop_after:
            interrupted[0] = True
            outer.cancel_scope.cancel()

    return finish


async def _release_sessions(
    tg: anyio.abc.TaskGroup,
    share: SessionShare,
    client: Client,
    backend: Backend | str,
    *,
    start: float,
    max_concurrency: int | None,
    monitor: LoopLagMonitor,
    worker: int,
    counts: list[int],
    finish: Callable[[RequestRecord], None],
) -> None:
    """Start each session at its arrival; its turns take a ``--max-concurrency`` slot
    (a turn waits for its own, in the middle of a conversation) and go through the lag
    monitor as requests do."""
    from ._sessions import run_session

    clock = time.perf_counter
    limiter = anyio.CapacityLimiter(max_concurrency) if max_concurrency else None
    slots = None if share.max_active is None else anyio.CapacityLimiter(share.max_active)

    async def send(request: RequestFuncInput, dispatched: float) -> RequestFuncOutput:
        monitor.enter()
        try:
            if limiter is not None:
                async with limiter:
                    acquired = clock()
                    out = await send_counted(client, backend, request)
            else:
                acquired = clock()
                out = await send_counted(client, backend, request)
        finally:
            monitor.leave()
        out.client_queue_time = acquired - dispatched
        return out

    for session in share.sessions:
        wait = start + session.delay - clock()
        if wait > 0:
            await anyio.sleep(wait)
        tg.start_soon(
            functools.partial(
                run_session,
                session,
                send=send,
                finish=finish,
                start=start,
                worker=worker,
                recorded_answers=share.recorded_answers,
                slots=slots,
                counts=counts,
            )
        )
