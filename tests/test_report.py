"""``anyio-llmreq report``: every kind of input loads into the model, the right charts come
out (their Vega-Lite specs: marks, encodings, titles with units), the page is
self-contained, charts export as SVG and PNG, and mistakes are one-line UsageErrors that
name the file.

The helpers at the top (``make_result``, ``make_sweep``) write deterministic result files
and sweeps; tests/test_report_browser.py draws them in a browser.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from anyio_llmreq.bench import BenchConfig, run_benchmark
from anyio_llmreq.bench._config import UsageError
from anyio_llmreq.report import (
    Chart,
    ReportData,
    RequestTiming,
    Run,
    ServerMetrics,
    build_charts,
    load_inputs,
    write_report,
)
from anyio_llmreq.report._cli import add_parser
from anyio_llmreq.report._load import percentile

# -- deterministic inputs ---------------------------------------------------------------


def make_result(
    label: str | None,
    *,
    n: int = 120,
    seed: int = 0,
    ttft_ms: float = 40.0,
    itl_ms: float = 12.0,
    rate: float = 20.0,
    concurrency: int | None = None,
    fail_every: int = 0,
    detailed: bool = True,
    ours: bool = True,
    start_times: bool = True,
    server: bool = False,
    goodput_ms: float | None = 100.0,
) -> dict[str, Any]:
    """A bench result with *n* requests arriving at *rate*/s (at most *concurrency* at a
    time); TTFT and ITL grow with the requests in flight, so the charts have a shape.
    vLLM's keys, plus ours when *ours*."""
    rng = random.Random(seed)
    arrival = 0.0
    starts: list[float] = []
    ttfts: list[float] = []
    itls: list[list[float]] = []
    outs: list[int] = []
    ins: list[int] = []
    errors: list[str] = []
    ends: list[float] = []
    open_ends: list[float] = []  # a heap: the requests in flight
    for i in range(n):
        arrival += rng.expovariate(rate) if math.isfinite(rate) else 0.0
        t = arrival
        if concurrency is not None and len(open_ends) >= concurrency:
            t = max(t, heapq.heappop(open_ends))  # waits for a free slot
        while open_ends and open_ends[0] <= t:
            heapq.heappop(open_ends)
        in_flight = len(open_ends)
        starts.append(1000.0 + t)
        ins.append(rng.randint(200, 400))
        if fail_every and i % fail_every == fail_every - 1:
            errors.append("HTTP 503: Service Unavailable" if i % 2 else "ReadTimeout: no data")
            ttfts.append(0.0)
            itls.append([])
            outs.append(0)
            ends.append(t)
            continue
        ttft = ttft_ms / 1000 * (1 + 0.25 * in_flight) * rng.lognormvariate(0, 0.25)
        out = rng.randint(16, 48)
        slow = itl_ms / 1000 * (1 + in_flight / 16)
        gaps = [slow * rng.lognormvariate(0, 0.3) for _ in range(out - 1)]
        ttfts.append(ttft)
        itls.append(gaps)
        outs.append(out)
        errors.append("")
        ends.append(t + ttft + sum(gaps))
        heapq.heappush(open_ends, ends[-1])
    ok = [i for i in range(n) if not errors[i]]
    duration = max(ends) or 1.0
    result: dict[str, Any] = {
        "date": "20260101-120000",
        "endpoint_type": "openai",
        "backend": "openai",
        "label": label,
        "model_id": "org/model-7b",
        "tokenizer_id": "org/model-7b",
        "num_prompts": n,
        "request_rate": rate,
        "burstiness": 1.0,
        "max_concurrency": concurrency,
        "duration": duration,
        "completed": len(ok),
        "failed": n - len(ok),
        "total_input_tokens": sum(ins[i] for i in ok),
        "total_output_tokens": sum(outs[i] for i in ok),
        "request_throughput": len(ok) / duration,
        "request_goodput": (
            sum(1 for i in ok if ttfts[i] * 1000 <= goodput_ms) / duration
            if goodput_ms is not None
            else None
        ),
        "output_throughput": sum(outs[i] for i in ok) / duration,
        "total_token_throughput": sum(ins[i] + outs[i] for i in ok) / duration,
        "max_output_tokens_per_s": 900.0,
        "max_concurrent_requests": 12,
    }
    values = {
        "ttft": [ttfts[i] for i in ok],
        "tpot": [sum(itls[i]) / (outs[i] - 1) for i in ok],
        "itl": [g for i in ok for g in itls[i]],
        "e2el": [ttfts[i] + sum(itls[i]) for i in ok],
    }
    for metric, xs in values.items():
        xs = sorted(xs) or [0.0]  # vLLM writes zeros when nothing succeeded
        result[f"mean_{metric}_ms"] = sum(xs) / len(xs) * 1000
        result[f"median_{metric}_ms"] = percentile(xs, 50) * 1000
        result[f"std_{metric}_ms"] = 1.0
        for p in (90, 99):
            result[f"p{p}_{metric}_ms"] = percentile(xs, p) * 1000
    if detailed:
        result.update(
            input_lens=ins, output_lens=outs, ttfts=ttfts, itls=itls, errors=errors,
            generated_texts=["x"] * n,
        )  # fmt: skip
        if start_times:
            result["start_times"] = starts
    if ours:
        result.update(
            client_send_lag_p50_ms=0.4 + seed * 0.1, client_send_lag_p99_ms=2.5,
            client_send_lag_max_ms=6.0, client_loop_lag_p50_ms=0.3,
            client_loop_lag_p99_ms=1.8 + seed, client_loop_lag_max_ms=4.0,
            client_cpu_fraction=0.21, client_cpu_s=0.9, client_processes=1,
            client_cpu_includes_server=False, client_verdict="kept_up",
            client_warnings=[], client_advice=[], loop="asyncio", workers=1,
        )  # fmt: skip
    if server:
        spans = [(starts[i] - 1000.0, ends[i]) for i in ok]
        tokens = [
            starts[i] - 1000.0 + ttfts[i] + sum(itls[i][:k]) for i in ok for k in range(outs[i])
        ]
        firsts = [(starts[i] - 1000.0, ttfts[i]) for i in ok]
        result["server_metrics"] = make_server_metrics(spans, tokens, firsts, duration)
    return result


