"""The hot loop: release requests on schedule, inside one task group, and collect them.

Used as is by a single-process run and by each worker process of ``--workers N``.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Sequence

import anyio
import attrs

from .._client import Client
from .._models import RequestFuncInput, RequestFuncOutput
from ..backends._base import Backend
from ._redact import redact_request
from ._selfcheck import LoopLagMonitor

__all__ = [
    "PhaseStats",
    "RequestRecord",
    "ScheduledRequest",
    "drive",
    "one_line_error",
    "send_counted",
]


@attrs.frozen
class ScheduledRequest:
    """A request and its send offset (seconds after the common start)."""

    index: int
    # Credential headers never show in a repr (see ``_redact``).
    request: RequestFuncInput = attrs.field(repr=lambda r: repr(redact_request(r)))
    delay: float


@attrs.define
class RequestRecord:
    """One finished request: its output plus when it was due and when it left.

    ``scheduled`` and ``dispatched`` are seconds after the run's start; the output's
    ``client_queue_time`` is the wait for a ``--max-concurrency`` slot.
    """

    index: int
    request_id: str
    scheduled: float
    dispatched: float
    output: RequestFuncOutput
    worker: int = 0
    #: The request's total deadline (``RequestFuncInput.timeout``), so a line says
    #: what limit a timed-out request ran under.
    timeout: float | None = None

    @property
    def send_lag(self) -> float:
        return max(self.dispatched - self.scheduled, 0.0)

    def to_json(self) -> dict[str, object]:
        """The ``--output-jsonl`` line for this request."""
        from dataclasses import asdict

        data: dict[str, object] = {
            "index": self.index,
            "request_id": self.request_id,
            "worker": self.worker,
            "scheduled_time": self.scheduled,
            "dispatch_time": self.dispatched,
            "timeout": self.timeout,
        }
        data.update(asdict(self.output))
        return data


@attrs.frozen
class PhaseStats:
    """What one process measured about itself during the run."""

    loop_lags: list[float]
    cpu_s: float
    wall_s: float
    end: float
    sent: int
    finished: int
    interrupted: bool


def _signals() -> tuple[signal.Signals, ...]:
    if sys.platform == "win32":  # pragma: no cover
        return ()
    return (signal.SIGINT, signal.SIGTERM)


async def _watch_signals(
    scope: anyio.CancelScope, sigs: tuple[signal.Signals, ...], flag: list[bool]
) -> None:
    if not sigs:
        return
    try:
        with anyio.open_signal_receiver(*sigs) as received:
            async for _ in received:
                flag[0] = True
                scope.cancel()
                return
    except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover
        # Not the main thread, or a platform without signal handlers.
        return


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
    on_record: Callable[[RequestRecord], None] | None = None,
    signals: tuple[signal.Signals, ...] | None = None,
    stop_after: int | None = None,
    worker: int = 0,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[list[RequestRecord], PhaseStats]:
    """Send *requests* at ``start + delay`` (``start`` on *clock*) and wait for them.

    SIGINT/SIGTERM (or *signals*), or *stop_after* finished requests, cancel the run:
    in-flight requests are abandoned, everything finished is returned. Never raises for
    a failed request.
    """
    records: list[RequestRecord] = []
    limiter = anyio.CapacityLimiter(max_concurrency) if max_concurrency else None
    monitor = LoopLagMonitor()
    interrupted = [False]
    sent = 0
    cpu0 = time.process_time()
    wall0 = clock()

    async with anyio.create_task_group() as outer:

        async def one(item: ScheduledRequest) -> None:
            dispatched = clock()
            if limiter is not None:
                async with limiter:
                    acquired = clock()
                    out = await send_counted(client, backend, item.request)
            else:
                acquired = dispatched
                out = await send_counted(client, backend, item.request)
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
            records.append(rec)
            if on_record is not None:
                on_record(rec)
            if stop_after is not None and len(records) >= stop_after:
                interrupted[0] = True
                outer.cancel_scope.cancel()

        outer.start_soon(
            _watch_signals,
            outer.cancel_scope,
            _signals() if signals is None else signals,
            interrupted,
        )
        outer.start_soon(monitor.run)
        async with anyio.create_task_group() as tg:
            for item in requests:
                if item.delay > 0:
                    wait = start + item.delay - clock()
                    if wait > 0:
                        await anyio.sleep(wait)
                elif start > clock():
                    await anyio.sleep(start - clock())
                sent += 1
                tg.start_soon(one, item)
        outer.cancel_scope.cancel()

    end = clock()
    stats = PhaseStats(
        loop_lags=monitor.samples,
        cpu_s=time.process_time() - cpu0,
        wall_s=end - wall0,
        end=end,
        sent=sent,
        finished=len(records),
        interrupted=interrupted[0],
    )
    return records, stats
