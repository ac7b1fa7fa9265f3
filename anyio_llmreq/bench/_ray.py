"""The Ray executor (``--executor ray``): the workers of ``--workers N`` as Ray actors,
on the nodes of a Ray cluster, with one schedule, one clock and nothing lost.

The driver (this process) splits the plan with ``worker_specs`` as the process executor
does, so a share means the same thing wherever it runs. Each actor runs its share with
``drive_spec`` on the event loop the user chose, in a thread of its own (``anyio.run``),
while its other threads answer the driver:

- **one clock**: before the start the driver estimates each actor's clock offset (its
  wall clock minus the driver's) from round trips through Ray calls, keeping the
  sample with the shortest round trip (NTP's rule: the offset is then known to within
  half that round trip). Every actor starts at one wall-clock instant, shifted by its
  offset, converted to its own ``perf_counter``; durations stay differences of one
  actor's monotonic clock, and each record's ``start_time`` is moved onto the driver's
  timeline. The offsets (and again after the run, for drift) go into the result.
- **nothing lost**: the driver polls every actor every 50 ms for the records it
  finished since, so an actor that dies leaves what it finished up to its last poll;
  its other requests count as not finished, with the reason in the result. A signal (or
  ``stop_after``) stops every actor, which then returns what it finished.

``ray`` is imported only here, only when this executor runs (the ``ray`` extra).
"""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import attrs

from ._config import UsageError
from ._drive import run_client, stop_signals, watch_signals
from ._execute import Execution, PhaseStats, RecordCallback, RequestRecord, measured_phase
from ._plan import WorkloadPlan
from ._workers import WorkerSpec, drive_spec, worker_specs

__all__ = [
    "CLOCK_WARNING_MS",
    "ClockOffset",
    "RayExecutor",
    "clock_lines",
    "estimate_offset",
    "require_ray",
]

#: How often the driver collects finished records (and notices a dead actor).
_POLL_S = 0.05
#: Round trips per actor for its clock offset, before the run and after it.
_CLOCK_SAMPLES = 8
_CLOCK_SAMPLES_AFTER = 4
#: The common start is this far after the last offset is known, so every actor has its
#: start call (a Ray task) before the instant comes.
_START_MARGIN = 0.25
#: Actors being created and placed (a cluster may be pulling images or scaling up).
_READY_TIMEOUT = 120.0
#: An actor that does not answer a poll for this long is counted as lost.
_ANSWER_TIMEOUT = 60.0
#: After a stop, an actor still running past this is killed.
_STOP_GRACE = 10.0
#: Clock offsets (or their uncertainty) over this are worth a warning.
CLOCK_WARNING_MS = 5.0


def require_ray() -> Any:
    """The ``ray`` module.

    Raises:
        UsageError: Ray is not installed.
    """
    try:
        import ray
    except ImportError:
        raise UsageError(
            "Ray is not installed",
            where="--executor ray",
            why="the Ray executor runs the workers as Ray actors",
            hint="Install it with: pip install 'anyio-llmreq[ray]'",
        ) from None
    return ray


@attrs.frozen
class ClockOffset:
    """An actor's wall clock minus the driver's (``offset``, seconds), from the round
    trip of ``rtt`` seconds that had the shortest one: the true offset lies within
    ``offset ± rtt / 2``."""

    offset: float
    rtt: float

    @property
    def bound(self) -> float:
        return self.rtt / 2


def estimate_offset(samples: Iterable[tuple[float, float, float]]) -> ClockOffset:
    """NTP's estimate from ``(sent, rtt, remote)`` round trips: *sent* is the driver's
    wall clock when the call left, *rtt* its round trip (``perf_counter``), *remote* the
    actor's wall clock when it answered. The shortest round trip bounds the error best;
    its answer is taken as given halfway through it."""
    sent, rtt, remote = min(samples, key=lambda s: s[1])
    return ClockOffset(offset=remote - (sent + rtt / 2), rtt=rtt)


@attrs.frozen
class _ActorInfo:
    """Where an actor runs."""

    node_id: str
    node: str
    pid: int