def make_server_metrics(
    spans: list[tuple[float, float]],
    tokens: list[float],
    firsts: list[tuple[float, float]],
    duration: float,
) -> dict[str, Any]:
    """What the bench's --server-metrics would store for a server batching 8 requests,
    scraped every 0.5 s: gauges as scraped, the counter as its rate between scrapes, the
    histogram as the mean observation between scrapes; one series without a human name;
    one failed scrape."""
    times = [i * 0.5 for i in range(int(duration / 0.5) + 2)]
    in_flight = [sum(1 for s, e in spans if s <= t < e) for t in times]
    model = '{model_name="org/model-7b"}'

    def series(kind: str, label: str | None, points: list[list[float]]) -> dict[str, Any]:
        return {"kind": kind, "label": label, "points": points, "mean": None, "max": None}

    rates, ttft_means = [], []
    for t0, t1 in zip(times, times[1:], strict=False):
        rates.append([t1, sum(1 for x in tokens if t0 < x <= t1) / (t1 - t0)])
        got = [ttft for start, ttft in firsts if t0 < start + ttft <= t1]
        if got:
            ttft_means.append([t1, sum(got) / len(got)])
    return {
        "endpoints": ["http://127.0.0.1:8000/metrics"],
        "interval_s": 0.5,
        "scrapes": len(times),
        "failures": [{"t_s": 3.0, "url": "http://127.0.0.1:8000/metrics", "error": "ReadTimeout"}],
        "series": {
            "process_resident_memory_bytes": series("gauge", None, [[t, 1e9] for t in times]),
            f"vllm:generation_tokens_total{model}": series("counter", "generation tokens", rates),
            f"vllm:kv_cache_usage_perc{model}": series(
                "gauge",
                "KV-cache usage",
                [[t, min(8, n) / 10] for t, n in zip(times, in_flight, strict=True)],
            ),
            f"vllm:num_requests_running{model}": series(
                "gauge",
                "running requests",
                [[t, float(min(8, n))] for t, n in zip(times, in_flight, strict=True)],
            ),
            f"vllm:num_requests_waiting{model}": series(
                "gauge",
                "queue depth",
                [[t, float(max(0, n - 8))] for t, n in zip(times, in_flight, strict=True)],
            ),
            f"vllm:time_to_first_token_seconds{model}": series(
                "histogram", "server TTFT", ttft_means
            ),
        },
    }


def write_json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


SLO = [{"metric": "ttft", "stat": "p99", "limit_ms": 250.0}]


def make_sweep(
    directory: Path,
    *,
    concurrency: tuple[int, ...] = (1, 2, 4, 8, 16, 32),
    input_lens: tuple[int, ...] = (),
    repeats: int = 2,
    sla: int | None = 8,
    n: int = 40,
) -> Path:
    """A sweep over max_concurrency (and random_input_len when *input_lens*): point files
    under ``runs/``, the metrics with a confidence interval over the repeats."""
    points = []
    grid = [(c, i) for c in concurrency for i in (input_lens or (None,))]
    for k, (conc, in_len) in enumerate(grid):
        params: dict[str, Any] = {"max_concurrency": conc}
        if in_len is not None:
            params["random_input_len"] = in_len
        files, results = [], []
        for r in range(repeats):
            scale = 1 + (in_len or 0) / 1024
            result = make_result(
                f"c{conc}", n=n, seed=100 * k + r, rate=math.inf, concurrency=conc,
                ttft_ms=20.0 * scale, itl_ms=8.0,
            )  # fmt: skip
            name = f"runs/point{k}-rep{r}.json"
            write_json(directory / name, result)
            files.append(name)
            results.append(result)
        metrics = {}
        for key in (
            "request_throughput", "output_throughput", "request_goodput", "p50_ttft_ms",
            "p90_ttft_ms", "p99_ttft_ms", "median_tpot_ms", "p99_tpot_ms", "p99_itl_ms",
            "median_e2el_ms", "p99_e2el_ms",
        ):  # fmt: skip
            source = "median_ttft_ms" if key == "p50_ttft_ms" else key
            xs = [res[source] for res in results]
            mean = sum(xs) / len(xs)
            half = (max(xs) - min(xs)) / 2 or mean * 0.02
            metrics[key] = {
                "mean": mean,
                "ci_low": mean - half,
                "ci_high": mean + half,
                "n": len(xs),
            }
        ok = metrics["p99_ttft_ms"]["mean"] <= SLO[0]["limit_ms"]
        points.append({"params": params, "files": files, "metrics": metrics, "slo_ok": ok})
    swept = ["max_concurrency"] + (["random_input_len"] if input_lens else [])
    sweep = {
        "kind": "anyio-llmreq-sweep",
        "version": 1,
        "mode": "sla" if sla is not None else "list",
        "swept": swept,
        "slo": SLO,
        "points": points,
        "sla": {"param": "max_concurrency", "value": sla} if sla is not None else None,
        "stopped": None,
    }
    return write_json(directory / "sweep.json", sweep)


