"""Reading what the report draws: bench result files (ours and vLLM's, one JSON object or
several with ``--append-result``), ``--output-jsonl`` per-request logs and sweep summaries
(``sweep.json``), into a typed model.

The kind of a file is told by its content, not its name: a sweep has
``"kind": "anyio-llmreq-sweep"``, a result has the summary keys (``completed``,
``duration``), a per-request log line has ``ttft``, ``itl`` and ``success``. Anything else
is a ``UsageError`` naming the file.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import attrs

from ..bench._config import UsageError

__all__ = [
    "SWEEP_KIND",
    "InputItem",
    "ReportData",
    "RequestTiming",
    "Run",
    "RunKind",
    "ServerMetrics",
    "ServerSeries",
    "Sla",
    "Slo",
    "Stat",
    "Sweep",
    "SweepPoint",
    "load_inputs",
    "percentile",
]

#: The ``kind`` of a sweep summary file.
SWEEP_KIND = "anyio-llmreq-sweep"
_SWEEP_VERSIONS = (1,)

#: ``anyio-llmreq``: our result file (it has the ``client_*`` self-check keys);
#: ``vllm``: a result file without them; ``jsonl``: an ``--output-jsonl`` log.
RunKind = Literal["anyio-llmreq", "vllm", "jsonl"]

#: What ``load_inputs`` takes: a path, a result dict, or an object with a ``result``
#: dict (``anyio_llmreq.bench.BenchmarkResult``).
InputItem = Any

# The per-request lists of a detailed result: too big for the summary.
_DETAILED = (
    "input_lens",
    "output_lens",
    "ttfts",
    "itls",
    "start_times",
    "generated_texts",
    "errors",
    "input_lens_server",
    "scheduled_times",
    "client_queue_times",
    "request_ids",
    "session_ids",
    "turns",
)


@attrs.frozen
class RequestTiming:
    """One request, in seconds. *start* is from the run's first request (``None`` when
    the file has no start times); *latency* is the end-to-end latency (from a result
    file: TTFT plus the ITLs, i.e. the last token's arrival)."""

    start: float | None
    ttft: float
    itl: tuple[float, ...]
    latency: float
    input_len: int
    output_len: int
    error: str
    success: bool

    @property
    def tpot(self) -> float | None:
        """Time per output token after the first (vLLM's definition), or ``None``."""
        if not self.success or self.output_len <= 1:
            return None
        return (self.latency - self.ttft) / (self.output_len - 1)


@attrs.frozen
class ServerSeries:
    """One time series scraped from the server during the run: *points* are
    ``(seconds from the run's start, value)``."""

    name: str
    kind: str
    label: str | None
    points: tuple[tuple[float, float], ...]

    @property
    def title(self) -> str:
        return self.label or self.name


@attrs.frozen
class ServerMetrics:
    """A result's ``server_metrics``: the series, and the scrapes that failed."""

    endpoints: tuple[str, ...]
    interval_s: float | None
    series: tuple[ServerSeries, ...]
    failures: tuple[str, ...]


@attrs.frozen
class Run:
    """One benchmark run: its summary keys, and its requests when the file has them."""

    name: str
    source: str
    kind: RunKind
    summary: Mapping[str, Any]
    requests: tuple[RequestTiming, ...] | None = None
    server: ServerMetrics | None = None

    @property
    def detailed(self) -> bool:
        """True when the per-request lists are there (``--save-detailed`` or JSONL)."""
        return self.requests is not None

    @property
    def timed(self) -> bool:
        """True when the requests have start times (over-time charts can be drawn)."""
        return bool(self.requests) and all(r.start is not None for r in self.requests or ())

    def number(self, key: str) -> float | None:
        """The summary value *key* as a finite float, or ``None``."""
        return _finite(self.summary.get(key))


@attrs.frozen
class Stat:
    """A sweep point's metric over its repeats: the mean and its confidence interval."""

    mean: float
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = 1


@attrs.frozen
class Slo:
    """An objective of a sweep: ``stat`` of ``metric`` at most ``limit_ms`` (a latency
    SLO), or with ``metric`` ``"goodput"``, at least ``min_fraction`` of the requests
    meeting the bench's ``--goodput`` SLOs."""

    metric: str
    stat: str | None = None
    limit_ms: float | None = None
    min_fraction: float | None = None

    @property
    def key(self) -> str | None:
        """The result key a latency SLO is checked on (``p99_ttft_ms``; P50 is the
        bench's ``median``), or ``None``."""
        if self.stat is None or self.limit_ms is None:
            return None
        stat = "median" if self.stat == "p50" else self.stat
        return f"{stat}_{self.metric}_ms"

    @property
    def text(self) -> str:
        if self.key is None:
            return f"goodput ≥ {self.min_fraction or 0:.0%} of the requests"
        return f"{self.stat} {self.metric.upper()} ≤ {self.limit_ms:g} ms"


@attrs.frozen
class Sla:
    """The highest load that met every SLO."""

    param: str
    value: float


@attrs.frozen
class SweepPoint:
    """One point of a sweep: its parameter values, its metrics, its runs (one a repeat)."""

    params: Mapping[str, Any]
    files: tuple[str, ...]
    metrics: Mapping[str, Stat]
    slo_ok: bool | None
    runs: tuple[Run, ...]

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.params.items())

    def stat(self, key: str) -> Stat | None:
        """The metric *key*: from the sweep file, else the mean over the runs."""
        found = self.metrics.get(key)
        if found is not None:
            return found
        values = [v for v in (run.number(key) for run in self.runs) if v is not None]
        if not values:
            return None
        return Stat(mean=sum(values) / len(values), n=len(values))