class _Share:
    """An actor's share and what it finished but has not handed over yet; ``drive``
    runs on the actor's own event loop, the rest is called from Ray's threads."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self._lock = threading.Lock()
        self._batch: list[RequestRecord] = []
        self._finished = 0
        self._cpu0 = time.process_time()
        self._stopping = False
        self._cancel: Callable[[], None] | None = None

    def take(self) -> tuple[list[RequestRecord], float]:
        with self._lock:
            batch, self._batch = self._batch, []
        return batch, time.process_time() - self._cpu0

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            cancel = self._cancel
        if cancel is not None:
            try:
                cancel()
            except Exception:  # the loop ended meanwhile: nothing left to stop
                pass

    def _keep(self, rec: RequestRecord) -> None:
        with self._lock:
            self._batch.append(rec)
            self._finished += 1

    async def drive(self, start_wall: float, driver_start: float) -> tuple[PhaseStats, float]:
        spec = self.spec
        async with run_client(spec.timeouts, spec.verify) as client:
            start = time.perf_counter() + (start_wall - time.time())
            slack = start - time.perf_counter()
            shift = driver_start - start
            self._cpu0 = time.process_time()

            def on_record(rec: RequestRecord) -> None:
                rec.output.start_time += shift  # onto the driver's timeline
                self._keep(rec)

            stats: PhaseStats | None = None
            with anyio.CancelScope() as scope:
                token = anyio.lowlevel.current_token()
                with self._lock:
                    if self._stopping:
                        scope.cancel()
                    self._cancel = functools.partial(_cancel_from, scope, token)
                try:
                    with measured_phase():  # as a worker process's: no collection pauses
                        _, stats = await drive_spec(client, spec, start=start, on_record=on_record)
                finally:
                    with self._lock:
                        self._cancel = None
            if stats is None:  # stopped: drive_spec's own stats went with its scope
                stats = self._stopped_stats(start)
        return attrs.evolve(stats, end=stats.end + shift), slack

    def _stopped_stats(self, start: float) -> PhaseStats:
        end = time.perf_counter()
        with self._lock:
            finished = self._finished
        return PhaseStats.cut_short(
            finished, time.process_time() - self._cpu0, max(end - start, 0.0), end
        )


class _Sender:
    """One Ray actor, a threaded one: ``run`` drives its share on a loop in a thread of
    its own while ``poll``, ``clock`` and ``stop`` answer the driver from Ray's threads.
    (No ``async def`` here: Ray would make it an asyncio actor, whose methods wait for
    one another.)"""

    def __init__(self, spec: WorkerSpec) -> None:
        self._share = _Share(spec)
        _preload(spec.loop)

    def ready(self) -> _ActorInfo:
        ray = require_ray()
        node_id = ray.get_runtime_context().get_node_id()
        return _ActorInfo(node_id=node_id, node=ray.util.get_node_ip_address(), pid=os.getpid())

    def clock(self) -> float:
        return time.time()

    def poll(self) -> tuple[list[RequestRecord], float]:
        """The records finished since the last poll, and the CPU used since the start."""
        return self._share.take()

    def stop(self) -> None:
        """Cancel the run (in-flight requests are abandoned); ``run`` then returns."""
        self._share.stop()

    def run(self, start_wall: float, driver_start: float) -> tuple[PhaseStats, float]:
        """Run the share from *start_wall* (this actor's wall clock); ``start_time`` of
        each record and the stats' ``end`` are moved onto the driver's ``perf_counter``,
        where the start is *driver_start*. Returns the stats and how long before the
        start this call arrived (negative: late)."""
        from .._loops import loop_backend

        backend, options = loop_backend(self._share.spec.loop)
        outcome: list[tuple[PhaseStats, float]] = []
        failure: list[BaseException] = []

        def main() -> None:
            try:
                outcome.append(
                    anyio.run(
                        self._share.drive,
                        start_wall,
                        driver_start,
                        backend=backend,
                        backend_options=options,
                    )
                )
            except BaseException as exc:  # handed to the caller below
                failure.append(exc)

        # A thread of its own: Ray's method threads look like a running asyncio loop to
        # anyio, and the run wants a loop of the user's choice.
        name = f"anyio-llmreq-bench-{self._share.spec.worker}"
        thread = threading.Thread(target=main, name=name)
        thread.start()
        thread.join()
        if failure:
            raise failure[0]
        return outcome[0]


def _cancel_from(scope: anyio.CancelScope, token: anyio.lowlevel.EventLoopToken) -> None:
    anyio.from_thread.run_sync(scope.cancel, token=token)


def _preload(loop: str) -> None:
    """Import what the run needs now, so the first requests don't pay for it."""
    import importlib

    importlib.import_module("anyio_llmreq._client")
    if loop in ("trio", "uvloop"):
        importlib.import_module(loop)


@attrs.define
class _Actor:
    """The driver's view of one actor."""

    spec: WorkerSpec
    handle: Any
    info: _ActorInfo | None = None
    offset: ClockOffset | None = None
    end_offset: ClockOffset | None = None
    run_ref: Any = None
    finished: int = 0
    cpu_s: float = 0.0
    #: The driver's ``perf_counter`` at the actor's last answer.
    last_seen: float = 0.0
    stats: PhaseStats | None = None
    slack: float | None = None
    #: Why the actor was lost (died, stopped answering), if it was.
    lost: str | None = None

    @property
    def worker(self) -> int:
        return self.spec.worker

    @property
    def done(self) -> bool:
        return self.stats is not None or self.lost is not None

    @property
    def node(self) -> str:
        return self.info.node if self.info is not None else "?"


@attrs.frozen
class _Answer:
    """One actor's part of a poll round."""

    actor: _Actor
    records: list[RequestRecord]
    cpu_s: float | None
    outcome: tuple[PhaseStats, float] | None = None
    lost: str | None = None


@attrs.frozen(kw_only=True)
class RayExecutor:
    """The ``Executor`` that runs ``plan.workers`` Ray actors, one event loop each.

    *address* is ``ray.init``'s (None: the Ray this process is connected to, else the
    one ``RAY_ADDRESS`` or ``ray start`` names on this machine, else a new local one;
    ``"auto"``; ``"ray://HOST:PORT"``). *workers_per_node* packs that many actors on
    each node, on distinct nodes (a ``STRICT_SPREAD`` placement group); without it the
    actors are spread. *stop_after* finished requests stop the run as Ctrl-C would; with
    *handle_signals*, SIGINT and SIGTERM stop every actor (a second one kills them).
    """

    address: str | None = None
    workers_per_node: int | None = None
    stop_after: int | None = None
    handle_signals: bool = True

    async def run(self, plan: WorkloadPlan, on_record: RecordCallback) -> Execution:
        ray = require_ray()
        _connect(ray, self.address)
        begin = time.perf_counter()
        specs = worker_specs(plan)
        fleet = _Fleet(ray, [_Actor(spec, None) for spec in specs], on_record, self)
        try:
            await anyio.to_thread.run_sync(fleet.create)
            _check_reachable(ray, plan, fleet.actors)
            await anyio.to_thread.run_sync(fleet.measure_offsets, _CLOCK_SAMPLES, False)
            with measured_phase() as phase:
                start_wall, driver_start = fleet.start()
                startup = driver_start - begin
                await fleet.collect()
                driver_cpu = phase.cpu_s()
            await anyio.to_thread.run_sync(fleet.measure_offsets, _CLOCK_SAMPLES_AFTER, True)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(fleet.release)
        cpu = [s.cpu_s for s in fleet.stats()]
        if plan.target.embedded:
            cpu.append(driver_cpu)  # this process served the embedded mock server
        return Execution(
            records=fleet.records,
            stats=fleet.stats(),
            planned=len(plan.requests),
            duration=max(fleet.ends(), default=driver_start) - driver_start,
            wall_start=datetime.fromtimestamp(start_wall),
            cpu_s=cpu,
            stop_signal=fleet.caught[0] if fleet.caught else None,
            result_keys=result_keys(fleet.actors, startup, fleet.records),
            notes=tuple(
                clock_lines(fleet.actors, startup)
                + worst_lines(fleet.actors, fleet.records)
                + lost_lines(fleet.actors)
            ),
        )


class _Fleet:
    """The actors of one run, and what the driver gathered from them."""

    def __init__(
        self,
        ray: Any,
        actors: list[_Actor],
        on_record: RecordCallback,
        executor: RayExecutor,
    ) -> None:
        self.ray = ray
        self.actors = actors
        self.on_record = on_record
        self.executor = executor
        self.records: list[RequestRecord] = []
        self.caught: list[int] = []
        self.placement: Any = None
        self.stop_deadline: float | None = None

    # Blocking parts, each run in a thread (the embedded server shares this loop).

    def create(self) -> None:
        """Create and place every actor and wait until each answers.

        Raises:
            UsageError: an actor could not start, or the cluster can't place them.
        """
        ray = self.ray
        remote = ray.remote(_Sender)
        run_id = os.urandom(4).hex()
        per_node = self.executor.workers_per_node
        if per_node is not None:
            self.placement = _place(ray, len(self.actors), per_node)
        for actor in self.actors:
            options: dict[str, Any] = {
                "num_cpus": 1,
                "max_concurrency": 4,  # run, and poll/clock/stop beside it
                "name": f"anyio-llmreq-bench-{run_id}-{actor.worker}",
            }
            if self.placement is not None:
                from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

                options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                    self.placement, placement_group_bundle_index=actor.worker // (per_node or 1)
                )
            else:
                options["scheduling_strategy"] = "SPREAD"
            actor.handle = remote.options(**options).remote(actor.spec)
        refs = [a.handle.ready.remote() for a in self.actors]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=_READY_TIMEOUT)
        if len(ready) < len(refs):
            cpus = ray.cluster_resources().get("CPU", 0)
            raise UsageError(
                "the Ray actors did not start in time",
                where="--executor ray",
                why=f"{len(ready)} of {len(refs)} started in {_READY_TIMEOUT:g} s; each "
                f"needs 1 CPU and the cluster has {cpus:g}",
                hint="Use fewer --workers, or a larger cluster.",
            )
        for actor, ref in zip(self.actors, refs, strict=True):
            try:
                actor.info = ray.get(ref)
            except ray.exceptions.RayError as exc:
                raise UsageError(
                    f"Ray actor of worker {actor.worker} could not start",
                    where="--executor ray",
                    why=_one_line(exc),
                    hint="Install the same anyio-llmreq (with its bench and ray extras) on "
                    "every node of the cluster, e.g. in its image.",
                ) from None

    def measure_offsets(self, samples: int, after: bool) -> None:
        """Each live actor's clock offset, before the run (used) or after it (drift)."""
        for actor in self.actors:
            if actor.lost is not None:
                continue
            try:
                offset = _measure_offset(self.ray, actor.handle, samples)
            except self.ray.exceptions.RayError as exc:
                if not after:
                    raise UsageError(
                        f"Ray actor of worker {actor.worker} stopped answering",
                        where="--executor ray",
                        why=_one_line(exc),
                    ) from None
                continue
            if after:
                actor.end_offset = offset
            else:
                actor.offset = offset

    def poll(self, pending: Sequence[_Actor]) -> list[_Answer]:
        """One round: which runs ended, then every pending actor's new records (after
        the end is seen, so an ended actor's last records come with it)."""
        ray = self.ray
        refs = [a.run_ref for a in pending]
        ended, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        ended_refs = set(ended)
        polls = [a.handle.poll.remote() for a in pending]
        answers = []
        for actor, ref in zip(pending, polls, strict=True):
            try:
                records, cpu = ray.get(ref, timeout=_ANSWER_TIMEOUT)
            except ray.exceptions.GetTimeoutError:
                answers.append(_Answer(actor, [], None, lost=_no_answer()))
                continue
            except ray.exceptions.RayError as exc:
                answers.append(_Answer(actor, [], None, lost=_lost_reason(exc)))
                continue
            outcome = None
            lost = None
            if actor.run_ref in ended_refs:
                try:
                    outcome = ray.get(actor.run_ref)
                except ray.exceptions.RayError as exc:
                    lost = _lost_reason(exc)
            answers.append(_Answer(actor, records, cpu, outcome, lost))
        return answers

    def release(self) -> None:
        """Kill every actor (their work is done or abandoned) and free their placement."""
        for actor in self.actors:
            if actor.handle is not None:
                try:
                    self.ray.kill(actor.handle, no_restart=True)
                except Exception:  # already gone
                    pass
        if self.placement is not None:
            from ray.util.placement_group import remove_placement_group

            try:
                remove_placement_group(self.placement)
            except Exception:  # the cluster went away
                pass

    # The run itself, on the driver's loop.

    def start(self) -> tuple[float, float]:
        """Start every actor at one instant: ``(wall clock, perf_counter)`` here."""
        slowest = max((a.offset.rtt for a in self.actors if a.offset is not None), default=0.0)
        start_wall = time.time() + _START_MARGIN + 2 * slowest
        driver_start = time.perf_counter() + (start_wall - time.time())
        for actor in self.actors:
            shift = actor.offset.offset if actor.offset is not None else 0.0
            actor.run_ref = actor.handle.run.remote(start_wall + shift, driver_start)
            actor.last_seen = driver_start
        return start_wall, driver_start

    async def collect(self) -> None:
        """Gather records until every actor ended, stopped or was lost."""
        async with anyio.create_task_group() as tg:
            if self.executor.handle_signals:
                await tg.start(watch_signals, stop_signals(), self._on_signal)
            while True:
                pending = [a for a in self.actors if not a.done]
                if not pending:
                    break
                await anyio.sleep(_POLL_S)
                answers = await anyio.to_thread.run_sync(self.poll, pending)
                for answer in answers:
                    self._take(answer)
                self._check_stop()
            tg.cancel_scope.cancel()

    def _take(self, answer: _Answer) -> None:
        actor = answer.actor
        now = time.perf_counter()
        for rec in answer.records:
            self.records.append(rec)
            actor.finished += 1
            self.on_record(rec)
        if answer.cpu_s is not None:
            actor.cpu_s = answer.cpu_s
            actor.last_seen = now
        if answer.outcome is not None:
            actor.stats, actor.slack = answer.outcome
        elif answer.lost is not None:
            actor.lost = answer.lost

    def _check_stop(self) -> None:
        limit = self.executor.stop_after
        if limit is not None and len(self.records) >= limit and self.stop_deadline is None:
            self.stop()
        if self.stop_deadline is not None and time.perf_counter() > self.stop_deadline:
            self.kill_pending(f"did not stop within {_STOP_GRACE:g} s")

    def stop(self) -> None:
        """Stop every actor; they send back what they finished."""
        if self.stop_deadline is None:
            self.stop_deadline = time.perf_counter() + _STOP_GRACE
        for actor in self.actors:
            if not actor.done:
                actor.handle.stop.remote()

    def kill_pending(self, reason: str) -> None:
        for actor in self.actors:
            if not actor.done:
                try:
                    self.ray.kill(actor.handle, no_restart=True)
                except Exception:  # already gone
                    pass
                actor.lost = reason

    def _on_signal(self, signum: int) -> bool:
        self.caught.append(signum)
        if len(self.caught) == 1:
            self.stop()
        else:  # asked twice: don't wait for them
            self.kill_pending(f"killed after a second {signal.Signals(signum).name}")
        return False

    # What the run measured.

    def stats(self) -> list[PhaseStats]:
        """Each actor's stats; a lost actor's from what it said before it was lost."""
        found = []
        for actor in self.actors:
            if actor.stats is not None:
                found.append(actor.stats)
            elif actor.lost is not None and actor.run_ref is not None:
                found.append(
                    PhaseStats.cut_short(actor.finished, actor.cpu_s, 0.0, actor.last_seen)
                )
        return found

    def ends(self) -> list[float]:
        return [s.end for s in self.stats()]


