"""The multi-process executor (``--workers N``): N processes, each with its own event
loop, one shared schedule.

``WorkerExecutor`` is the ``Executor``. The parent precomputes the schedule; worker *k*
sends requests ``i % N == k`` at their absolute offsets from a common start time
(``time.perf_counter`` is system-wide on Linux, macOS and Windows), and sends its
finished requests back over its pipe as they finish, in a batch every 50 ms. The parent
merges them, so percentiles are computed on all the data.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread
import attrs

from .._engine import Timeouts
from ..backends._base import Backend
from ._execute import Execution, PhaseStats, RecordCallback, RequestRecord, measured_phase
from ._plan import ScheduledRequest, WorkloadPlan

if TYPE_CHECKING:
    from .._client import Client
    from ._sessions import SessionShare

__all__ = [
    "WorkerExecutor",
    "WorkerSpec",
    "drive_spec",
    "run_workers",
    "split_concurrency",
    "split_requests",
    "worker_specs",
]

_START_MARGIN = 0.05
_READY_TIMEOUT = 120.0
# Finished requests go to the parent in batches this often: one pickled message (and one
# thread hop in the parent) per record cost more CPU than the request itself.
_FLUSH_S = 0.05

_T = TypeVar("_T")


@attrs.frozen
class WorkerSpec:
    """Everything one worker process needs (pickled to it)."""

    worker: int
    loop: str
    backend: Backend | str
    requests: tuple[ScheduledRequest, ...]
    max_concurrency: int | None
    timeouts: Timeouts
    verify: bool
    #: Multi-turn runs: this worker's whole sessions (``requests`` is then empty).
    sessions: SessionShare | None = None


@attrs.frozen(kw_only=True)
class WorkerExecutor:
    """The ``Executor`` that splits a plan across ``plan.workers`` processes.

    With *handle_signals*, SIGINT and SIGTERM here stop the workers, which send back
    everything they finished.
    """

    handle_signals: bool = True

    async def run(self, plan: WorkloadPlan, on_record: RecordCallback) -> Execution:
        specs = worker_specs(plan)
        caught: list[int] = []
        with measured_phase() as phase:
            records, stats, start = await run_workers(
                specs, on_record=on_record, handle_signals=self.handle_signals, caught=caught
            )
            parent_cpu = phase.cpu_s()
        cpu = [s.cpu_s for s in stats]
        if plan.target.embedded:
            cpu.append(parent_cpu)  # this process served the embedded mock server
        return Execution(
            records=records,
            stats=stats,
            planned=len(plan.requests),
            duration=max(s.end for s in stats) - start if stats else 0.0,
            wall_start=phase.wall_start,
            cpu_s=cpu,
            stop_signal=caught[0] if caught else None,
        )


def worker_specs(plan: WorkloadPlan, workers: int | None = None) -> list[WorkerSpec]:
    """The plan's share for each of *workers* (default ``plan.workers``) senders: every
    executor that spreads a plan (processes, Ray actors) splits it here, so a share
    means the same thing whoever runs it."""
    n = plan.workers if workers is None else workers
    shares = split_concurrency(plan.max_concurrency, n)
    sessions = _session_shares(plan, n)
    parts = split_requests(plan.requests, n) if sessions is None else [()] * n
    return [
        WorkerSpec(
            worker=k,
            loop=plan.loop,
            backend=plan.request_backend,
            requests=parts[k],
            max_concurrency=shares[k],
            timeouts=plan.timeouts,
            verify=plan.target.verify,
            sessions=None if sessions is None else sessions[k],
        )
        for k in range(n)
    ]


def _session_shares(plan: WorkloadPlan, workers: int) -> list[SessionShare] | None:
    """Each worker's whole sessions (``i % workers == k``, never one split) and its
    share of ``--max-active-conversations``; None without sessions."""
    if not plan.sessions:
        return None
    from ._sessions import SessionShare

    caps = split_concurrency(plan.max_active_conversations, workers)
    # More workers than places (an explicit *workers*): each still runs one at a time.
    return [
        SessionShare(part, None if caps[k] is None else max(caps[k] or 0, 1), plan.recorded_answers)
        for k, part in enumerate(split_requests(plan.sessions, workers))
    ]


async def drive_spec(
    client: Client,
    spec: WorkerSpec,
    *,
    start: float,
    on_record: RecordCallback,
    signals: tuple[signal.Signals, ...] | None = (),
    stop_after: int | None = None,
) -> tuple[list[RequestRecord], PhaseStats]:
    """Run one share with *client* from *start* (``perf_counter``): what this process,
    a worker process or a Ray actor does once its peers are ready. *signals* and
    *stop_after* as ``drive`` takes them."""
    from ._drive import drive

    return await drive(
        client,
        spec.backend,
        spec.requests,
        start=start,
        max_concurrency=spec.max_concurrency,
        on_record=on_record,
        signals=signals,
        stop_after=stop_after,
        worker=spec.worker,
        sessions=spec.sessions,
    )


def split_requests(requests: Sequence[_T], workers: int) -> list[tuple[_T, ...]]:
    """Worker *k* gets the requests (or whole conversations) whose position ``i`` has
    ``i % workers == k``."""
    return [tuple(requests[k::workers]) for k in range(workers)]


def split_concurrency(max_concurrency: int | None, workers: int) -> list[int | None]:
    """Share ``--max-concurrency`` across workers so the shares add up to it."""
    if max_concurrency is None:
        return [None] * workers
    base, extra = divmod(max_concurrency, workers)
    return [base + (1 if k < extra else 0) for k in range(workers)]


def _worker_main(conn: Connection, spec: WorkerSpec) -> None:
    # Ctrl-C reaches the whole process group: the parent handles it and sends SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from .._loops import loop_backend

    backend, options = loop_backend(spec.loop)
    try:
        anyio.run(_worker_async, conn, spec, backend=backend, backend_options=options)
    except BaseException as exc:  # report anything, then exit
        try:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        except Exception:
            pass
        raise
    finally:
        conn.close()


async def _worker_async(conn: Connection, spec: WorkerSpec) -> None:
    import gc

    from ._drive import run_client

    async with run_client(spec.timeouts, spec.verify) as client:
        conn.send(("ready", os.getpid()))
        message = await anyio.to_thread.run_sync(conn.recv)
        if message[0] != "start":
            return
        start = float(message[1])
        gc.collect()
        gc.freeze()

        batch: list[RequestRecord] = []

        def flush() -> None:
            if batch:
                conn.send(("records", batch[:]))
                batch.clear()

        async def flush_every(interval: float) -> None:
            while True:
                await anyio.sleep(interval)
                flush()

        sigs = () if sys.platform == "win32" else (signal.SIGTERM,)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(flush_every, _FLUSH_S)
                _, stats = await drive_spec(
                    client, spec, start=start, on_record=batch.append, signals=sigs
                )
                tg.cancel_scope.cancel()
        finally:
            flush()  # even on the way out of a failure: what finished is the parent's
        conn.send(("done", stats))


async def run_workers(
    specs: Sequence[WorkerSpec],
    *,
    on_record: RecordCallback,
    on_start: Callable[[float], None] | None = None,
    handle_signals: bool = True,
    caught: list[int] | None = None,
) -> tuple[list[RequestRecord], list[PhaseStats], float]:
    """Start one process per spec, start them together, gather their records.

    Returns the records (in arrival order), each worker's stats and the common start
    (``perf_counter``). SIGINT/SIGTERM in the parent is forwarded to the workers as
    SIGTERM; they stop and send back everything they finished. The signals received
    are appended to *caught*.

    Raises:
        RuntimeError: a worker failed to start or crashed.
    """
    ctx = multiprocessing.get_context("spawn")
    procs: list[Any] = []
    conns: list[Connection] = []
    records: list[RequestRecord] = []
    stats: list[PhaseStats | None] = [None] * len(specs)
    errors: list[str] = []
    try:
        for spec in specs:
            parent_conn, child_conn = ctx.Pipe()
            proc = ctx.Process(
                target=_worker_main,
                args=(child_conn, spec),
                daemon=True,
                name=f"anyio-llmreq-bench-{spec.worker}",
            )
            proc.start()
            child_conn.close()
            procs.append(proc)
            conns.append(parent_conn)

        def recv_ready(conn: Connection) -> Any:
            if not conn.poll(_READY_TIMEOUT):
                raise RuntimeError("a bench worker did not start in time")
            return conn.recv()

        for conn in conns:
            try:
                message = await anyio.to_thread.run_sync(recv_ready, conn)
            except EOFError:
                raise RuntimeError("a bench worker exited while starting") from None
            if message[0] != "ready":
                raise RuntimeError(f"bench worker failed: {message[1]}")
        start = time.perf_counter() + _START_MARGIN
        for conn in conns:
            conn.send(("start", start))
        if on_start is not None:
            on_start(start)

        def stop_workers() -> None:
            for proc in procs:
                if proc.is_alive() and proc.pid is not None:
                    try:
                        os.kill(proc.pid, signal.SIGTERM)
                    except OSError:
                        pass

        async def read(k: int, conn: Connection) -> None:
            while True:
                try:
                    message = await anyio.to_thread.run_sync(conn.recv, abandon_on_cancel=True)
                except EOFError:
                    if stats[k] is None:
                        errors.append(f"worker {k} exited without its results")
                    return
                kind = message[0]
                if kind == "records":
                    for rec in message[1]:
                        records.append(rec)
                        on_record(rec)
                elif kind == "done":
                    stats[k] = message[1]
                    return
                elif kind == "error":
                    errors.append(f"worker {k}: {message[1]}")
                    return

        def on_signal(signum: int) -> bool:
            if caught is not None:
                caught.append(signum)
            stop_workers()
            return False  # each signal stops them again

        async with anyio.create_task_group() as tg:
            from ._drive import stop_signals, watch_signals

            tg.start_soon(watch_signals, stop_signals() if handle_signals else (), on_signal)
            async with anyio.create_task_group() as readers:
                for k, conn in enumerate(conns):
                    readers.start_soon(read, k, conn)
            tg.cancel_scope.cancel()
    finally:
        for conn in conns:
            conn.close()
        with anyio.CancelScope(shield=True):
            for proc in procs:
                await anyio.to_thread.run_sync(proc.join, 10.0)
                if proc.is_alive():
                    proc.kill()
                    await anyio.to_thread.run_sync(proc.join, 5.0)
    if errors:
        raise RuntimeError("; ".join(errors))
    return records, [s for s in stats if s is not None], start