@attrs.frozen
class Sweep:
    """A sweep summary (``sweep.json``) and its points."""

    name: str
    source: str
    mode: str
    swept: tuple[str, ...]
    slo: tuple[Slo, ...]
    points: tuple[SweepPoint, ...]
    sla: Sla | None
    stopped: str | None

    def metric_keys(self) -> list[str]:
        """Every metric key some point has, in first-seen order."""
        keys: dict[str, None] = {}
        for point in self.points:
            keys.update(dict.fromkeys(point.metrics))
            for run in point.runs:
                keys.update((k, None) for k, v in run.summary.items() if _finite(v) is not None)
        return list(keys)


@attrs.frozen
class ReportData:
    """Everything one report shows: the runs given directly, and the sweeps."""

    runs: tuple[Run, ...] = ()
    sweeps: tuple[Sweep, ...] = ()


def load_inputs(items: Iterable[InputItem]) -> ReportData:
    """Read *items*: paths of result files (one or several JSON objects), JSONL logs and
    ``sweep.json`` files, result dicts, or ``BenchmarkResult`` objects.

    Raises:
        UsageError: a file that is missing, unreadable, not JSON, or of no known shape
            (the message names it); nothing given.
    """
    runs: list[Run] = []
    sweeps: list[Sweep] = []
    for item in items:
        if isinstance(item, (str, os.PathLike)):
            path = os.fspath(item)
            loaded = _load_path(path)
            if isinstance(loaded, Sweep):
                sweeps.append(loaded)
            else:
                runs.extend(loaded)
        else:
            runs.append(_run_from_object(item, len(runs)))
    if not runs and not sweeps:
        raise UsageError("nothing to report", why="no result files were given")
    return ReportData(runs=tuple(_unique_names(runs)), sweeps=tuple(_unique_sweeps(sweeps)))


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """numpy's default (linear) percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = (len(sorted_values) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


# -- files ------------------------------------------------------------------------------


def _load_path(path: str) -> Sweep | list[Run]:
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "sweep.json")):
        path = os.path.join(path, "sweep.json")  # a sweep's directory
    objects = _read_objects(path)
    first = objects[0]
    if isinstance(first, dict) and first.get("kind") == SWEEP_KIND:
        if len(objects) > 1:
            raise UsageError("not a sweep file", where=path, why="more than one JSON object")
        return _sweep(first, path)
    kinds = {_shape(obj) for obj in objects}
    if kinds == {"result"}:
        stem = _stem(path)
        several = len(objects) > 1
        return [
            _run_from_result(obj, path, _result_name(obj, stem, i + 1 if several else None))
            for i, obj in enumerate(objects)
        ]
    if kinds == {"record"}:
        return [_run_from_records(objects, path)]
    if len(kinds) > 1 and None not in kinds:
        raise UsageError("unknown file shape", where=path, why="results mixed with request lines")
    bad = next(obj for obj in objects if _shape(obj) is None)
    raise UsageError(
        "unknown file shape",
        where=path,
        why="not a bench result, an --output-jsonl log or a sweep.json (" + _describe(bad) + ")",
    )


def _read_objects(path: str) -> list[Any]:
    """The JSON values in *path*: one, or several one after another (``--append-result``
    files, JSONL logs)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise UsageError("no such file", where=path) from None
    except IsADirectoryError:
        why = "it is a directory (a sweep's has a sweep.json)"
        raise UsageError("not a file", where=path, why=why) from None
    except UnicodeDecodeError:
        raise UsageError("not JSON", where=path, why="not UTF-8 text") from None
    except OSError as exc:
        raise UsageError("can't read file", where=path, why=exc.strerror or str(exc)) from None
    decoder = json.JSONDecoder()
    objects: list[Any] = []
    pos = _skip_space(text, 0)
    while pos < len(text):
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise UsageError(
                "not JSON", where=path, why=f"{exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from None
        objects.append(value)
        pos = _skip_space(text, pos)
    if not objects:
        raise UsageError("not JSON", where=path, why="the file is empty")
    return objects


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _shape(obj: Any) -> Literal["result", "record"] | None:
    if not isinstance(obj, dict):
        return None
    if "duration" in obj and ("completed" in obj or "request_throughput" in obj):
        return "result"
    if "ttft" in obj and "itl" in obj and "success" in obj:
        return "record"
    return None


def _describe(obj: Any) -> str:
    if isinstance(obj, dict):
        keys = ", ".join(sorted(obj)[:6]) or "no keys"
        return f"an object with {keys}"
    return f"a JSON {type(obj).__name__}"


def _stem(path: str) -> str:
    base = os.path.basename(path)
    for ext in (".jsonl", ".json"):
        if base.endswith(ext):
            return base[: -len(ext)]
    return base


def _result_name(obj: Mapping[str, Any], stem: str, index: int | None) -> str:
    label = obj.get("label")
    name = label if isinstance(label, str) and label else stem
    return name if index is None else f"{name} #{index}"


def _unique_names(runs: list[Run]) -> list[Run]:
    """Two runs named alike (the same --label in two files) get their file's name."""
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.name] = counts.get(run.name, 0) + 1
    out: list[Run] = []
    seen: set[str] = set()
    for run in runs:
        name = run.name
        if counts[name] > 1:
            name = f"{name} ({_stem(run.source)})"
        base, n = name, 2
        while name in seen:
            name, n = f"{base} ({n})", n + 1
        seen.add(name)
        out.append(attrs.evolve(run, name=name))
    return out


