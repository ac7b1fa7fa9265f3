"""Client self-check: is the client itself the bottleneck, and if so why?

Three figures, measured during the run: how late each request left compared with its
scheduled time (send lag), how late a timer wakes up while requests are in flight
(event-loop lag, sampled every 25 ms; see ``LoopLagMonitor``), and the
CPU time of each client process over the wall time. Lag over its limit means the
reported latencies include client delay; the CPU figure then says whose fault it is.

Calibrated against the embedded mock server, whose true TTFT and ITL are known: on a
loaded 2-core machine, runs with loop lag P99 under ~6 ms reported ITL P99 within 30%
of the mock's 10 ms even with the process at 0.9 of a core, while runs with loop lag
P99 of ~30 ms reported ITL P99 tripled. So lag is the symptom, CPU only the cause.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

import anyio
import attrs

__all__ = [
    "CPU_FRACTION_LIMIT",
    "CPU_FRACTION_LOW",
    "LOOP_LAG_P99_LIMIT_MS",
    "SEND_LAG_P99_LIMIT_MS",
    "LoopLagMonitor",
    "SelfCheck",
    "Verdict",
    "after_burst",
    "evaluate_self_check",
    "since",
]

#: A request's timer fires through the same loop as the lag monitor's, so a send can't
#: be judged more strictly than a wake-up: the same 10 ms.
SEND_LAG_P99_LIMIT_MS = 10.0
#: A late wake-up delays reading a token by as much: 10 ms is an ITL's order of size.
LOOP_LAG_P99_LIMIT_MS = 10.0
#: Averaged over the run (idle tail included), a process at 0.7 of a core was busy most
#: of the time: its own work explains a late loop. Below, the CPU went elsewhere.
CPU_FRACTION_LIMIT = 0.7
#: Under half a core, the client was idle most of the run: a late loop means other
#: processes had the cores. Between the two, both are likely (a saturated burst and an
#: idle tail average out there).
CPU_FRACTION_LOW = 0.5

#: ``kept_up``: latencies are the server's; ``no_success``: nothing to judge;
#: ``client_busy``: lag, with the client's own CPU high; ``machine_loaded``: lag with
#: the client's CPU low (other processes had the cores); ``busy_and_loaded``: lag with
#: the CPU in between.
Verdict = Literal["kept_up", "no_success", "client_busy", "machine_loaded", "busy_and_loaded"]


@attrs.define
class LoopLagMonitor:
    """Records how late a timer of *interval* seconds wakes up, only while requests are
    in flight (between ``enter`` and ``leave``).

    A timer due at a random moment is late by as much as the loop is busy then, so these
    samples are the delay a token arriving at that moment sees: a coarser interval
    samples the same distribution, only less densely. A 10 ms sleep loop cost ~45 us of
    CPU a wake-up (~0.35 s on a minute-long run, most of a vLLM run phase's CPU); at
    25 ms, on a bare ``call_later`` callback (no task, future or cancel scope) where
    the loop is asyncio's, and with nothing to wake while no request is in flight (a
    loop with no stream has no latency to distort), it costs a tenth of that.
    """

    interval: float = 0.025
    #: ``time.perf_counter`` at the run's start: ``starts`` are seconds after it.
    origin: float = attrs.field(factory=time.perf_counter)
    #: How late each wake-up was (seconds), and when its timer was set.
    samples: list[float] = attrs.Factory(list)
    starts: list[float] = attrs.Factory(list)
    _active: int = attrs.field(default=0, init=False)
    _armed: bool = attrs.field(default=False, init=False)
    _running: bool = attrs.field(default=False, init=False)
    _loop: Any = attrs.field(default=None, init=False)
    _handle: Any = attrs.field(default=None, init=False)
    _idle: anyio.Event | None = attrs.field(default=None, init=False)

    def enter(self) -> None:
        """A request is in flight: sample (again) if none was."""
        self._active += 1
        if self._active == 1:
            if self._loop is not None and not self._armed:
                self._arm()
            elif self._idle is not None:
                self._idle.set()

    def leave(self) -> None:
        self._active -= 1

    def _arm(self) -> None:
        self._armed = True
        due = time.perf_counter() + self.interval
        self._handle = self._loop.call_later(self.interval, self._fire, due)

    def _fire(self, due: float) -> None:
        now = time.perf_counter()
        self.starts.append(due - self.interval - self.origin)
        self.samples.append(max(now - due, 0.0))
        self._armed = False
        if self._active > 0 and self._running:
            self._arm()

    async def run(self) -> None:
        """Sample until cancelled."""
        self._running = True
        try:
            loop = _asyncio_loop()
            if loop is None:
                await self._sleep_loop()
            self._loop = loop
            if self._active > 0:
                self._arm()
            await anyio.sleep_forever()
        finally:
            self._running = False
            if self._handle is not None:
                self._handle.cancel()
            self._loop = None

    async def _sleep_loop(self) -> None:
        clock = time.perf_counter
        interval = self.interval
        while True:
            if self._active <= 0:
                self._idle = anyio.Event()
                await self._idle.wait()
                self._idle = None
            t = clock()
            await anyio.sleep(interval)
            self.starts.append(t - self.origin)
            self.samples.append(max(clock() - t - interval, 0.0))


def _asyncio_loop() -> Any:
    """The running asyncio (or uvloop) loop; ``None`` under trio."""
    import sys

    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return None
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def since(samples: Sequence[float], starts: Sequence[float], issue_s: float) -> list[float]:
    """The lags of *samples* whose timers were set *issue_s* or more after the start."""
    return [lag for lag, at in zip(samples, starts, strict=True) if at >= issue_s]


def after_burst(samples: Sequence[float], issue_s: float, interval: float = 0.01) -> list[float]:
    """The wake-up lags of *samples* (one process's, in order) that began once the
    burst had been issued (*issue_s* after the monitor started).

    A sample starts after the previous ones' sleeps and lags; while a burst is being
    issued the loop is busy by design, so a wake-up delayed by it is the workload, not
    the client falling behind.
    """
    kept: list[float] = []
    elapsed = 0.0
    for lag in samples:
        if elapsed >= issue_s:
            kept.append(lag)
        elapsed += interval + lag
    return kept


def _wrap(text: str) -> list[str]:
    import textwrap

    return textwrap.wrap(text, 88, subsequent_indent="  ")


def _summary(values: Sequence[float]) -> tuple[float, float, float]:
    """(p50, p99, max) in milliseconds; zeros when empty."""
    import numpy as np

    if not values:
        return 0.0, 0.0, 0.0
    arr = np.asarray(values) * 1000.0
    return (
        float(np.percentile(arr, 50)),
        float(np.percentile(arr, 99)),
        float(np.max(arr)),
    )


@attrs.frozen(kw_only=True)
class SelfCheck:
    """The client's own figures for one run (milliseconds unless named otherwise).

    With *burst* (``--request-rate inf``: every request due at t=0) the send lag is the
    time the client took to issue the burst, and the loop lag figures cover only the
    wake-ups after it. ``warnings`` are the symptoms (lag over its limit), ``advice``
    the cause and what to do, ``notes`` what is worth knowing but no fault.
    """

    send_lag_p50_ms: float
    send_lag_p99_ms: float
    send_lag_max_ms: float
    loop_lag_p50_ms: float
    loop_lag_p99_ms: float
    loop_lag_max_ms: float
    queue_time_mean_ms: float
    queue_time_p99_ms: float
    cpu_s: float
    wall_s: float
    cpu_fraction: float
    processes: int
    includes_server: bool
    warnings: tuple[str, ...]
    burst: bool = False
    verdict: Verdict = "kept_up"
    advice: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def saturated(self) -> bool:
        """The client delayed the requests (its own work or a loaded machine)."""
        return self.verdict in ("client_busy", "machine_loaded", "busy_and_loaded")

    def to_json(self) -> dict[str, Any]:
        """The ``client_*`` keys of the result JSON."""
        return {
            "client_send_lag_p50_ms": self.send_lag_p50_ms,
            "client_send_lag_p99_ms": self.send_lag_p99_ms,
            "client_send_lag_max_ms": self.send_lag_max_ms,
            "client_loop_lag_p50_ms": self.loop_lag_p50_ms,
            "client_loop_lag_p99_ms": self.loop_lag_p99_ms,
            "client_loop_lag_max_ms": self.loop_lag_max_ms,
            "client_queue_time_mean_ms": self.queue_time_mean_ms,
            "client_queue_time_p99_ms": self.queue_time_p99_ms,
            "client_cpu_s": self.cpu_s,
            "client_wall_s": self.wall_s,
            "client_cpu_fraction": self.cpu_fraction,
            "client_processes": self.processes,
            "client_cpu_includes_server": self.includes_server,
            "client_burst": self.burst,
            "client_verdict": self.verdict,
            "client_saturated": self.saturated,
            "client_warnings": list(self.warnings),
            "client_advice": list(self.advice),
        }

    def report_lines(self) -> list[str]:
        lines = ["{s:{c}^{n}}".format(s="Client self-check", n=50, c="-")]
        send_label = (
            "Burst issue time P50/P99/max (ms):" if self.burst else "Send lag P50/P99/max (ms):"
        )
        loop_label = (
            "Loop lag after burst P50/P99/max (ms):"
            if self.burst
            else "Event loop lag P50/P99/max (ms):"
        )
        lines.append(
            f"{send_label:<40} "
            f"{self.send_lag_p50_ms:.2f} / {self.send_lag_p99_ms:.2f} / "
            f"{self.send_lag_max_ms:.2f}"
        )
        lines.append(
            f"{loop_label:<40} "
            f"{self.loop_lag_p50_ms:.2f} / {self.loop_lag_p99_ms:.2f} / "
            f"{self.loop_lag_max_ms:.2f}"
        )
        lines.append(
            f"{'Client queue time mean/P99 (ms):':<40} "
            f"{self.queue_time_mean_ms:.2f} / {self.queue_time_p99_ms:.2f}"
        )
        cpu_label = "Client CPU (cores, busiest process):"
        note = " (incl. embedded server)" if self.includes_server else ""
        lines.append(f"{cpu_label:<40} {self.cpu_fraction:.2f}{note}")
        if self.verdict == "no_success":
            lines += _wrap("No verdict on the client: " + " ".join(self.advice))
        elif self.warnings:
            lines.append("WARNING: the client could not keep up; latencies above")
            lines.append("include client delay:")
            lines.extend(f"  - {w}" for w in self.warnings)
            for text in self.advice:
                lines += _wrap(text)
        else:
            lines += _wrap(f"Client kept up: latencies are the server's ({self._figures()}).")
        for text in self.notes:
            lines += _wrap(f"Note: {text}")
        return lines

    def _figures(self) -> str:
        loop = f"loop lag P99 {self.loop_lag_p99_ms:.1f} ms (limit {LOOP_LAG_P99_LIMIT_MS:g} ms)"
        cpu = f"CPU {self.cpu_fraction:.2f} of a core"
        if self.burst:
            return f"{loop}, {cpu}; send lag not judged: at rate inf it is the burst's issue time"
        send = f"send lag P99 {self.send_lag_p99_ms:.1f} ms (limit {SEND_LAG_P99_LIMIT_MS:g} ms)"
        return f"{send}, {loop}, {cpu}"


def evaluate_self_check(
    *,
    send_lags: Sequence[float],
    loop_lags: Sequence[float],
    queue_times: Sequence[float],
    cpu_s: Sequence[float],
    wall_s: float,
    includes_server: bool = False,
    burst: bool = False,
    completed: int | None = None,
    workers: int = 1,
) -> SelfCheck:
    """Summarise the raw samples (seconds) and decide whether the client kept up.

    *cpu_s* has one entry per client process; the busiest one is judged. With *burst*
    (every request due at t=0) the send lag is not judged: it is how long the client
    took to issue the burst, not lateness against a schedule; pass the loop lags
    ``after_burst``. *completed* successful requests (``None``: not known); with none,
    the run says nothing about the client's capacity. *workers* is the ``--workers``
    count, for the advice.

    The send lag never includes the wait for a ``--max-concurrency`` slot: the
    executor stamps a request as sent before it waits for one (that wait is the queue
    time).
    """
    import numpy as np

    send = _summary(send_lags)
    loop = _summary(loop_lags)
    queue_mean = float(np.mean(queue_times)) * 1000.0 if len(queue_times) else 0.0
    queue_p99 = float(np.percentile(queue_times, 99)) * 1000.0 if len(queue_times) else 0.0
    busiest = max(cpu_s) if cpu_s else 0.0
    fraction = busiest / wall_s if wall_s > 0 else 0.0
    verdict: Verdict = "kept_up"
    warnings: list[str] = []
    advice: list[str] = []
    notes: list[str] = []
    cpu_text = f"{fraction:.2f} of a CPU core (limit {CPU_FRACTION_LIMIT:g})"
    if completed == 0:
        # Requests that fail at once (refused connection, 404) cost the client nothing
        # worth judging, and the CPU over a run of milliseconds is noise.
        verdict = "no_success"
        advice.append(
            f"no request succeeded ({len(send_lags)} finished, all failed), so these "
            "figures say nothing about its capacity. See the errors above: is the "
            "server up, and are --base-url, --endpoint and --model right?"
        )
    else:
        if not burst and send[1] > SEND_LAG_P99_LIMIT_MS:
            warnings.append(
                f"requests left {send[1]:.1f} ms after their scheduled time at P99 "
                f"(limit {SEND_LAG_P99_LIMIT_MS:g} ms)"
            )
        if loop[1] > LOOP_LAG_P99_LIMIT_MS:
            after = " after the burst" if burst else ""
            warnings.append(
                f"the event loop was {loop[1]:.1f} ms late at P99{after} "
                f"(limit {LOOP_LAG_P99_LIMIT_MS:g} ms)"
            )
        who = "client process (with the embedded server)" if includes_server else "client"
        if warnings and fraction > CPU_FRACTION_LIMIT:
            verdict = "client_busy"
            more = f"more than --workers {workers}" if workers > 1 else "--workers N"
            advice.append(
                f"Cause: the {who} used {cpu_text}: it was busy with its own work. "
                f"Try {more} (one free core each)"
                + (", or a server outside this process (--base-url)." if includes_server else ".")
            )
        elif warnings and fraction >= CPU_FRACTION_LOW:
            verdict = "busy_and_loaded"
            advice.append(
                f"Cause: the {who} used {cpu_text}: busy, and other processes likely "
                "had the cores the rest of the time. Rerun on a quieter machine, or "
                "try --workers N if there are free cores."
            )
        elif warnings:
            verdict = "machine_loaded"
            advice.append(
                f"Cause: the {who} used only {cpu_text}, yet its loop ran late: other "
                "processes had the cores. Rerun on a quieter machine; more --workers "
                "would not help."
            )
        elif fraction > CPU_FRACTION_LIMIT:
            notes.append(
                f"the {who} used {cpu_text} without falling behind; a heavier load "
                "may need --workers N."
            )
    return SelfCheck(
        send_lag_p50_ms=send[0],
        send_lag_p99_ms=send[1],
        send_lag_max_ms=send[2],
        loop_lag_p50_ms=loop[0],
        loop_lag_p99_ms=loop[1],
        loop_lag_max_ms=loop[2],
        queue_time_mean_ms=queue_mean,
        queue_time_p99_ms=queue_p99,
        cpu_s=float(sum(cpu_s)),
        wall_s=wall_s,
        cpu_fraction=fraction,
        processes=len(cpu_s),
        includes_server=includes_server,
        warnings=tuple(warnings),
        burst=burst,
        verdict=verdict,
        advice=tuple(advice),
        notes=tuple(notes),
    )