# -- helpers ----------------------------------------------------------------------------


def requests_of(run: Run) -> tuple[RequestTiming, ...]:
    assert run.requests is not None
    return run.requests


def server_of(run: Run) -> ServerMetrics:
    assert run.server is not None
    return run.server


def search(pattern: str, text: str) -> str:
    found = re.search(pattern, text, re.S)
    assert found is not None, pattern
    return found[1]


def charts_by_id(data: ReportData) -> dict[str, Chart]:
    return {chart.id: chart for chart in build_charts(data)}


def walk(spec: Any) -> list[dict[str, Any]]:
    """Every object in a spec that has an ``encoding`` or a ``mark`` (the views)."""
    found = []
    if isinstance(spec, dict):
        if "mark" in spec or "encoding" in spec:
            found.append(spec)
        for value in spec.values():
            found += walk(value)
    elif isinstance(spec, list):
        for value in spec:
            found += walk(value)
    return found


def marks(spec: dict[str, Any]) -> set[str]:
    out = set()
    for view in walk(spec):
        mark = view.get("mark")
        if mark is not None:
            out.add(mark if isinstance(mark, str) else mark["type"])
    return out


def axis_titles(spec: dict[str, Any]) -> set[str]:
    titles = set()
    for view in walk(spec):
        for channel in ("x", "y"):
            enc = view.get("encoding", {}).get(channel)
            if isinstance(enc, dict):
                title = enc.get("title") or (enc.get("axis") or {}).get("title")
                if title:
                    titles.add(title)
    return titles