def _connect(ray: Any, address: str | None) -> None:
    """Connect to Ray (or start a local one) unless this process already is.

    Raises:
        UsageError: no cluster at *address*.
    """
    if ray.is_initialized():
        return
    import logging

    if address is None:
        # A local instance started for this run reports nothing home.
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    main = threading.current_thread() is threading.main_thread()
    # ray.init makes SIGTERM exit the process; the bench handles SIGTERM itself.
    previous = signal.getsignal(signal.SIGTERM) if main else None
    try:
        ray.init(address=address, logging_level=logging.WARNING)
    except (ConnectionError, ValueError) as exc:
        raise UsageError(
            "no Ray cluster to connect to",
            where=f"--ray-address {address}" if address else "--executor ray",
            why=_one_line(exc),
            hint="Start one with: ray start --head; or leave out --ray-address to start a "
            "local one.",
        ) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _place(ray: Any, workers: int, per_node: int) -> Any:
    """A placement group of one bundle per node, *per_node* CPUs each, on distinct nodes.

    Raises:
        UsageError: the cluster has too few such nodes.
    """
    from ray.util.placement_group import placement_group, remove_placement_group

    sizes = [min(per_node, workers - i) for i in range(0, workers, per_node)]
    group = placement_group([{"CPU": size} for size in sizes], strategy="STRICT_SPREAD")
    ready, _ = ray.wait([group.ready()], timeout=_READY_TIMEOUT)
    if not ready:
        remove_placement_group(group)
        nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
        raise UsageError(
            "the Ray cluster can't place the actors",
            where="--workers-per-node",
            why=f"{len(sizes)} nodes with {sizes[0]} free CPUs each are needed; the cluster "
            f"has {nodes} node(s)",
            hint="Raise --workers-per-node, lower --workers, or add nodes.",
        )
    return group