def _unique_sweeps(sweeps: list[Sweep]) -> list[Sweep]:
    out: list[Sweep] = []
    seen: set[str] = set()
    for sweep in sweeps:
        name, n = sweep.name, 2
        while name in seen:
            name, n = f"{sweep.name} ({n})", n + 1
        seen.add(name)
        out.append(attrs.evolve(sweep, name=name))
    return out


# -- results ----------------------------------------------------------------------------


def _run_from_object(item: Any, index: int) -> Run:
    result = getattr(item, "result", item)
    if not isinstance(result, Mapping) or _shape(dict(result)) != "result":
        raise UsageError(
            "unknown input",
            where=f"item {index + 1}",
            why="not a path, a result dict or a BenchmarkResult",
        )
    source = getattr(item, "result_path", None) or "<result>"
    name = _result_name(result, "result", None)
    return _run_from_result(result, str(source), name)


def _run_from_result(obj: Mapping[str, Any], source: str, name: str) -> Run:
    kind: RunKind = "anyio-llmreq" if any(str(k).startswith("client_") for k in obj) else "vllm"
    summary = {k: v for k, v in obj.items() if k not in _DETAILED and k != "server_metrics"}
    return Run(
        name=name,
        source=source,
        kind=kind,
        summary=summary,
        requests=_requests_from_lists(obj, source),
        server=_server_metrics(obj.get("server_metrics"), source),
    )


def _requests_from_lists(obj: Mapping[str, Any], source: str) -> tuple[RequestTiming, ...] | None:
    ttfts = obj.get("ttfts")
    itls = obj.get("itls")
    if not isinstance(ttfts, list) or not isinstance(itls, list):
        return None
    n = len(ttfts)
    starts = _list(obj, "start_times", n, source)
    inputs = _list(obj, "input_lens", n, source)
    outputs = _list(obj, "output_lens", n, source)
    errors = _list(obj, "errors", n, source)
    if len(itls) != n:
        raise _bad_list(source, "itls", len(itls), n)
    origin = min((s for s in starts if isinstance(s, (int, float))), default=None)
    requests = []
    try:
        for i in range(n):
            ttft = float(ttfts[i] or 0.0)
            itl = tuple(float(x) for x in (itls[i] or ()))
            error = str(errors[i] or "") if errors else ""
            out_len = int(outputs[i] or 0) if outputs else len(itl) + 1
            success = not error and (ttft > 0.0 or out_len > 0)
            start = starts[i] if starts else None
            requests.append(
                RequestTiming(
                    start=None if start is None or origin is None else float(start) - origin,
                    ttft=ttft,
                    itl=itl,
                    latency=ttft + sum(itl),
                    input_len=int(inputs[i] or 0) if inputs else 0,
                    output_len=out_len if success else 0,
                    error=error,
                    success=success,
                )
            )
    except (TypeError, ValueError) as exc:
        raise UsageError(
            "malformed result", where=source, why=f"a per-request list holds {exc}"
        ) from None
    return tuple(requests)


