"""Execution stage: the ``Executor`` interface from a workload plan to its records.

An executor sends a plan's requests at their offsets, hands each finished request to
``on_record`` as it finishes, and returns an ``Execution``. ``LocalExecutor``
(``_drive``, in-process) and ``WorkerExecutor`` (``_workers``, one process per worker)
implement it; a new executor (e.g. Ray) is one new module with a class like theirs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import operator
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import attrs

from .._json import raw_dumps, record_dumps
from .._models import RequestFuncOutput

if TYPE_CHECKING:
    from ._plan import WorkloadPlan

__all__ = [
    "Execution",
    "Executor",
    "PhaseStats",
    "RecordCallback",
    "RequestRecord",
    "measured_phase",
]


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
    #: Multi-turn runs: the conversation and the turn (1 for the first) this request
    #: was; both ``None`` otherwise, and then left out of the JSONL line.
    session_id: str | None = None
    turn: int | None = None

    @property
    def send_lag(self) -> float:
        return max(self.dispatched - self.scheduled, 0.0)

    def to_json(self) -> dict[str, object]:
        """The ``--output-jsonl`` line for this request."""
        data = self._own_fields()
        data.update(_output_fields(self.output))
        return data

    def _own_fields(self) -> dict[str, object]:
        """The line's fields before the output's."""
        data: dict[str, object] = {
            "index": self.index,
            "request_id": self.request_id,
            "worker": self.worker,
            "scheduled_time": self.scheduled,
            "dispatch_time": self.dispatched,
            "timeout": self.timeout,
        }
        if self.turn is not None:
            data["session_id"] = self.session_id
            data["turn"] = self.turn
        return data

    def to_jsonl(self) -> bytes:
        """``record_dumps(self.to_json())``: the line, built without the dict where
        orjson can write the output dataclass itself (a quarter of the cost)."""
        line = self._orjson_line() if raw_dumps is not None else None
        return record_dumps(self.to_json()) if line is None else line

    def _orjson_line(self) -> bytes | None:
        assert raw_dumps is not None
        output = self.output
        # orjson writes every attribute of a dataclass: the fields alone, unless one
        # was added (a subclass, or an attribute set on the output, goes to to_json).
        if type(output) is not RequestFuncOutput or len(output.__dict__) != _OUTPUT_FIELDS:
            return None
        head = self._own_fields()
        try:
            first, rest = raw_dumps(head), raw_dumps(output)
        except TypeError:  # orjson.JSONEncodeError: big integers, odd keys, surrogates
            return None
        line = first[:-1] + b"," + rest[1:]
        # orjson writes NaN and the infinities as null. Every None is one null too, so
        # as many nulls as the Nones counted where they are usual proves there is no
        # NaN (a None elsewhere, or "null" inside a string, only adds to the count).
        nones = list(head.values()).count(None) + _NULLABLE(output).count(None)
        phases = output.http_phases
        if type(phases) is dict:
            nones += list(phases.values()).count(None)
        return line if line.count(b"null") == nones else None


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
_OUTPUT_FIELDS = len(dataclasses.fields(RequestFuncOutput))
# The output's fields that default to None (and are None in the usual record).
_NULLABLE = operator.attrgetter(
    *(f.name for f in dataclasses.fields(RequestFuncOutput) if f.default is None)
)


def _field_names(output: RequestFuncOutput) -> tuple[str, ...]:
    cls = type(output)
    names = _FIELD_NAMES.get(cls)
    if names is None:
        import dataclasses

        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(output))
    return names


def _output_fields(output: RequestFuncOutput) -> dict[str, object]:
    """``dataclasses.asdict(output)`` for its flat fields (lists and dicts copied one
    level, as their items are numbers and strings): ``asdict``'s recursive deep copy
    was ~80 us a request, most of the cost of a JSONL line."""
    data: dict[str, object] = {}
    for name in _field_names(output):
        value = getattr(output, name)
        if isinstance(value, list):
            value = list(value)
        elif isinstance(value, dict):
            value = dict(value)
        data[name] = value
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
    #: The signal that stopped this process's run, if one did.
    stop_signal: int | None = None
    #: When each loop-lag sample's timer was set, in seconds after the run's start
    #: (empty from an executor that doesn't say: its lags are then taken as 10 ms apart).
    loop_lag_starts: list[float] = attrs.Factory(list)

    @classmethod
    def cut_short(cls, finished: int, cpu_s: float, wall_s: float, end: float) -> PhaseStats:
        """The stats of a run stopped from outside, of which only *finished* is known."""
        return cls(
            loop_lags=[],
            cpu_s=cpu_s,
            wall_s=wall_s,
            end=end,
            sent=finished,
            finished=finished,
            interrupted=True,
        )


RecordCallback = Callable[[RequestRecord], None]


def _in_request_order(records: Iterable[RequestRecord]) -> list[RequestRecord]:
    return sorted(records, key=lambda r: r.index)


@attrs.frozen(kw_only=True)
class Execution:
    """What an executor measured: every finished request, in request order.

    ``cpu_s`` has one entry per process that sent requests (plus this one when it also
    served the embedded server); ``planned`` is the number of requests in the plan, so
    an interrupted run says how many did not finish.
    """

    records: list[RequestRecord] = attrs.field(converter=_in_request_order)
    stats: list[PhaseStats]
    planned: int
    duration: float
    wall_start: datetime
    cpu_s: list[float]
    #: The signal (SIGINT, SIGTERM) that stopped the run; the CLI exits 128 + it.
    stop_signal: int | None = None
    #: Multi-turn runs: turns never sent because a failed turn stopped their
    #: conversation (planned, but neither finished nor cut short by a stop); set by the
    #: run from the records (``_sessions.turns_not_sent``), whichever executor ran it.
    skipped: int = 0
    #: Keys the executor adds to the result JSON (Ray's ``clock_offsets``, say).
    result_keys: dict[str, object] = attrs.Factory(dict)
    #: Lines for the report, before its figures (Ray's clock offsets, a lost actor).
    notes: tuple[str, ...] = ()

    @property
    def date(self) -> str:
        """When the run ended, as vLLM writes it in the result and its file name (vLLM
        takes it after the run)."""
        end = self.wall_start + timedelta(seconds=self.duration)
        return end.strftime("%Y%m%d-%H%M%S")

    @property
    def not_finished(self) -> int:
        return self.planned - len(self.records) - self.skipped

    @property
    def interrupted(self) -> bool:
        return any(s.interrupted for s in self.stats) or self.not_finished > 0


@runtime_checkable
class Executor(Protocol):
    """Runs a plan: every request of ``plan.requests`` at ``start + delay`` (or, when
    ``plan.sessions`` has any, those sessions turn by turn, as ``drive`` does)."""

    async def run(self, plan: WorkloadPlan, on_record: RecordCallback) -> Execution:
        """Send the plan's requests and wait for them; call *on_record* for each as it
        finishes. A stop (signal, ``stop_after``) ends the run early with what finished;
        a failed request is a record, never an exception.

        Raises:
            RuntimeError: the executor itself failed (e.g. a worker crashed).
        """
        ...


@attrs.define
class Phase:
    """The run's wall-clock start and this process's CPU time since."""

    wall_start: datetime
    cpu0: float

    def cpu_s(self) -> float:
        return time.process_time() - self.cpu0


@contextlib.contextmanager
def measured_phase() -> Iterator[Phase]:
    """The measured part of a run. A garbage collection during it would pause every
    request at once: collect now, and keep what survives out of later collections."""
    gc.collect()
    gc.freeze()
    try:
        yield Phase(datetime.now(), time.process_time())
    finally:
        gc.unfreeze()