def _measure_offset(ray: Any, handle: Any, samples: int) -> ClockOffset:
    found = []
    for _ in range(samples):
        sent = time.time()
        t0 = time.perf_counter()
        remote = ray.get(handle.clock.remote(), timeout=_ANSWER_TIMEOUT)
        found.append((sent, time.perf_counter() - t0, float(remote)))
    return estimate_offset(found)


def _check_reachable(ray: Any, plan: WorkloadPlan, actors: Sequence[_Actor]) -> None:
    """A server on this machine's loopback address can't be reached from another node.

    Raises:
        UsageError: an actor runs on another node than this process.
    """
    import ipaddress
    from urllib.parse import urlsplit

    host = urlsplit(plan.target.base_url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return
    here = _driver_node(ray)
    for actor in actors:
        if actor.info is not None and actor.info.node_id != here:
            what = "the embedded mock server" if plan.target.embedded else f"{host}"
            raise UsageError(
                f"{what} is not reachable from the Ray actors",
                where="--base-url",
                why=f"worker {actor.worker} runs on node {actor.node}, and {host} is this machine",
                hint="Pass --base-url with an address every Ray node reaches.",
            )


def _driver_node(ray: Any) -> str | None:
    """This process's Ray node, None for a Ray Client (``ray://``) driver."""
    import importlib

    client: Any = importlib.import_module("ray.util.client").ray
    if client.is_connected():
        return None
    node: str = ray.get_runtime_context().get_node_id()
    return node


def _one_line(exc: BaseException) -> str:
    """The first line of an error (a Ray task's: of its cause), short enough for the
    report."""
    import re

    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        exc = cause
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # Ray colours its messages
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    text = lines[0] if lines else ""
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= 240 else text[:237] + "..."


def _lost_reason(exc: BaseException) -> str:
    import ray

    if isinstance(exc, ray.exceptions.RayActorError):
        return f"the actor died ({_one_line(exc)})"
    return f"its run failed ({_one_line(exc)})"


def _no_answer() -> str:
    return f"the actor did not answer for {_ANSWER_TIMEOUT:g} s"


@attrs.frozen
class _Load:
    """How one actor fared: its CPU over its run, and its send and loop lag P99."""

    cpu_fraction: float | None
    send_lag_p99_ms: float | None
    loop_lag_p99_ms: float | None

    @property
    def worst_lag_ms(self) -> float:
        return max(self.send_lag_p99_ms or 0.0, self.loop_lag_p99_ms or 0.0)


def _p99_ms(seconds: Sequence[float]) -> float | None:
    """The self-check's P99 of *seconds*, in ms; None for no values."""
    from ._selfcheck import _summary

    return _summary(seconds)[1] if seconds else None


def _load(actor: _Actor, records: Sequence[RequestRecord]) -> _Load:
    stats = actor.stats
    cpu = None
    if stats is not None and stats.wall_s > 0:
        cpu = stats.cpu_s / stats.wall_s
    lags = [r.send_lag for r in records if r.worker == actor.worker]
    loop = _p99_ms(stats.loop_lags) if stats is not None else None
    return _Load(cpu, _p99_ms(lags), loop)


def result_keys(
    actors: Sequence[_Actor], startup: float, records: Sequence[RequestRecord] = ()
) -> dict[str, object]:
    """What the result JSON says about the actors: ``clock_offsets`` (each actor's
    offset to the driver, its uncertainty, and after the run) and ``ray_actors`` (where
    each ran, what it finished, its CPU and lags, why it was lost)."""
    offsets = []
    states = []
    for actor in actors:
        load = _load(actor, records)
        offset, end = actor.offset, actor.end_offset
        offsets.append(
            {
                "worker": actor.worker,
                "node": actor.node,
                "offset_ms": None if offset is None else offset.offset * 1000,
                "uncertainty_ms": None if offset is None else offset.bound * 1000,
                "rtt_ms": None if offset is None else offset.rtt * 1000,
                "end_offset_ms": None if end is None else end.offset * 1000,
                "end_uncertainty_ms": None if end is None else end.bound * 1000,
            }
        )
        stopped = actor.stats is not None and actor.stats.interrupted
        status = "lost" if actor.lost else "stopped" if stopped else "finished"
        states.append(
            {
                "worker": actor.worker,
                "node": actor.node,
                "pid": actor.info.pid if actor.info is not None else None,
                "status": status,
                "reason": actor.lost,
                "finished": actor.finished,
                "planned": len(actor.spec.requests) or None,
                "cpu_s": actor.stats.cpu_s if actor.stats is not None else actor.cpu_s,
                "cpu_fraction": load.cpu_fraction,
                "send_lag_p99_ms": load.send_lag_p99_ms,
                "loop_lag_p99_ms": load.loop_lag_p99_ms,
                "start_slack_ms": None if actor.slack is None else actor.slack * 1000,
            }
        )
    return {
        "executor": "ray",
        "ray_startup_s": startup,
        "clock_offsets": offsets,
        "ray_actors": states,
    }


def clock_lines(actors: Sequence[_Actor], startup: float) -> list[str]:
    """The report's line on the actors and their clocks, and a warning when an offset
    or its uncertainty (before or after the run) is over ``CLOCK_WARNING_MS``."""
    nodes = {a.node for a in actors}
    measured = [(a, o) for a in actors for o in (a.offset, a.end_offset) if o is not None]
    line = f"Ray: {len(actors)} actor(s) on {len(nodes)} node(s), started in {startup:.2f} s"
    if not measured:
        return [line]
    worst_actor, worst = max(measured, key=lambda ao: abs(ao[1].offset))
    bound = max(o.bound for _, o in measured)
    line += (
        f"; clock offsets to this machine at most {abs(worst.offset) * 1000:.2f} ms "
        f"(each known to ±{bound * 1000:.2f} ms or better), corrected on the merged timeline"
    )
    lines = [line]
    if abs(worst.offset) * 1000 > CLOCK_WARNING_MS or bound * 1000 > CLOCK_WARNING_MS:
        lines.append(
            f"WARNING: the clock of worker {worst_actor.worker} (node {worst_actor.node}) is "
            f"{worst.offset * 1000:+.1f} ms off this machine's, and offsets are known to "
            f"±{bound * 1000:.1f} ms only: start times, in-flight counts and per-second "
            "rates on the merged timeline may be off by that much (TTFT, ITL and latency "
            "are measured on one clock each and are not)."
        )
    late = [a for a in actors if a.slack is not None and a.slack < 0]
    if late:
        slowest = min(late, key=lambda a: a.slack or 0.0)
        lines.append(
            f"WARNING: worker {slowest.worker} started {-(slowest.slack or 0.0) * 1000:.0f} ms "
            "after the common start (its start call came late); its first requests show "
            "it as send lag."
        )
    return lines


def worst_lines(actors: Sequence[_Actor], records: Sequence[RequestRecord]) -> list[str]:
    """With several actors, the one with the worst lag, named with its figures (the
    self-check above judges them all together)."""
    loads = [(a, _load(a, records)) for a in actors if a.stats is not None]
    if len(loads) < 2:
        return []
    actor, load = max(loads, key=lambda al: al[1].worst_lag_ms)
    figures = [
        f"{name} P99 {value:.1f} ms"
        for name, value in (("send lag", load.send_lag_p99_ms), ("loop lag", load.loop_lag_p99_ms))
        if value is not None
    ]
    if load.cpu_fraction is not None:
        figures.append(f"{load.cpu_fraction:.2f} of a core")
    return [f"Ray: worst actor worker {actor.worker} (node {actor.node}): " + ", ".join(figures)]


def lost_lines(actors: Sequence[_Actor]) -> list[str]:
    """A warning for each lost actor: what it finished and why it was lost."""
    lines = []
    for actor in actors:
        if actor.lost is None:
            continue
        planned = len(actor.spec.requests)
        rest = (
            f"its other {planned - actor.finished} requests count as not finished"
            if planned
            else "its unfinished requests count as not finished"
        )
        lines.append(
            f"WARNING: worker {actor.worker} (Ray actor on {actor.node}) was lost after "
            f"{actor.finished} finished requests: {actor.lost}; {rest}."
        )
    return lines
