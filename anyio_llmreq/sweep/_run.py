"""Running a sweep: each point through ``arun_benchmark``, its result files, the
``sweep.json`` summary after every point, resuming, and the console lines.

A point's repeat *k* runs with seed ``seed + k`` and is saved with the bench's format
(``save_detailed``) as ``points/<point name>-run<k>.json``. A file that holds a finished
run is that run: ``--resume`` reads it instead of running it again, and the SLA search
and saturation profile, which decide their next point from the ones before, follow the
same path through the files.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import IO, Any, Literal

import anyio
import attrs

from ..bench._config import BenchConfig, UsageError, flags
from ..bench._records import save_result
from ..bench._report import EMBEDDED_BANNER, TEMPERATURE_WARNING, percentile_word
from ._saturation import over_saturation, saturation_rates, throughput_plateau
from ._sla import SLO, BracketSearch, LatencySLO, Tolerance, evaluate, slo_percentiles
from ._space import OUTPUT_FIELDS, ParameterSpace, json_value, param_text, point_name
from ._stats import MetricSummary, summarize

__all__ = [
    "SLASearch",
    "SweepConfig",
    "SweepPoint",
    "SweepResult",
    "arun_sweep",
    "run_sweep",
]

Mode = Literal["list", "saturation", "sla"]
SLAParam = Literal["max_concurrency", "request_rate"]

KIND = "anyio-llmreq-sweep"
VERSION = 1
SWEEP_FILE = "sweep.json"
SETTINGS_FILE = "settings.json"
POINTS_DIR = "points"

#: Per-request lists a point keeps no copy of in memory (its file has them).
_HEAVY_KEYS = ("generated_texts", "itls", "input_lens_server", "request_ids")


@attrs.frozen(kw_only=True)
class SLASearch:
    """The SLA search: the highest ``param`` in [``low``, ``high``] whose point meets
    every SLO, to within ``tolerance``."""

    param: SLAParam = "max_concurrency"
    low: float = 1.0
    high: float = 1024.0
    tolerance: Tolerance = Tolerance(1.0)

    @property
    def integer(self) -> bool:
        return self.param == "max_concurrency"


@attrs.frozen(kw_only=True)
class SweepConfig:
    """One sweep: the bench configuration every point starts from, the mode and its
    parameters, the repeats, and where the files go.

    ``mode`` is ``"list"`` (every point of ``space``), ``"saturation"`` (synchronous,
    throughput, then ``saturation`` rates between) or ``"sla"`` (``search``). ``slos``
    are evaluated for every point of any mode. ``resume`` reads finished points from
    ``output_dir`` instead of running them again.
    """

    bench: BenchConfig
    mode: Mode
    output_dir: str
    space: ParameterSpace = ParameterSpace(())
    saturation: int = 0
    slos: tuple[SLO, ...] = ()
    search: SLASearch | None = None
    repeat: int = 1
    resume: bool = False

    def swept(self) -> list[str]:
        """The names of the parameters the points vary."""
        if self.mode == "list":
            return self.space.names
        if self.mode == "saturation":
            return ["max_concurrency", "request_rate"]
        assert self.search is not None
        return [self.search.param]

    def validate(self) -> None:
        """Check the mode's parameters and the bench flags a sweep can't take.

        Raises:
            UsageError: the first mistake, naming its flag.
        """
        bench = self.bench
        for name, value in (
            ("--output-jsonl", bench.output_jsonl),
            ("--result-dir", bench.result_dir),
            ("--result-filename", bench.result_filename),
            ("--append-result", bench.append_result or None),
        ):
            if value is not None:
                raise UsageError(
                    "not with a sweep",
                    where=name,
                    why="the sweep saves every run, with its requests, under "
                    f"--output-dir/{POINTS_DIR}",
                    hint=f"Drop {name}.",
                )
        if self.repeat < 1:
            raise UsageError("invalid value", where="--repeat", why="at least 1 run per point")
        if self.mode == "list" and len(self.space) == 0:
            raise UsageError("nothing to sweep", where="--sweep")
        if self.mode == "list" and "max_concurrency" in self.space.names:
            self._check_not_fixed("max_concurrency", "--concurrency")
        if self.mode == "saturation" and self.saturation < 1:
            why = f"at least 1 rate between the two measured ones, got {self.saturation}"
            raise UsageError("invalid value", where="--saturation", why=why)
        if self.mode == "sla":
            self._check_sla()
        if any(not isinstance(s, LatencySLO) for s in self.slos) and not bench.goodput:
            raise UsageError(
                "missing flag",
                where="--slo goodput",
                why="a goodput SLO is the share of requests meeting the --goodput SLOs",
                hint="Add e.g. --goodput ttft:500 tpot:50.",
            )

    def _check_sla(self) -> None:
        if self.search is None or not self.slos:
            raise UsageError(
                "missing flag", where="--slo", why="an SLA search needs at least one SLO"
            )
        param = self.search.param
        self._check_not_fixed(param, "the SLA search")

    def _check_not_fixed(self, param: str, by: str) -> None:
        flag = "--max-concurrency" if param == "max_concurrency" else "--request-rate"
        if getattr(self.bench, param) is not None:
            raise UsageError(
                "conflicting flags",
                where=flag,
                why=f"{by} sets {param} itself",
                hint=f"Drop the single {flag} value.",
            )


@attrs.frozen(kw_only=True)
class SweepPoint:
    """A finished point: its parameters, its result files (relative to ``sweep.json``),
    each metric over its repeats, whether it met the SLOs (None without SLOs), and
    the results themselves (without the generated texts)."""

    params: dict[str, Any]
    files: list[str]
    metrics: dict[str, MetricSummary]
    slo_ok: bool | None
    results: list[dict[str, Any]] = attrs.field(repr=False)
    reused: int = 0
    #: Why an SLA probe counted as over-saturated (not in ``sweep.json``).
    over_saturated: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "params": {k: json_value(v) for k, v in self.params.items()},
            "files": list(self.files),
            "metrics": {k: m.to_json() for k, m in self.metrics.items()},
            "slo_ok": self.slo_ok,
        }

    @property
    def completed(self) -> int:
        return sum(int(r.get("completed") or 0) for r in self.results)

    @property
    def failed(self) -> int:
        return sum(int(r.get("failed") or 0) for r in self.results)


@attrs.frozen(kw_only=True)
class SweepResult:
    """What a sweep measured: its points in the order they ran, the SLA search's answer
    (``(param, value)``, value None when even the bottom of the range misses the SLOs),
    why it stopped early (None when it didn't), the signal that stopped it, and
    ``sweep.json``'s path and content."""

    config: SweepConfig
    points: list[SweepPoint]
    sla: tuple[str, float | None] | None
    stopped: str | None
    path: str
    document: dict[str, Any]
    stop_signal: int | None = None

    @property
    def measured(self) -> bool:
        """At least one request of one point completed."""
        return any(p.completed for p in self.points)


# --- the state of a running sweep ------------------------------------------------------


@attrs.define(eq=False)
class _Sweep:
    config: SweepConfig
    bench: BenchConfig
    say: Callable[[str], None]
    points: list[SweepPoint] = attrs.Factory(list)
    sla: tuple[str, float | None] | None = None
    stopped: str | None = None
    planned: int | None = None
    current: dict[str, Any] | None = None

    @property
    def directory(self) -> str:
        return self.config.output_dir

    @property
    def points_dir(self) -> str:
        return os.path.join(self.directory, POINTS_DIR)

    def document(self) -> dict[str, Any]:
        """``sweep.json``'s content."""
        sla = None
        if self.sla is not None:
            param, value = self.sla
            sla = {"param": param, "value": _param_value(param, value)}
        return {
            "kind": KIND,
            "version": VERSION,
            "mode": self.config.mode,
            "swept": self.config.swept(),
            "slo": [s.to_json() for s in self.config.slos],
            "points": [p.to_json() for p in self.points],
            "sla": sla,
            "stopped": self.stopped,
        }

    def write(self) -> str:
        path = os.path.join(self.directory, SWEEP_FILE)
        save_result(path, self.bench.scrubber().data(self.document()))
        return path

    async def measure(self, params: dict[str, Any], label: str | None = None) -> SweepPoint:
        """Run (or read back) every repeat of the point *params*, record it, write
        ``sweep.json`` and say one line."""
        self.current = params
        name = point_name(params)
        files: list[str] = []
        results: list[dict[str, Any]] = []
        reused = 0
        for k in range(self.config.repeat):
            filename = f"{name}-run{k}.json"
            files.append(f"{POINTS_DIR}/{filename}")
            path = os.path.join(self.points_dir, filename)
            result = _read_finished(path, self._required_keys()) if self.config.resume else None
            if result is None:
                result = await self._run_one(params, k, filename)
            else:
                reused += 1
            results.append(_slim(result))
        slo_ok = None
        verdict: list[str] = []
        if self.config.slos:
            slo_ok, verdict = evaluate(self.config.slos, results)
        point = SweepPoint(
            params=params,
            files=files,
            metrics=summarize(results),
            slo_ok=slo_ok,
            results=results,
            reused=reused,
        )
        self.points.append(point)
        self.write()
        self.say(self._point_line(point, label, verdict))
        return point

    async def _run_one(self, params: Mapping[str, Any], k: int, filename: str) -> dict[str, Any]:
        from ..bench._run import arun_benchmark

        config = point_config(self.bench, with_implied(params), k, self.points_dir, filename)
        run = await arun_benchmark(config, handle_signals=False)
        return run.result

    def _required_keys(self) -> list[str]:
        keys = ["completed", "duration", "request_throughput"]
        keys += [s.key for s in self.config.slos if isinstance(s, LatencySLO)]
        return keys

    def _point_line(self, point: SweepPoint, label: str | None, verdict: list[str]) -> str:
        count = len(self.points)
        index = f"[{count}/{self.planned}]" if self.planned else f"[{count}]"
        params = " ".join(f"{k}={param_text(v)}" for k, v in point.params.items())
        head = f"{index} {label + ' ' if label else ''}{params}"
        if point.reused == len(point.results):
            head += " (from files)"
        line = f"{head}: {_figures(point)}, {point.completed} ok, {point.failed} failed"
        if len(point.results) > 1:
            line += f" (mean of {len(point.results)} runs)"
        if point.slo_ok is not None:
            line += f"; SLO {'met' if point.slo_ok else 'missed'} ({', '.join(verdict)})"
        return line


def with_implied(params: Mapping[str, Any]) -> dict[str, Any]:
    """*params* with what they imply: a concurrency without a rate runs at rate inf
    (each request as soon as a slot is free)."""
    values = dict(params)
    if "max_concurrency" in values and "request_rate" not in values:
        values["request_rate"] = math.inf
    return values


def point_config(
    base: BenchConfig, params: Mapping[str, Any], repeat: int, directory: str, filename: str
) -> BenchConfig:
    """The bench configuration of repeat *repeat* of a point: *params* over *base*,
    seed ``base.seed + repeat``, saved with its requests as *directory*/*filename*,
    silent (the sweep prints one line per point)."""
    return attrs.evolve(
        base,
        **params,
        seed=base.seed + repeat,
        save_result=True,
        save_detailed=True,
        append_result=False,
        result_dir=directory,
        result_filename=filename,
        output_jsonl=None,
        disable_tqdm=True,
        quiet=True,
    )


def prepared_bench(config: SweepConfig) -> BenchConfig:
    """The base configuration with what the sweep reads from every result: E2EL (the
    over-saturation check) and each SLO's metric and percentile."""
    base = config.bench
    names = base.percentile_metric_names()
    wanted = {*names, "e2el"}
    wanted |= {s.metric for s in config.slos if isinstance(s, LatencySLO)}
    metrics: list[str] = [m for m in ("ttft", "tpot", "itl", "e2el") if m in wanted]
    metrics += [m for m in names if m not in metrics]  # left for validate() to reject
    percentiles = sorted({*base.percentiles(), *slo_percentiles(config.slos)})
    return attrs.evolve(
        base,
        percentile_metrics=",".join(metrics),
        metric_percentiles=",".join(percentile_word(p) for p in percentiles) or "99",
    )


def _slim(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k not in _HEAVY_KEYS}


def _read_finished(path: str, required: Sequence[str]) -> dict[str, Any] | None:
    """The result in *path* when it is a finished run with every key the sweep reads;
    None for a missing, unreadable, interrupted or older file (it is run again)."""
    try:
        with open(path, encoding="utf-8") as f:
            result = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(result, dict) or result.get("interrupted") is not False:
        return None
    if any(key not in result for key in required):
        return None
    return result


def _param_value(param: str, value: float | None) -> Any:
    if value is None:
        return None
    return int(value) if param == "max_concurrency" else json_value(value)


def _figures(point: SweepPoint) -> str:
    m = point.metrics
    parts = []
    if "request_throughput" in m:
        parts.append(f"{m['request_throughput'].mean:.2f} req/s")
    if "output_throughput" in m:
        parts.append(f"{m['output_throughput'].mean:.0f} out tok/s")
    for metric in ("ttft", "tpot", "e2el"):
        stats = [f"mean {m[f'mean_{metric}_ms'].mean:.1f}"] if f"mean_{metric}_ms" in m else []
        high = _top_percentile(m, metric)
        if high is not None:
            stats.append(f"{high.split('_')[0]} {m[high].mean:.1f}")
        if stats:
            parts.append(f"{metric.upper()} {' '.join(stats)} ms")
    return ", ".join(parts)


def _top_percentile(metrics: Mapping[str, MetricSummary], metric: str) -> str | None:
    """The key of *metric*'s highest percentile present (``p99_ttft_ms``), or None."""
    found = []
    suffix = f"_{metric}_ms"
    for key in metrics:
        if key.startswith("p") and key.endswith(suffix):
            try:
                found.append((float(key[1 : -len(suffix)]), key))
            except ValueError:
                continue
    return max(found)[1] if found else None


# --- the modes -----------------------------------------------------------------------


async def _run_list(sweep: _Sweep) -> None:
    sweep.planned = len(sweep.config.space)
    for params in sweep.config.space:
        await sweep.measure(params)


async def _run_saturation(sweep: _Sweep) -> None:
    count = sweep.config.saturation
    sweep.planned = count + 2
    cap = sweep.bench.max_concurrency
    sync = await sweep.measure(
        {"max_concurrency": 1, "request_rate": math.inf}, label="synchronous"
    )
    peak = await sweep.measure({"max_concurrency": cap, "request_rate": math.inf}, "throughput")
    low = _mean(sync, "request_throughput")
    high = _mean(peak, "request_throughput")
    if low <= 0 or high <= 0:
        sweep.stopped = "no request completed in the synchronous or the throughput run"
        return
    if high <= low:
        sweep.stopped = (
            f"no rates between: the throughput run's {high:.3g} req/s is not above the "
            f"synchronous run's {low:.3g} req/s"
        )
        return
    for rate in saturation_rates(low, high, count):
        await sweep.measure({"max_concurrency": cap, "request_rate": rate})


async def _run_sla(sweep: _Sweep) -> None:
    settings = sweep.config.search
    assert settings is not None
    param = settings.param
    search = BracketSearch(
        settings.low, settings.high, settings.tolerance, integer=settings.integer
    )
    seen: dict[float, SweepPoint] = {}
    while (value := search.next_value()) is not None:
        params: dict[str, Any] = {param: int(value) if settings.integer else value}
        point = await sweep.measure(params, label="probe")
        reason = _saturated(param, value, point, search, seen)
        ok = bool(point.slo_ok)
        if reason is not None:
            point = attrs.evolve(point, over_saturated=reason)
            sweep.points[-1] = point
            sweep.say(f"    over-saturated: {reason}")
            if ok and sweep.stopped is None:
                sweep.stopped = (
                    f"over-saturated at {param}={param_text(params[param])}, which met "
                    f"the SLOs: {reason}; the search stayed below it"
                )
            ok = False
        seen[value] = point
        search.record(value, ok)
    sweep.sla = (param, search.passing)


def _saturated(
    param: str,
    value: float,
    point: SweepPoint,
    search: BracketSearch,
    seen: dict[float, SweepPoint],
) -> str | None:
    offered = value if param == "request_rate" else math.inf
    reason = over_saturation(point.results, offered)
    if reason is None and param == "max_concurrency" and search.passing is not None:
        lower = seen[search.passing]
        reason = throughput_plateau(param, (search.passing, lower.results), (value, point.results))
    return reason


def _mean(point: SweepPoint, key: str) -> float:
    summary = point.metrics.get(key)
    return summary.mean if summary is not None else 0.0


_MODES: dict[str, Callable[[_Sweep], Awaitable[None]]] = {
    "list": _run_list,
    "saturation": _run_saturation,
    "sla": _run_sla,
}


# --- files ---------------------------------------------------------------------------


def _settings(bench: BenchConfig) -> dict[str, Any]:
    """The bench flags a resumed sweep must share with the sweep it continues."""
    values = {}
    for field, spec in flags():
        if field.name in OUTPUT_FIELDS:
            continue
        value = getattr(bench, field.name)
        values[spec.cli] = json.loads(json.dumps(json_value(value), default=str))
    data: dict[str, Any] = bench.scrubber().data(values)
    return data


def _prepare_directory(config: SweepConfig) -> None:
    """Create the output directory, or check the one to resume.

    Raises:
        UsageError: a new sweep's directory already holds one with a finished point, a
            resumed one holds none, or was run with other bench flags.
    """
    directory = config.output_dir
    settings_path = os.path.join(directory, SETTINGS_FILE)
    current = _settings(config.bench)
    if config.resume:
        try:
            with open(settings_path, encoding="utf-8") as f:
                stored = json.load(f)
        except (OSError, ValueError):
            raise UsageError(
                "no sweep to resume",
                where=directory,
                why=f"no readable {SETTINGS_FILE} there",
                hint="Pass the directory of an earlier sweep, or drop --resume.",
            ) from None
        _check_same_flags(stored.get("bench", {}), current, directory)
    elif _finished_points(os.path.join(directory, SWEEP_FILE)):
        raise UsageError(
            "the output directory holds a sweep",
            where=directory,
            hint=f"Continue it with --resume {directory}, or pass another --output-dir.",
        )
    try:
        os.makedirs(os.path.join(directory, POINTS_DIR), exist_ok=True)
    except OSError as exc:
        raise UsageError(
            "cannot create the output directory", where=directory, why=exc.strerror
        ) from None
    if not config.resume:
        save_result(settings_path, {"kind": f"{KIND}-settings", "bench": current})


def _finished_points(path: str) -> bool:
    """Whether the ``sweep.json`` at *path* lists a point (one that stopped before
    its first point finished may be started over)."""
    try:
        with open(path, encoding="utf-8") as f:
            return bool(json.load(f).get("points"))
    except (OSError, ValueError, AttributeError):
        return os.path.exists(path)


def _check_same_flags(stored: Mapping[str, Any], current: Mapping[str, Any], where: str) -> None:
    changed = [k for k in current if k in stored and stored[k] != current[k]]
    changed += [k for k in current if k not in stored]
    if not changed:
        return
    shown = ", ".join(
        f"{k} {_shown(stored.get(k))} there, {_shown(current[k])} here" for k in changed[:3]
    )
    raise UsageError(
        "the sweep to resume ran with other bench flags",
        where=where,
        why=shown,
        hint="Resume with the flags it started with, or pass a new --output-dir.",
    )


def _shown(value: Any) -> str:
    return "unset" if value is None else json.dumps(value)


# --- the console ---------------------------------------------------------------------


def _cell(summary: MetricSummary | None, digits: int) -> str:
    if summary is None:
        return "-"
    text = f"{summary.mean:.{digits}f}"
    if summary.n > 1:
        text += f"±{summary.half_width:.{digits}f}"
    return text


def _slo_cell(point: SweepPoint) -> str:
    text = "met" if point.slo_ok else "missed"
    return text + ", over-saturated" if point.over_saturated else text


def _param_column(name: str) -> Callable[[SweepPoint], str]:
    return lambda point: param_text(point.params.get(name))


def table_lines(config: SweepConfig, points: Sequence[SweepPoint]) -> list[str]:
    """The points as a table: their parameters, throughput, latencies (the mean, and
    ``±`` the 95% interval's half width over repeats) and whether they met the SLOs."""
    if not points:
        return []
    swept = config.swept()
    rows = list(points)
    if config.mode == "sla":
        rows.sort(key=lambda p: float(p.params[swept[0]]))
    ttft_high = _top_percentile(points[0].metrics, "ttft")
    columns: list[tuple[str, Callable[[SweepPoint], str]]] = [
        (name, _param_column(name)) for name in swept
    ]
    columns += [
        ("req/s", lambda p: _cell(p.metrics.get("request_throughput"), 2)),
        ("out tok/s", lambda p: _cell(p.metrics.get("output_throughput"), 0)),
        ("TTFT mean", lambda p: _cell(p.metrics.get("mean_ttft_ms"), 1)),
    ]
    if ttft_high is not None:
        label = f"TTFT {ttft_high.split('_')[0]}"
        columns.append((label, lambda p: _cell(p.metrics.get(ttft_high), 1)))
    columns += [
        ("TPOT mean", lambda p: _cell(p.metrics.get("mean_tpot_ms"), 1)),
        ("E2EL mean", lambda p: _cell(p.metrics.get("mean_e2el_ms"), 1)),
        ("failed", lambda p: str(p.failed)),
    ]
    if config.slos:
        columns.append(("SLO", _slo_cell))
    cells = [[name for name, _ in columns]] + [[f(p) for _, f in columns] for p in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return [lines[0], "-" * len(lines[0]), *lines[1:]]


def _closing_lines(sweep: _Sweep, path: str) -> list[str]:
    config = sweep.config
    lines = [
        "",
        f"============ Sweep ({config.mode}) ============",
        *table_lines(config, sweep.points),
    ]
    if config.slos:
        lines.append("SLOs: " + " ".join(str(s) for s in config.slos))
    if sweep.sla is not None and config.search is not None:
        param, value = sweep.sla
        span = f"{param_text(config.search.low)}..{param_text(config.search.high)}"
        if value is None:
            lines.append(f"SLA: no {param} in {span} meets the SLOs")
        else:
            shown = param_text(int(value) if config.search.integer else value)
            lines.append(f"SLA: {param}={shown} is the highest in {span} meeting the SLOs")
    if sweep.stopped is not None:
        lines.append(f"Stopped: {sweep.stopped}")
    runs = sum(len(p.files) for p in sweep.points)
    counts = f"{_count(len(sweep.points), 'point')}, {_count(runs, 'result file')}"
    lines.append(f"Wrote {path} ({counts})")
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _opening_lines(config: SweepConfig) -> list[str]:
    bench = config.bench
    lines = []
    if bench.embedded:
        lines.append(EMBEDDED_BANNER)
    elif bench.temperature is None and not bench.is_pooling:
        lines.append(TEMPERATURE_WARNING)
    what = {
        "list": _count(len(config.space), "point"),
        "saturation": f"synchronous, throughput and {config.saturation} rates",
        "sla": "an SLA search",
    }[config.mode]
    repeat = f", {config.repeat} runs each" if config.repeat > 1 else ""
    lines.append(f"Sweep ({config.mode}): {what}{repeat}, files in {config.output_dir}")
    return lines


# --- entry points --------------------------------------------------------------------


async def arun_sweep(
    config: SweepConfig, *, stdout: IO[str] | None = None, handle_signals: bool = True
) -> SweepResult:
    """Run the sweep described by *config* in the running event loop.

    Every point runs through ``arun_benchmark`` (each repeat's result file under
    ``output_dir/points``); ``sweep.json`` is rewritten after every point. With
    *handle_signals*, SIGINT or SIGTERM stops the sweep: the point running is
    abandoned, the finished ones stay written, and ``stop_signal`` says which signal.

    Raises:
        UsageError: a mistake in the flags or the output directory (before any run), or
            one a point's run found (its setup: the server, the tokenizer).
        ConfigError: a backend that can't build the requests.
        RuntimeError: a point's run failed; the points before it are written.
    """
    from .._compat import OPENAI_COMPATIBLE_BACKENDS

    config.validate()
    bench = prepared_bench(config)
    for params in _sample_points(config):
        point_config(bench, params, 0, ".", "x.json").validate(set(OPENAI_COMPATIBLE_BACKENDS))
    _prepare_directory(config)
    scrub = bench.scrubber()

    def say(text: str) -> None:
        print(scrub.text(text), file=stdout or sys.stdout, flush=True)

    sweep = _Sweep(config=config, bench=bench, say=say)
    for line in _opening_lines(config):
        say(line)
    caught: list[int] = []
    failure: Exception | None = None
    async with anyio.create_task_group() as tg:
        if handle_signals:
            from ..bench._drive import cancel_on_signal, stop_signals, watch_signals

            tg.start_soon(watch_signals, stop_signals(), cancel_on_signal(tg.cancel_scope, caught))
        try:
            await _MODES[config.mode](sweep)
        except Exception as exc:
            failure = exc  # raised below, outside the task group (no exception group)
        tg.cancel_scope.cancel()
    if caught:
        name = signal.Signals(caught[0]).name
        sweep.stopped = f"interrupted by {name}"
    if failure is not None:
        where = " ".join(f"{k}={param_text(v)}" for k, v in (sweep.current or {}).items())
        sweep.stopped = f"the run of {where} failed: {' '.join(str(failure).split())}"
        sweep.write()
        raise failure
    path = sweep.write()
    for line in _closing_lines(sweep, path):
        say(line)
    return SweepResult(
        config=config,
        points=list(sweep.points),
        sla=sweep.sla,
        stopped=sweep.stopped,
        path=path,
        document=sweep.document(),
        stop_signal=caught[0] if caught else None,
    )


def _sample_points(config: SweepConfig) -> list[dict[str, Any]]:
    """Points whose configurations stand for all of the sweep's, checked before the
    first run: every point of a list sweep; the first runs and a rate otherwise."""
    if config.mode == "list":
        return [with_implied(params) for params in config.space]
    if config.mode == "saturation":
        return [{"max_concurrency": 1, "request_rate": math.inf}, {"request_rate": 1.0}]
    assert config.search is not None
    low = config.search.low
    if config.search.integer:
        return [with_implied({"max_concurrency": int(low)})]
    return [{"request_rate": low}]


def run_sweep(config: SweepConfig, *, stdout: IO[str] | None = None) -> SweepResult:
    """Run the sweep described by *config* in a new event loop (``config.bench.loop``).

    See ``arun_sweep`` for the arguments and errors.
    """
    from .._loops import loop_backend
    from ..bench._setup import check_loop

    check_loop(config.bench.loop)
    backend, options = loop_backend(config.bench.loop)

    async def main() -> SweepResult:
        return await arun_sweep(config, stdout=stdout)

    return anyio.run(main, backend=backend, backend_options=options)