def _list(obj: Mapping[str, Any], key: str, n: int, source: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or len(value) != n:
        raise _bad_list(source, key, len(value) if isinstance(value, list) else -1, n)
    return value


def _bad_list(source: str, key: str, got: int, n: int) -> UsageError:
    why = f"'{key}' has {got} items, 'ttfts' has {n}" if got >= 0 else f"'{key}' is not a list"
    return UsageError("malformed result", where=source, why=why)


def _server_metrics(value: Any, source: str) -> ServerMetrics | None:
    if value is None:
        return None
    where = f"{source}: server_metrics"
    if not isinstance(value, Mapping) or not isinstance(value.get("series", {}), Mapping):
        raise UsageError("malformed result", where=where, why="expected an object with 'series'")
    series = []
    for name, item in dict(value.get("series") or {}).items():
        if not isinstance(item, Mapping) or not isinstance(item.get("points", []), list):
            raise UsageError("malformed result", where=where, why=f"series {name!r}")
        try:
            points = tuple(
                (float(t), float(v)) for t, v in item.get("points") or () if _finite(v) is not None
            )
        except (TypeError, ValueError):
            raise UsageError(
                "malformed result", where=where, why=f"series {name!r}: points are not [t, value]"
            ) from None
        label = item.get("label")
        series.append(
            ServerSeries(
                name=str(name),
                kind=str(item.get("kind") or "gauge"),
                label=str(label) if label else None,
                points=points,
            )
        )
    return ServerMetrics(
        endpoints=tuple(str(e) for e in value.get("endpoints") or ()),
        interval_s=_finite(value.get("interval_s")),
        series=tuple(series),
        failures=tuple(_failure(f) for f in value.get("failures") or ()),
    )


def _failure(item: Any) -> str:
    """A failed scrape as one line: ``{"t_s", "url", "error"}`` as the bench writes it."""
    if isinstance(item, Mapping) and "error" in item:
        t = _finite(item.get("t_s"))
        when = f" at {t:g} s" if t is not None else ""
        return f"{item.get('url', 'scrape')}{when}: {item['error']}"
    return item if isinstance(item, str) else json.dumps(item, sort_keys=True)


# -- JSONL logs -------------------------------------------------------------------------


def _run_from_records(lines: list[Any], source: str) -> Run:
    try:
        starts = [float(line["start_time"]) for line in lines if line.get("start_time")]
        origin = min(starts) if len(starts) == len(lines) else None
        requests = tuple(_request_from_line(line, origin) for line in lines)
    except (TypeError, ValueError, KeyError) as exc:
        raise UsageError("malformed request line", where=source, why=str(exc)) from None
    return Run(
        name=_stem(source),
        source=source,
        kind="jsonl",
        summary=_summary_from_requests(requests),
        requests=requests,
    )


def _request_from_line(line: Mapping[str, Any], origin: float | None) -> RequestTiming:
    success = bool(line["success"])
    itl = tuple(float(x) for x in line.get("itl") or ())
    ttft = float(line.get("ttft") or 0.0)
    out = line.get("output_tokens")
    output_len = int(out) if out else (len(itl) + 1 if success else 0)
    return RequestTiming(
        start=None if origin is None else float(line["start_time"]) - origin,
        ttft=ttft,
        itl=itl,
        latency=float(line.get("latency") or (ttft + sum(itl))),
        input_len=int(line.get("prompt_len") or 0),
        output_len=output_len if success else 0,
        error=str(line.get("error") or ""),
        success=success,
    )


def _summary_from_requests(requests: Sequence[RequestTiming]) -> dict[str, Any]:
    """The result keys a JSONL log lacks, computed as the bench computes them."""
    ok = [r for r in requests if r.success]
    spans = [(r.start, r.start + r.latency) for r in requests if r.start is not None]
    duration = max(e for _, e in spans) - min(s for s, _ in spans) if spans else None
    summary: dict[str, Any] = {
        "completed": len(ok),
        "failed": len(requests) - len(ok),
        "duration": duration,
        "total_input_tokens": sum(r.input_len for r in ok),
        "total_output_tokens": sum(r.output_len for r in ok),
    }
    if duration:
        summary["request_throughput"] = len(ok) / duration
        summary["output_throughput"] = summary["total_output_tokens"] / duration
        summary["total_token_throughput"] = (
            summary["total_input_tokens"] + summary["total_output_tokens"]
        ) / duration
    values = {
        "ttft": [r.ttft for r in ok],
        "tpot": [t for t in (r.tpot for r in ok) if t is not None],
        "itl": [x for r in ok for x in r.itl],
        "e2el": [r.latency for r in ok],
    }
    for metric, xs in values.items():
        if not xs:
            continue
        xs.sort()
        summary[f"mean_{metric}_ms"] = sum(xs) / len(xs) * 1000
        summary[f"median_{metric}_ms"] = percentile(xs, 50) * 1000
        for p in (90, 99):
            summary[f"p{p}_{metric}_ms"] = percentile(xs, p) * 1000
    return summary


# -- sweeps -----------------------------------------------------------------------------


def _sweep(obj: Mapping[str, Any], path: str) -> Sweep:
    version = obj.get("version")
    if version not in _SWEEP_VERSIONS:
        raise UsageError(
            "unsupported sweep file",
            where=path,
            why=f"version {version!r}; this version of anyio-llmreq reads version 1",
        )
    points_in = obj.get("points")
    if not isinstance(points_in, list):
        raise UsageError("malformed sweep file", where=path, why="'points' is not a list")
    base = os.path.dirname(os.path.abspath(path))
    try:
        slo = tuple(_slo(s) for s in obj.get("slo") or ())
        points = tuple(_point(p, base, path) for p in points_in)
        sla_in = obj.get("sla")
        sla = Sla(param=str(sla_in["param"]), value=float(sla_in["value"])) if sla_in else None
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise UsageError("malformed sweep file", where=path, why=_why(exc)) from None
    stopped = obj.get("stopped")
    name = os.path.basename(base) or _stem(path)
    return Sweep(
        name=name,
        source=path,
        mode=str(obj.get("mode") or "list"),
        swept=tuple(str(s) for s in obj.get("swept") or ()),
        slo=slo,
        points=points,
        sla=sla,
        stopped=str(stopped) if stopped else None,
    )


def _slo(obj: Mapping[str, Any]) -> Slo:
    if obj["metric"] == "goodput":
        return Slo(metric="goodput", min_fraction=float(obj["min_fraction"]))
    return Slo(metric=str(obj["metric"]), stat=str(obj["stat"]), limit_ms=float(obj["limit_ms"]))


def _why(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing key {exc}"
    return str(exc)


def _point(obj: Mapping[str, Any], base: str, path: str) -> SweepPoint:
    files = tuple(str(f) for f in obj.get("files") or ())
    runs: list[Run] = []
    label = ", ".join(f"{k}={v}" for k, v in dict(obj["params"]).items())
    for i, name in enumerate(files):
        file_path = name if os.path.isabs(name) else os.path.join(base, name)
        try:
            loaded = _load_path(file_path)
        except UsageError as exc:
            raise UsageError(
                exc.what, where=f"{exc.where}, a point of {path}", why=exc.why
            ) from None
        if isinstance(loaded, Sweep):
            raise UsageError("not a result file", where=f"{file_path}, a point of {path}")
        for run in loaded:
            runs.append(attrs.evolve(run, name=f"{label} #{i + 1}" if len(files) > 1 else label))
    metrics = {
        str(key): Stat(
            mean=float(value["mean"]),
            ci_low=_finite(value.get("ci_low")),
            ci_high=_finite(value.get("ci_high")),
            n=int(value.get("n") or 1),
        )
        for key, value in dict(obj.get("metrics") or {}).items()
        if _finite(value.get("mean")) is not None
    }
    slo_ok = obj.get("slo_ok")
    return SweepPoint(
        params=dict(obj["params"]),
        files=files,
        metrics=metrics,
        slo_ok=None if slo_ok is None else bool(slo_ok),
        runs=tuple(runs),
    )


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