def data_rows(spec: dict[str, Any], view: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The rows of *spec*'s datasets, or only those *view* refers to."""
    datasets = spec["datasets"]
    if view is not None:
        return list(datasets[view["data"]["name"]])
    return [row for rows in datasets.values() for row in rows]


UNIT = re.compile(r"\(.+\)|/s\b|fraction|share|^(requests|tokens|bytes)$")


def assert_titled_with_units(chart: Chart) -> None:
    """Every x/y encoding of a field has a title, and a quantity's title its unit."""
    for view in walk(chart.spec):
        for channel in ("x", "y"):
            enc = view.get("encoding", {}).get(channel)
            if not isinstance(enc, dict) or "field" not in enc:
                continue
            axis = enc.get("axis") or {}
            if axis.get("labels") is False:  # a stacked panel: the bottom one has the title
                continue
            title = enc.get("title") or axis.get("title")
            assert title, (chart.id, channel, enc)
            if enc.get("type") == "quantitative":
                assert UNIT.search(title), (chart.id, title)


def validate(chart: Chart) -> None:
    """Check *chart*'s spec against the Vega-Lite schema altair writes for."""
    import importlib

    import altair
    from altair.utils.schemapi import validate_jsonschema

    major = altair.SCHEMA_VERSION.lstrip("v").split(".")[0]
    core = importlib.import_module(f"altair.vegalite.v{major}.schema.core")
    # The rows are plain objects: a few of each dataset check as much as all of them.
    datasets = {name: rows[:5] for name, rows in chart.spec.get("datasets", {}).items()}
    validate_jsonschema({**chart.spec, "datasets": datasets}, core.load_schema())


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mock_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real bench run on the embedded mock server: result with the per-request lists,
    an --append-result file of two runs, and the JSONL log."""
    directory = tmp_path_factory.mktemp("mock")
    common: dict[str, Any] = {
        "num_prompts": 12, "mock_ttft": 0.0, "mock_itl": 0.0, "random_input_len": 16,
        "random_output_len": 4, "request_rate": float("inf"), "disable_tqdm": True,
        "quiet": True, "result_dir": str(directory), "goodput": {"ttft": 1000.0},
    }  # fmt: skip
    detailed = run_benchmark(
        BenchConfig(
            **common,
            save_result=True,
            save_detailed=True,
            label="mock",
            result_filename="detailed.json",
            output_jsonl=str(directory / "requests.jsonl"),
        )  # fmt: skip
    )
    for _ in range(2):
        run_benchmark(
            BenchConfig(
                **common, append_result=True, label="appended", result_filename="append.json"
            )
        )
    return {
        "result": detailed,
        "detailed": directory / "detailed.json",
        "append": directory / "append.json",
        "jsonl": directory / "requests.jsonl",
    }


@pytest.fixture(scope="module")
def sweep_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sweep(tmp_path_factory.mktemp("sweeps") / "conc")


# -- loading ----------------------------------------------------------------------------


def test_our_detailed_result(mock_run):
    data = load_inputs([mock_run["detailed"]])
    (run,) = data.runs
    assert run.kind == "anyio-llmreq"
    assert run.name == "mock"
    assert run.detailed and run.timed
    assert len(requests_of(run)) == 12
    assert all(r.success and r.start is not None and r.start >= 0 for r in requests_of(run))
    assert min(r.start or 0.0 for r in requests_of(run)) == 0
    assert "ttfts" not in run.summary and run.summary["completed"] == 12
    charts = charts_by_id(data)
    expected = {
        "latency-summary", "throughput-summary", "ttft-cdf", "ttft-histogram", "tpot-cdf",
        "itl-cdf", "e2el-cdf", "ttft-over-time", "itl-over-time", "in-flight-over-time",
        "tokens-over-time", "client-lag", "ttft-split",
    }  # fmt: skip
    assert expected <= set(charts)
    assert "errors-over-time" not in charts  # nothing failed
    assert "server-metrics" not in charts


def test_a_benchmark_result_object_and_a_dict_load_as_runs(mock_run):
    result = mock_run["result"]
    data = load_inputs([result, dict(result.result, label="as dict")])
    assert [r.name for r in data.runs] == ["mock", "as dict"]
    assert data.runs[0].source == result.result_path
    assert data.runs[1].source == "<result>"


def test_append_result_file_is_one_run_per_object(mock_run):
    data = load_inputs([mock_run["append"]])
    assert [r.name for r in data.runs] == ["appended #1", "appended #2"]
    assert not any(r.detailed for r in data.runs)
    charts = charts_by_id(data)
    # Without the per-request lists: the summary charts only.
    assert set(charts) == {"latency-summary", "throughput-summary", "ttft-split", "client-lag"}


def test_jsonl_log_gives_the_same_figures_as_the_result(mock_run):
    data = load_inputs([mock_run["jsonl"], mock_run["detailed"]])
    log, result = data.runs
    assert log.kind == "jsonl" and log.name == "requests"
    assert log.summary["completed"] == result.summary["completed"] == 12
    for key in ("mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms", "mean_itl_ms"):
        assert log.summary[key] == pytest.approx(result.summary[key], rel=1e-6), key
    ttfts = [r.ttft for r in requests_of(result)]
    assert [r.ttft for r in requests_of(log)] == pytest.approx(ttfts)


def test_vllm_result_without_start_times(tmp_path):
    result = make_result(None, ours=False, start_times=False, fail_every=7)
    result["request_rate"] = "inf"  # vLLM writes the string
    path = write_json(tmp_path / "openai-infqps-model-7b-20260101-120000.json", result)
    data = load_inputs([path])
    (run,) = data.runs
    assert run.kind == "vllm"
    assert run.name == "openai-infqps-model-7b-20260101-120000"  # no label: the file's name
    assert run.detailed and not run.timed
    assert sum(not r.success for r in requests_of(run)) == 120 // 7
    charts = charts_by_id(data)
    assert "ttft-cdf" in charts and "latency-summary" in charts
    assert not {"ttft-over-time", "in-flight-over-time", "client-lag"} & set(charts)
    page = write_report([path], tmp_path / "r.html")
    html = Path(page.path).read_text()
    assert "no request start times" in html
    assert "no self-check" in html or "self-check comes with anyio-llmreq" in html
    assert "HTTP 503: Service Unavailable" in html  # the errors table


def test_server_metrics_share_the_time_axis(tmp_path):
    path = write_json(tmp_path / "a.json", make_result("with-server", server=True))
    data = load_inputs([path])
    (run,) = data.runs
    assert len(server_of(run).series) == 6
    assert server_of(run).failures == ("http://127.0.0.1:8000/metrics at 3 s: ReadTimeout",)
    chart = charts_by_id(data)["server-metrics"]
    panels = chart.spec["vconcat"]
    # The client's token rate, then the named series in reading order; the unnamed one
    # (process memory) is left out and the note says so.
    assert [(p["title"]["text"], p["encoding"]["y"]["title"]) for p in panels] == [
        ("client: output tokens", "tokens/s"),
        ("queue depth", "requests"),
        ("running requests", "requests"),
        ("KV-cache usage", "fraction"),
        ("generation tokens", "tokens/s"),
        ("server TTFT", "mean (ms)"),
    ]
    assert "1 more series in the result files, not drawn" in json.dumps(chart.spec["title"])
    domains = {json.dumps(p["encoding"]["x"]["scale"]["domain"]) for p in panels}
    assert len(domains) == 1  # one time axis
    by_key = {s.name: s for s in server_of(run).series}
    counter = by_key['vllm:generation_tokens_total{model_name="org/model-7b"}'].points
    rows = [(row["t"], row["value"]) for row in data_rows(chart.spec, panels[4])]
    assert rows == list(counter)  # already a rate: drawn as stored
    histogram = by_key['vllm:time_to_first_token_seconds{model_name="org/model-7b"}'].points
    rows = [(row["t"], row["value"]) for row in data_rows(chart.spec, panels[5])]
    assert [t for t, _ in rows] == [t for t, _ in histogram]
    assert [v for _, v in rows] == pytest.approx([v * 1000 for _, v in histogram])  # s -> ms
    assert panels[-1]["encoding"]["x"]["axis"]["title"] == "time since the run's first request (s)"
    assert all(p["encoding"]["x"]["axis"].get("labels") is False for p in panels[:-1])
    html = Path(write_report([path], tmp_path / "r.html").path).read_text()
    assert "1 server metrics scrape(s) failed" in html


def test_server_metrics_of_a_real_run(tmp_path):
    """The bench's own --server-metrics output, scraped from the mock's /metrics."""
    result = run_benchmark(
        BenchConfig(
            num_prompts=30,
            mock_ttft=0.01,
            mock_itl=0.005,
            random_input_len=16,
            random_output_len=20,
            request_rate=200.0,
            disable_tqdm=True,
            quiet=True,
            save_detailed=True,
            server_metrics=(),
            server_metrics_interval=50.0,
        )  # fmt: skip
    )
    data = load_inputs([result])
    chart = charts_by_id(data)["server-metrics"]
    validate(chart)
    titles = [p["title"]["text"] for p in chart.spec["vconcat"]]
    assert titles[:3] == ["client: output tokens", "queue depth", "running requests"]
    assert "server TTFT" in titles
    # Two label sets of one counter, told apart by the label that differs.
    assert "successful requests [finished_reason=length]" in titles
    assert_titled_with_units(chart)


# -- charts -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> ReportData:
    directory = tmp_path_factory.mktemp("two")
    a = write_json(directory / "a.json", make_result("baseline", seed=1, fail_every=9))
    b = write_json(directory / "b.json", make_result("candidate", seed=2, ttft_ms=25.0))
    return load_inputs([a, b])


def test_run_charts_overlay_the_runs(two_runs):
    charts = charts_by_id(two_runs)
    for chart in charts.values():
        assert_titled_with_units(chart)
        validate(chart)
    cdf = charts["ttft-cdf"].spec
    assert marks(cdf) == {"line"}
    assert cdf["mark"]["interpolate"] == "step-after"
    assert cdf["encoding"]["x"] == {"field": "ms", "title": "TTFT (ms)", "type": "quantitative"}
    assert cdf["encoding"]["color"]["scale"]["domain"] == ["baseline", "candidate"]
    rows = data_rows(cdf)
    assert {r["run"] for r in rows} == {"baseline", "candidate"}
    assert max(r["fraction"] for r in rows) == 1.0
    hist = charts["itl-histogram"].spec
    assert marks(hist) == {"bar"} and "x2" in hist["encoding"]
    assert hist["encoding"]["y"]["title"] == "share of token gaps"
    shares: dict[str, float] = {}
    for row in data_rows(hist):
        shares[row["run"]] = shares.get(row["run"], 0.0) + row["share"]
    assert shares == pytest.approx({"baseline": 1.0, "candidate": 1.0})
    scatter = charts["ttft-over-time"].spec
    assert marks(scatter) == {"circle"}
    assert scatter["encoding"]["x"]["title"] == "time since the run's first request (s)"
    summary = charts["latency-summary"].spec
    assert summary["facet"]["column"]["field"] == "metric"
    assert {r["stat"] for r in data_rows(summary)} == {"mean", "median", "p90", "p99"}
    # std is not a latency statistic to draw
    titles = set().union(*(axis_titles(c.spec) for c in charts.values()))
    assert {"requests/s", "tokens/s", "send lag (ms)", "event-loop lag (ms)"} <= titles


def test_errors_chart_groups_messages_over_time(two_runs):
    chart = charts_by_id(two_runs)["errors-over-time"]
    rows = data_rows(chart.spec)
    assert {r["run"] for r in rows} == {"baseline"}
    assert {r["message"] for r in rows} == {
        "HTTP 503: Service Unavailable", "ReadTimeout: no data"
    }  # fmt: skip
    assert sum(r["failed"] for r in rows) == 120 // 9
    assert marks(chart.spec) == {"bar"}


def test_in_flight_and_token_rate_integrate_to_the_totals(two_runs):
    charts = charts_by_id(two_runs)
    step = float(search(r"intervals of ([\d.]+) s", json.dumps(charts["tokens-over-time"].spec)))
    for run in two_runs.runs:
        tokens = [
            r["value"] for r in data_rows(charts["tokens-over-time"].spec) if r["run"] == run.name
        ]
        assert sum(tokens) * step == pytest.approx(run.summary["total_output_tokens"])
        busy = [
            r["value"]
            for r in data_rows(charts["in-flight-over-time"].spec)
            if r["run"] == run.name
        ]
        total_latency = sum(r.latency for r in requests_of(run) if r.success)
        assert sum(busy) * step == pytest.approx(total_latency)


def test_big_runs_are_thinned_and_say_so(tmp_path):
    big = make_result("big", n=4500, rate=500.0, detailed=True)
    data = load_inputs([big])
    charts = charts_by_id(data)
    assert len(data_rows(charts["ttft-cdf"].spec)) <= 300
    scatter = charts["ttft-over-time"]
    assert len(data_rows(scatter.spec)) <= 4000
    assert "every 2nd request shown" in json.dumps(scatter.spec["title"])


def test_sweep_loads_its_points(sweep_path):
    data = load_inputs([sweep_path.parent])  # the sweep's directory will do
    (sweep,) = data.sweeps
    assert not data.runs
    assert sweep.name == "conc" and sweep.mode == "sla"
    assert sweep.swept == ("max_concurrency",)
    assert [p.params["max_concurrency"] for p in sweep.points] == [1, 2, 4, 8, 16, 32]
    assert all(len(p.runs) == 2 and p.runs[0].detailed for p in sweep.points)
    assert sweep.slo[0].key == "p99_ttft_ms"
    assert sweep.sla is not None
    assert sweep.sla.param == "max_concurrency" and sweep.sla.value == 8
    stat = sweep.points[0].metrics["p99_ttft_ms"]
    assert stat.ci_low is not None and stat.ci_high is not None
    assert stat.n == 2 and stat.ci_low < stat.mean < stat.ci_high


def test_a_sweep_the_sweep_command_wrote(tmp_path):
    """``anyio_llmreq.sweep``'s own files: a list sweep on the mock, a latency SLO on P50
    (the bench's ``median`` key) and a goodput SLO."""
    import io

    from anyio_llmreq.sweep import ParameterSpace, SweepConfig, parse_slo, run_sweep

    bench = BenchConfig(
        num_prompts=8, mock_ttft=0.0, mock_itl=0.0, random_input_len=16, random_output_len=4,
        disable_tqdm=True, quiet=True, goodput={"ttft": 1000.0},
    )  # fmt: skip
    run_sweep(
        SweepConfig(
            bench=bench,
            mode="list",
            output_dir=str(tmp_path / "real"),
            space=ParameterSpace.of([("max_concurrency", (1, 4))]),
            slos=(parse_slo("ttft:p50:1000"), parse_slo("goodput:0.5")),
        ),
        stdout=io.StringIO(),
    )
    report = write_report([tmp_path / "real"], tmp_path / "r.html")
    (sweep,) = report.data.sweeps
    assert [s.key for s in sweep.slo] == ["median_ttft_ms", None]
    assert [p.params["max_concurrency"] for p in sweep.points] == [1, 4]
    assert all(p.slo_ok for p in sweep.points) and all(p.runs for p in sweep.points)
    charts = {c.id: c for c in report.charts}
    assert {"sweep-ttft", "sweep-goodput", "sweep-real-ttft-cdf"} <= set(charts)
    assert {"limit": 1000.0, "text": "SLO: p50 TTFT ≤ 1000 ms"} in data_rows(
        charts["sweep-ttft"].spec
    )
    html = Path(report.path).read_text()
    assert "goodput ≥ 50% of the requests" in html


def test_sweep_charts_mark_the_slo_and_the_sla(sweep_path):
    charts = charts_by_id(load_inputs([sweep_path]))
    assert {"sweep-ttft", "sweep-tpot", "sweep-itl", "sweep-e2el", "sweep-goodput",
            "sweep-conc-ttft-cdf"} <= set(charts)  # fmt: skip
    assert "sweep-pareto" not in charts  # one swept parameter
    for chart in charts.values():
        assert_titled_with_units(chart)
        validate(chart)
    ttft = charts["sweep-ttft"].spec
    assert ttft["layer"][0]["encoding"]["x"]["title"] == "output throughput (tok/s)"
    assert {r["stat"] for r in data_rows(ttft) if "stat" in r} == {"p50", "p90", "p99"}
    slo = [layer for layer in ttft["layer"] if "limit" in json.dumps(layer.get("encoding"))]
    assert data_rows(ttft, slo[0]) == [{"limit": 250.0, "text": "SLO: p99 TTFT ≤ 250 ms"}]
    assert marks({"layer": slo}) == {"rule", "text"}
    sla_rows = [r for r in data_rows(ttft) if r.get("sla")]
    assert {r["label"] for r in sla_rows} == {"max_concurrency=8"}
    diamond = [
        v
        for v in walk(ttft)
        if isinstance(v.get("mark"), dict) and v["mark"].get("shape") == "diamond"
    ]
    assert diamond and diamond[0]["transform"] == [{"filter": "datum.sla"}]
    goodput = charts["sweep-goodput"].spec
    assert goodput["layer"][0]["encoding"]["x"]["title"] == "max concurrency (requests)"
    assert {r["what"] for r in data_rows(goodput) if "what" in r} == {"goodput", "throughput"}
    assert {"load": 8.0, "text": "SLA: max_concurrency=8"} in data_rows(goodput)


def test_pareto_highlights_the_non_dominated_points(tmp_path):
    path = make_sweep(
        tmp_path / "grid", concurrency=(2, 8, 32), input_lens=(256, 2048), repeats=1, sla=None
    )
    data = load_inputs([path])
    chart = charts_by_id(data)["sweep-pareto"]
    validate(chart)
    rows = data_rows(chart.spec)
    assert len(rows) == 6
    for row in rows:
        beaten = any(
            o["x"] >= row["x"] and o["y"] <= row["y"] and (o["x"] > row["x"] or o["y"] < row["y"])
            for o in rows
        )
        assert row["frontier"] is (not beaten)
    assert any(r["frontier"] for r in rows) and not all(r["frontier"] for r in rows)
    assert "p99 TTFT (ms)" in axis_titles(chart.spec)  # the SLO's metric
    # Two swept parameters: one line per input length in the latency charts.
    ttft = charts_by_id(data)["sweep-ttft"]
    assert {r["series"] for r in data_rows(ttft.spec) if "series" in r} == {
        "random_input_len=256", "random_input_len=2048"
    }  # fmt: skip


def test_sweeps_and_runs_together(sweep_path, tmp_path):
    other = make_sweep(tmp_path / "other", concurrency=(1, 4, 16), repeats=1, sla=4)
    run = write_json(tmp_path / "run.json", make_result("single"))
    data = load_inputs([sweep_path, other, run])
    assert [s.name for s in data.sweeps] == ["conc", "other"]
    charts = charts_by_id(data)
    series = {r["series"] for r in data_rows(charts["sweep-ttft"].spec) if "series" in r}
    assert series == {"conc", "other"}
    assert "ttft-cdf" in charts


# -- the page ---------------------------------------------------------------------------

NETWORK_REF = re.compile(
    r"<script[^>]*\bsrc=|<link[^>]*\bhref=|@import|url\(\s*['\"]?(?:https?:)?//", re.I
)


def test_page_is_self_contained(two_runs, sweep_path, tmp_path):
    a, b = (r.source for r in two_runs.runs)
    report = write_report([sweep_path, a, b], tmp_path / "out" / "report.html", title="A vs B")
    html = Path(report.path).read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert NETWORK_REF.search(html) is None
    assert "vegaEmbed" in html and "<title>A vs B</title>" in html
    specs_text = search(r'<script type="application/json" id="report-specs">(.*?)</script>', html)
    specs = json.loads(specs_text)
    ids = re.findall(r'<figure class="chart" id="([^"]+)"', html)
    assert ids == list(specs) == [f"chart-{c.id}" for c in report.charts]
    assert "Sweeps" in html and "SLA: max_concurrency = 8" in html
    assert "kept up" in html  # the self-check verdict


def test_page_escapes_what_files_say(tmp_path):
    evil = "</script><script>alert(1)</script>"
    result = make_result(evil, n=20, fail_every=3)
    result["errors"] = [e and evil for e in result["errors"]]
    result["request_rate"] = float("inf")
    path = tmp_path / "evil.json"
    path.write_text(json.dumps(result))  # Infinity, as our result files write it
    html = Path(write_report(path, tmp_path / "r.html").path).read_text()  # one: no list
    assert html.count("<script>alert(1)") == 0
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in html
    assert ">inf<" in html


def test_summary_only_runs_say_so(mock_run, tmp_path):
    html = Path(write_report([mock_run["append"]], tmp_path / "r.html").path).read_text()
    assert "summary charts only" in html


# -- export -----------------------------------------------------------------------------


def test_svg_and_png_export(mock_run, tmp_path):
    report = write_report([mock_run["append"]], tmp_path / "r.html", svg_dir=tmp_path / "svg")
    assert sorted(Path(p).name for p in report.images) == [
        "client-lag.svg", "latency-summary.svg", "throughput-summary.svg", "ttft-split.svg"
    ]  # fmt: skip
    for path in report.images:
        root = ET.parse(path).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        text = Path(path).read_text()
        assert "http://" not in text.replace("http://www.w3.org/", "")
    assert "latency (ms)" in Path(tmp_path / "svg" / "latency-summary.svg").read_text()
    from PIL import Image

    from anyio_llmreq.report import export_charts

    (png,) = export_charts(report.charts[:1], tmp_path / "png", "png", scale=1.0)
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as image:
        assert image.width > 400 and image.height > 200


def test_the_javascript_is_built_once_and_kept(monkeypatch):
    import vl_convert

    from anyio_llmreq.report import _export

    first = _export.javascript_bundle()
    assert "vegaEmbed" in first and "</script" not in first
    _export.javascript_bundle.cache_clear()

    def rebuilt(**_: Any) -> str:
        raise AssertionError("built again: the cached copy was not used")

    monkeypatch.setattr(vl_convert, "javascript_bundle", rebuilt)
    try:
        assert _export.javascript_bundle() == first
    finally:
        _export.javascript_bundle.cache_clear()


# -- mistakes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "what"),
    [
        ("{not json", "not JSON"),
        ("", "not JSON"),
        ('{"foo": 1}', "unknown file shape"),
        ("[1, 2]", "unknown file shape"),
        ('{"kind": "anyio-llmreq-sweep", "version": 2, "points": []}', "unsupported sweep file"),
        (
            '{"kind": "anyio-llmreq-sweep", "version": 1, "points": [{"files": []}]}',
            "malformed sweep",
        ),
        ('{"duration": 1, "completed": 1, "ttfts": [0.1], "itls": [[], []]}', "malformed result"),
    ],
)
def test_bad_files_are_usage_errors_naming_the_file(tmp_path, content, what):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(UsageError) as caught:
        load_inputs([path])
    message = str(caught.value)
    assert what in message and str(path) in message
    assert "\n" not in message


def test_missing_files(tmp_path):
    with pytest.raises(UsageError, match=r"no such file \(.*nope\.json\)"):
        load_inputs([tmp_path / "nope.json"])
    sweep = json.loads(make_sweep(tmp_path / "s", concurrency=(1,), repeats=1).read_text())
    sweep["points"][0]["files"] = ["runs/gone.json"]
    path = write_json(tmp_path / "s" / "sweep.json", sweep)
    with pytest.raises(UsageError) as caught:
        load_inputs([path])
    assert "gone.json" in str(caught.value) and str(path) in str(caught.value)
    with pytest.raises(UsageError, match="nothing to report"):
        load_inputs([])
    with pytest.raises(UsageError, match=r"not a file \(.*\): it is a directory"):
        load_inputs([tmp_path])


def test_missing_extra_says_how_to_install(monkeypatch, two_runs):
    monkeypatch.setitem(sys.modules, "altair", None)
    with pytest.raises(UsageError, match=r"pip install 'anyio-llmreq\[report\]'"):
        build_charts(two_runs)


def test_import_is_light():
    code = (
        "import sys, anyio_llmreq.report;print(sorted({'altair', 'vl_convert'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- the command ------------------------------------------------------------------------


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="anyio-llmreq")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    status: int = args.func(args)
    return status


def test_cli_writes_the_page_and_images(mock_run, tmp_path, capsys):
    out = tmp_path / "page.html"
    status = run_cli(
        ["report", str(mock_run["append"]), "-o", str(out), "--svg", str(tmp_path / "svg")]
    )
    assert status == 0
    assert out.exists() and len(list((tmp_path / "svg").glob("*.svg"))) == 4
    printed = capsys.readouterr().out
    assert f"Wrote {out} (4 charts)." in printed
    assert "Wrote 4 images to" in printed


def test_cli_errors_are_one_line(tmp_path, capsys):
    status = run_cli(["report", str(tmp_path / "missing.json"), "-o", str(tmp_path / "r.html")])
    assert status == 2
    err = capsys.readouterr().err
    assert err == f"anyio-llmreq report: error: no such file ({tmp_path / 'missing.json'})\n"
    assert not (tmp_path / "r.html").exists()
    with pytest.raises(SystemExit) as caught:
        run_cli(["report", "x.json", "--svg", "a", "--png", "b"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not allowed with argument" in err


def test_percentile_matches_numpy():
    import numpy as np

    values = sorted(random.Random(3).random() for _ in range(101))
    for p in (0, 1, 50, 90, 99, 99.9, 100):
        assert percentile(values, p) == pytest.approx(float(np.percentile(values, p)))
    assert math.isnan(percentile([], 50))


def test_bench_and_sweep_write_their_report_at_the_end(tmp_path: Path) -> None:
    from anyio_llmreq._cli import main

    fast = ["--num-prompts", "4", "--mock-ttft", "0", "--mock-itl", "0", "--disable-tqdm",
            "--random-input-len", "4", "--random-output-len", "2"]  # fmt: skip
    run_page = tmp_path / "run.html"
    assert main(["bench", *fast, "--report", str(run_page)]) == 0
    page = run_page.read_text()
    assert "vega" in page and "summary charts only" not in page and "CDF" in page
    sweep_page = tmp_path / "sweep.html"
    sweep_dir = tmp_path / "sweep"
    argv = ["sweep", *fast, "--concurrency", "1,2", "--output-dir", str(sweep_dir)]
    assert main([*argv, "--report", str(sweep_page)]) == 0
    assert sweep_page.read_text().count("max_concurrency") >= 1
    # The points themselves wrote no page of their own.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.html", "sweep", "sweep.html"]


def test_a_missing_report_extra_is_said_before_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    from anyio_llmreq._cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "altair" else real(name, *a)
    )
    assert main(["bench", "--num-prompts", "2", "--report", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert "anyio-llmreq[report]" in err and "--report" in err
    assert not (tmp_path / "r.html").exists()
