"""``anyio-llmreq sweep`` against the mock server: list sweeps and their product, the
saturation profile, the SLA search against a server with a known knee (the mock's
``capacity``), repeats and their intervals, resume, interruption, the ``sweep.json``
schema, usage errors and exit codes; and the mock server's load-dependent timing."""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import anyio
import numpy as np
import pytest

from anyio_llmreq import Client
from anyio_llmreq.bench import BenchConfig
from anyio_llmreq.bench._config import UsageError
from anyio_llmreq.sweep import (
    BracketSearch,
    GoodputSLO,
    LatencySLO,
    ParameterSpace,
    SweepConfig,
    Tolerance,
    arun_sweep,
    mean_ci,
    over_saturation,
    parse_slo,
    saturation_rates,
    t_critical,
)
from anyio_llmreq.sweep._cli import main
from anyio_llmreq.sweep._saturation import throughput_plateau, ttft_trend
from anyio_llmreq.sweep._sla import goodput_fraction
from anyio_llmreq.testing import MockBehaviour, MockServerThread, open_mock_server

# Fast timing: a few ms per request.
FAST = MockBehaviour(ttft=0.002, itl=0.001)
COMMON = [
    "--model", "mock-model", "--tokenizer-mode", "words", "--random-input-len", "8",
    "--random-output-len", "4", "--num-prompts", "6", "--disable-tqdm",
]  # fmt: skip
TOP_KEYS = {"kind", "version", "mode", "swept", "slo", "points", "sla", "stopped"}
POINT_KEYS = {"params", "files", "metrics", "slo_ok"}


def sweep(server, out, *args):
    return main(["--base-url", server.base_url, *COMMON, "--output-dir", str(out), *args])


def document(out):
    with open(os.path.join(out, "sweep.json")) as f:
        return json.load(f)


def point_results(out, point):
    results = []
    for name in point["files"]:
        with open(os.path.join(out, name)) as f:
            results.append(json.load(f))
    return results


def generations(server):
    """The measured requests the server received (not the bench's one-token probe)."""
    return [
        r
        for r in server.requests
        if r.path.endswith("/completions")
        and not (r.header("x-request-id") or "").endswith("-probe")
    ]


def check_schema(doc):
    assert set(doc) == TOP_KEYS
    assert doc["kind"] == "anyio-llmreq-sweep" and doc["version"] == 1
    for point in doc["points"]:
        assert set(point) == POINT_KEYS
        for summary in point["metrics"].values():
            assert set(summary) == {"mean", "ci_low", "ci_high", "n"}
            assert summary["ci_low"] <= summary["mean"] <= summary["ci_high"]


# --- list sweeps ---------------------------------------------------------------------


def test_list_sweep_is_the_cartesian_product(tmp_path, capsys):
    out = tmp_path / "s"
    with MockServerThread(FAST) as server:
        status = sweep(server, out, "--concurrency", "1,2", "--sweep", "random_output_len=2,3")
        requests = generations(server)
    assert status == 0
    doc = document(out)
    check_schema(doc)
    assert doc["mode"] == "list" and doc["swept"] == ["max_concurrency", "random_output_len"]
    assert doc["slo"] == [] and doc["sla"] is None and doc["stopped"] is None
    params = [p["params"] for p in doc["points"]]
    assert params == [
        {"max_concurrency": c, "random_output_len": n} for c in (1, 2) for n in (2, 3)
    ]
    assert len(requests) == 4 * 6
    for point in doc["points"]:
        (result,) = point_results(out, point)
        assert point["slo_ok"] is None
        assert result["max_concurrency"] == point["params"]["max_concurrency"]
        assert result["request_rate"] == "inf"  # a concurrency is swept at rate inf
        assert result["output_lens"] == [point["params"]["random_output_len"]] * 6
        assert result["completed"] == 6 and len(result["start_times"]) == 6
        metrics = point["metrics"]
        for key in ("request_throughput", "output_throughput", "mean_ttft_ms", "p99_ttft_ms",
                    "median_tpot_ms", "mean_itl_ms", "mean_e2el_ms"):  # fmt: skip
            assert metrics[key]["n"] == 1
            assert metrics[key]["mean"] == pytest.approx(result[key])
            assert metrics[key]["ci_low"] == metrics[key]["ci_high"] == metrics[key]["mean"]
        assert "request_goodput" not in metrics  # no --goodput: the bench writes None
    text = capsys.readouterr().out
    assert "[4/4] max_concurrency=2 random_output_len=3:" in text
    assert "============ Sweep (list) ============" in text
    assert "max_concurrency  random_output_len" in text


def test_request_rate_list_writes_inf_as_text(tmp_path):
    out = tmp_path / "s"
    with MockServerThread(FAST) as server:
        assert sweep(server, out, "--request-rate", "400,inf") == 0
    doc = document(out)
    assert [p["params"] for p in doc["points"]] == [
        {"request_rate": 400.0},
        {"request_rate": "inf"},
    ]
    rates = [point_results(out, p)[0]["request_rate"] for p in doc["points"]]
    assert rates == [400.0, "inf"]
    assert doc["points"][0]["files"] == ["points/request_rate=400-run0.json"]


def test_space_product_order_and_duplicate_axes():
    space = ParameterSpace.of([("a", (1, 2)), ("b", ("x", "y", "z"))])
    assert len(space) == 6
    assert list(space)[:4] == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 1, "b": "z"},
        {"a": 2, "b": "x"},
    ]
    with pytest.raises(UsageError, match="swept twice"):
        ParameterSpace.of([("max_concurrency", (1,)), ("max_concurrency", (2,))])


# --- repeats and statistics ----------------------------------------------------------


def test_repeat_gives_means_and_95_percent_intervals(tmp_path):
    out = tmp_path / "s"
    with MockServerThread(FAST) as server:
        assert sweep(server, out, "--concurrency", "2", "--repeat", "3", "--seed", "7") == 0
        requests = generations(server)
    (point,) = document(out)["points"]
    assert point["files"] == [f"points/max_concurrency=2-run{k}.json" for k in range(3)]
    # Each repeat its own seed: three different prompt sets.
    runs: dict[str, list[str]] = {}
    for r in requests:
        runs.setdefault(r.header("x-request-id").rsplit("-", 1)[0], []).append(r.json["prompt"])
    assert len(runs) == 3
    assert len({tuple(sorted(p)) for p in runs.values()}) == 3
    t2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)  # t(0.975, 2), closed form
    results = point_results(out, point)
    for key, summary in point["metrics"].items():
        values = np.array([r[key] for r in results], dtype=float)
        half = t2 * np.std(values, ddof=1) / math.sqrt(3)
        assert summary["n"] == 3
        assert summary["mean"] == pytest.approx(np.mean(values))
        assert summary["ci_low"] == pytest.approx(np.mean(values) - half)
        assert summary["ci_high"] == pytest.approx(np.mean(values) + half)


def test_t_quantiles_and_intervals_match_closed_forms_and_numpy():
    assert t_critical(1) == pytest.approx(math.tan(0.475 * math.pi), rel=1e-9)
    assert t_critical(2) == pytest.approx(0.95 / math.sqrt(2 * 0.975 * 0.025), rel=1e-9)
    # The expansion past the table agrees with the table where they meet, and tends to z.
    assert abs(t_critical(31) - t_critical(30)) < 0.003
    assert t_critical(1000) == pytest.approx(1.962339, abs=1e-5)
    assert all(t_critical(n) > t_critical(n + 1) for n in range(1, 100))
    data = [3.0, 4.5, 2.25, 5.0, 4.0]
    summary = mean_ci(data)
    half = t_critical(4) * np.std(data, ddof=1) / math.sqrt(5)
    assert summary.mean == pytest.approx(np.mean(data))
    assert (summary.ci_low, summary.ci_high) == pytest.approx(
        (np.mean(data) - half, np.mean(data) + half)
    )
    one = mean_ci([2.0])
    assert (one.mean, one.ci_low, one.ci_high, one.n) == (2.0, 2.0, 2.0, 1)
    with pytest.raises(ValueError, match="degrees"):
        t_critical(0)


# --- SLOs and the SLA search ---------------------------------------------------------


def test_slo_parsing():
    assert parse_slo("ttft:p99:500") == LatencySLO(metric="ttft", stat="p99", limit_ms=500.0)
    assert parse_slo("TPOT:p50:50").key == "median_tpot_ms"
    assert parse_slo("itl:p99.9:5ms").key == "p99.9_itl_ms"
    assert parse_slo("e2el:mean:1000").percentile is None
    assert parse_slo("goodput:0.9") == GoodputSLO(min_fraction=0.9)
    assert parse_slo("goodput:95%") == GoodputSLO(min_fraction=0.95)
    assert parse_slo("ttft:p99:500").to_json() == {
        "metric": "ttft",
        "stat": "p99",
        "limit_ms": 500.0,
    }
    assert parse_slo("goodput:0.9").to_json() == {"metric": "goodput", "min_fraction": 0.9}
    for bad in ("ttft:p99", "ttfx:p99:5", "ttft:p101:5", "ttft:q9:5", "ttft:p99:0",
                "ttft:p99:x", "goodput:0", "goodput:2", "goodput"):  # fmt: skip
        with pytest.raises(UsageError, match=r"invalid SLO .*\(--slo\)"):
            parse_slo(bad)


def test_goodput_fraction_counts_failures_as_missing():
    result = {"request_goodput": 3.0, "duration": 2.0, "completed": 8, "failed": 2}
    assert goodput_fraction(result) == 0.6
    assert goodput_fraction({"request_goodput": None, "duration": 1.0}) is None


@pytest.mark.parametrize("threshold", [1, 2, 3, 5, 37, 64, 1000, 1024])
def test_bracket_search_finds_the_last_passing_integer(threshold):
    search = BracketSearch(1, 1024, Tolerance(1))
    tried = []
    while (value := search.next_value()) is not None:
        tried.append(value)
        search.record(value, value <= threshold)
    assert search.passing == threshold
    assert len(tried) == len(set(tried))
    assert len(tried) <= 2 * math.ceil(math.log2(1024)) + 1


def test_bracket_search_rates_relative_tolerance_and_a_failing_bottom():
    search = BracketSearch(1.0, 1024.0, Tolerance(0.05, relative=True), integer=False)
    while (value := search.next_value()) is not None:
        search.record(value, value <= 13.7)
    assert search.passing <= 13.7 < search.failing <= search.passing * 1.05
    bottom = BracketSearch(4, 64, Tolerance(1))
    assert bottom.next_value() == 4
    bottom.record(4, False)
    assert bottom.next_value() is None and bottom.passing is None


def knee_server(capacity):
    # Below the knee TTFT is ~20 ms; above it a request waits a whole generation
    # (20 ms + 10 x 5 ms) for a slot: TTFT >= 70 ms, whatever the machine's load.
    return MockServerThread(MockBehaviour(ttft=0.02, itl=0.005, capacity=capacity))


def test_sla_search_finds_the_knee_of_a_server_with_capacity(tmp_path, capsys):
    out = tmp_path / "s"
    with knee_server(3) as server:
        status = sweep(
            server, out, "--num-prompts", "9", "--random-output-len", "10", "--slo", "ttft:p99:50"
        )
    assert status == 0
    doc = document(out)
    check_schema(doc)
    assert doc["mode"] == "sla" and doc["swept"] == ["max_concurrency"]
    assert doc["slo"] == [{"metric": "ttft", "stat": "p99", "limit_ms": 50.0}]
    value = doc["sla"]["value"]
    assert doc["sla"]["param"] == "max_concurrency" and value in (2, 3)  # one bisection step
    probes = {p["params"]["max_concurrency"]: p["slo_ok"] for p in doc["points"]}
    assert probes[value] is True and probes[value + 1] is False
    assert all(ok is False for c, ok in probes.items() if c > 3)  # above the knee: never
    assert list(probes)[:3] == [1, 2, 4]  # doubling, then bisection
    text = capsys.readouterr().out
    assert f"SLA: max_concurrency={value} is the highest in 1..1024 meeting the SLOs" in text


def test_sla_search_stops_doubling_at_over_saturation(tmp_path):
    out = tmp_path / "s"
    # Two at a time, 30 ms each: at most ~66 req/s.
    with MockServerThread(MockBehaviour(ttft=0.01, itl=0.002, capacity=2)) as server:
        status = sweep(
            server, out, "--num-prompts", "16", "--random-output-len", "10",
            "--slo", "e2el:mean:60000", "--sla-param", "request_rate",
            "--sla-range", "32:1024", "--sla-tolerance", "50%",
        )  # fmt: skip
    assert status == 0
    doc = document(out)
    assert doc["stopped"].startswith("over-saturated at request_rate=")
    rates = [p["params"]["request_rate"] for p in doc["points"]]
    assert all(p["slo_ok"] for p in doc["points"])  # the loose SLO never failed
    assert rates[0] == 32.0 and max(rates) < 1024  # the doubling stopped early
    assert doc["sla"]["param"] == "request_rate"
    assert 32 <= doc["sla"]["value"] < max(rates)


def test_goodput_slo_through_the_python_api(tmp_path):
    out = tmp_path / "s"
    with MockServerThread(FAST) as server:
        bench = BenchConfig(
            base_url=server.base_url, model="mock-model", tokenizer_mode="words",
            num_prompts=6, random_input_len=8, random_output_len=4, goodput={"ttft": 60000},
        )  # fmt: skip
        space = ParameterSpace.of([("max_concurrency", (2,))])
        config = SweepConfig(
            bench=bench, mode="list", output_dir=str(out), space=space,
            slos=(GoodputSLO(min_fraction=0.9),),
        )  # fmt: skip
        from anyio_llmreq.sweep import run_sweep

        result = run_sweep(config)
    (point,) = result.points
    assert point.slo_ok is True and "request_goodput" in point.metrics
    assert result.document == document(out)
    assert result.document["slo"] == [{"metric": "goodput", "min_fraction": 0.9}]


# --- the saturation profile ----------------------------------------------------------


def test_saturation_profile_runs_synchronous_throughput_then_rates_between(tmp_path):
    out = tmp_path / "s"
    with knee_server(2) as server:
        status = sweep(server, out, "--saturation", "2", "--random-output-len", "6")
    assert status == 0
    doc = document(out)
    check_schema(doc)
    assert doc["mode"] == "saturation" and doc["swept"] == ["max_concurrency", "request_rate"]
    params = [p["params"] for p in doc["points"]]
    assert params[0] == {"max_concurrency": 1, "request_rate": "inf"}
    assert params[1] == {"max_concurrency": None, "request_rate": "inf"}
    low = doc["points"][0]["metrics"]["request_throughput"]["mean"]
    high = doc["points"][1]["metrics"]["request_throughput"]["mean"]
    assert low < high  # capacity 2: twice the synchronous rate, at most
    rates = [p["request_rate"] for p in params[2:]]
    assert rates == saturation_rates(low, high, 2)
    assert low < rates[0] < rates[1] < high
    assert rates[1] - rates[0] == pytest.approx((high - low) / 3, rel=1e-2)  # 4 digits


# --- over-saturation -----------------------------------------------------------------


def run_result(ttfts, *, duration=1.0, completed=None, e2el_ms=10.0):
    return {
        "start_times": [i * 0.01 for i in range(len(ttfts))],
        "ttfts": ttfts,
        "errors": [""] * len(ttfts),
        "duration": duration,
        "completed": len(ttfts) if completed is None else completed,
        "median_e2el_ms": e2el_ms,
    }


def test_over_saturation_signs():
    flat = run_result([0.02] * 12)
    rising = run_result([0.02 + 0.03 * i for i in range(12)])
    assert ttft_trend(flat) is None
    assert "TTFT rising" in ttft_trend(rising)
    assert over_saturation([flat], 12.0) is None
    assert "TTFT rising" in over_saturation([rising], 12.0)
    assert over_saturation([rising], math.inf) is None  # rate inf: the client queues
    behind = run_result([0.02] * 12, duration=2.0)  # 12 in 2 s offered at 12 req/s
    assert "under 90% of the offered 12 req/s" in over_saturation([behind], 12.0)
    assert over_saturation([behind, flat, flat], 12.0) is None  # most repeats decide
    low = (4.0, [{"request_throughput": 50.0}])

    def plateau(value, throughput):
        return throughput_plateau(
            "max_concurrency", low, (value, [{"request_throughput": throughput}])
        )

    assert "throughput flat" in plateau(8.0, 52.0)
    assert plateau(8.0, 90.0) is None
    assert plateau(5.0, 50.0) is None  # too small a step to tell


# --- resume and interruption ---------------------------------------------------------


def test_resume_skips_finished_points(tmp_path, capsys):
    out = tmp_path / "s"
    with MockServerThread(FAST) as server:
        assert sweep(server, out, "--concurrency", "1,2") == 0
        assert len(generations(server)) == 12
        first = document(out)
        # A file of an interrupted run is not a finished point: it runs again.
        stale = out / "points" / "max_concurrency=2-run0.json"
        data = json.loads(stale.read_text())
        stale.write_text(json.dumps({**data, "interrupted": True}))
        server.reset()
        args = ["--base-url", server.base_url, *COMMON, "--resume", str(out)]
        assert main([*args, "--concurrency", "1,2,4"]) == 0
        assert len(generations(server)) == 12  # the stale point and the new one
    doc = document(out)
    assert [p["params"]["max_concurrency"] for p in doc["points"]] == [1, 2, 4]
    assert doc["points"][0] == first["points"][0]
    text = capsys.readouterr().out
    assert "[1/3] max_concurrency=1 (from files):" in text
    assert "[2/3] max_concurrency=2:" in text
    # Other bench flags than the sweep's: refused, the files left alone.
    assert main([*args, "--concurrency", "1", "--num-prompts", "7"]) == 2
    assert "--num-prompts 6 there, 7 here" in capsys.readouterr().err
    assert document(out) == doc


INTERRUPTED = """
import sys
from anyio_llmreq.sweep._cli import main
from anyio_llmreq.testing import MockBehaviour, MockServerThread

with MockServerThread(MockBehaviour(ttft=0.01, itl=0.01)) as server:
    sys.exit(main(["--base-url", server.base_url, "--model", "m", "--tokenizer-mode",
                   "words", "--num-prompts", "4", "--random-input-len", "4",
                   "--random-output-len", "10", "--concurrency", "1", "--sweep",
                   "random_input_len=4,5,6,7,8", "--output-dir", sys.argv[1]]))
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_sweep_and_keeps_finished_points(tmp_path, signum):
    out = tmp_path / "s"
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(INTERRUPTED), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if document(out)["points"]:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum, stderr
    doc = document(out)
    assert doc["stopped"] == f"interrupted by {signal.Signals(signum).name}"
    assert 1 <= len(doc["points"]) < 5
    for point in doc["points"]:
        (result,) = point_results(out, point)
        assert result["completed"] == 4 and result["interrupted"] is False
    assert f"Stopped: interrupted by {signal.Signals(signum).name}" in stdout


# --- usage errors and exit codes -----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--slo", "ttft:p99"], "invalid SLO 'ttft:p99' (--slo): expected METRIC:STAT:LIMIT_MS"),
        (["--slo", "ttft:q5:10"], "unknown statistic 'q5'"),
        (["--slo", "goodput:0.9"], "missing flag (--slo goodput)"),
        (["--sweep", "no_such=1,2"], "unknown parameter 'no_such' (--sweep)"),
        (["--sweep", "random_inpt_len=1"], "Did you mean random_input_len?"),
        (["--sweep", "random-input-len=a"], "invalid value 'a' for random_input_len (--sweep)"),
        (["--sweep", "random_input_len"], "expected PARAM=VALUE,VALUE"),
        (["--sweep", "result_dir=x,y"], "cannot sweep 'result_dir'"),
        (["--concurrency", "1,x"], "(--concurrency): --max-concurrency takes an integer"),
        (["--concurrency", "4,4"], "repeated value in '4,4' (--concurrency)"),
        (["--request-rate", "0,1"], "a request rate is a positive number or inf"),
        (["--concurrency", "1", "--max-concurrency", "2"], "conflicting flags (--max-concurrency)"),
        (["--concurrency", "1", "--sla-param", "request_rate"], "conflicting flags (--sla-param)"),
        (["--saturation", "2", "--request-rate", "1"], "conflicting flags (--saturation)"),
        (["--saturation", "0"], "invalid value (--saturation)"),
        (["--concurrency", "1", "--output-jsonl", "r.jsonl"], "not with a sweep (--output-jsonl)"),
        (["--slo", "ttft:p99:5", "--sla-range", "9:3"], "invalid range '9:3' (--sla-range)"),
        (["--slo", "ttft:p99:5", "--sla-tolerance", "-1"], "invalid tolerance"),
        (["--sla-param", "nope"], "argument --sla-param: invalid choice 'nope'"),
        ([], "nothing to sweep"),
        (["--concurrency", "1", "--random-output-len", "0"], "(--random-output-len)"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    out = tmp_path / "s"
    assert main(["--output-dir", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("anyio-llmreq sweep: error: ") and err.count("\n") == 1
    assert message in err
    assert not out.exists()  # nothing ran, nothing written


def test_output_directory_errors(tmp_path, capsys):
    out = tmp_path / "s"
    with MockServerThread(FAST) as server:
        assert sweep(server, out, "--concurrency", "1") == 0
        assert sweep(server, out, "--concurrency", "2") == 2
        assert "the output directory holds a sweep" in capsys.readouterr().err
    assert main(["--resume", str(tmp_path / "none"), "--concurrency", "1"]) == 2
    assert "no sweep to resume" in capsys.readouterr().err
    assert main(["--resume", str(out), "--output-dir", "elsewhere", "--concurrency", "1"]) == 2
    assert "conflicting flags (--output-dir)" in capsys.readouterr().err


def test_exit_1_when_nothing_was_measured(tmp_path, capsys):
    out = tmp_path / "s"
    with MockServerThread(MockBehaviour(status=500)) as server:
        assert sweep(server, out, "--concurrency", "1", "--slo", "ttft:p99:100") == 1
    (point,) = document(out)["points"]
    assert point["slo_ok"] is False  # every request failed: no SLO is met
    # No server at all: the first point's setup says so, nothing is written.
    with MockServerThread(FAST) as server:
        url = server.base_url
    status = main(["--base-url", url, *COMMON, "--output-dir", str(tmp_path / "t"),
                   "--concurrency", "1"])  # fmt: skip
    assert status == 1
    assert "could not connect to the server" in capsys.readouterr().err
    assert document(tmp_path / "t")["points"] == []
    assert document(tmp_path / "t")["stopped"].startswith("the run of max_concurrency=1 failed")
    # A sweep that finished no point may be started again in its directory.
    status = main(["--base-url", url, *COMMON, "--output-dir", str(tmp_path / "t"),
                   "--concurrency", "1"])  # fmt: skip
    assert status == 1 and "could not connect" in capsys.readouterr().err


@pytest.mark.anyio
async def test_arun_sweep_on_every_loop(tmp_path):
    async with open_mock_server(FAST) as server:
        bench = BenchConfig(
            base_url=server.base_url, model="mock-model", tokenizer_mode="words",
            num_prompts=4, random_input_len=8, random_output_len=3, quiet=True,
        )  # fmt: skip
        config = SweepConfig(
            bench=bench, mode="list", output_dir=str(tmp_path / "s"),
            space=ParameterSpace.of([("max_concurrency", (1, 4))]),
        )  # fmt: skip
        stdout = io.StringIO()
        result = await arun_sweep(config, stdout=stdout, handle_signals=False)
    assert [p.params for p in result.points] == [{"max_concurrency": 1}, {"max_concurrency": 4}]
    assert result.measured and result.stop_signal is None
    assert all(p.completed == 4 for p in result.points)
    assert "[2/2] max_concurrency=4:" in stdout.getvalue()


# --- the mock server's load-dependent timing -----------------------------------------


async def _stream_all(base_url, n):
    async with Client() as client:
        async with anyio.create_task_group() as tg:
            for i in range(n):
                body = {"model": "m", "prompt": f"p{i}", "max_tokens": 3, "stream": True}
                tg.start_soon(_post, client, base_url, body)


async def _post(client, base_url, body):
    from anyio_llmreq import RequestFuncInput

    request = RequestFuncInput(
        prompt=body["prompt"], api_url=base_url + "/v1/completions", prompt_len=1,
        output_len=body["max_tokens"], model="m",
    )  # fmt: skip
    out = await client.send("openai", request)
    assert out.success, out.error


@pytest.mark.anyio
async def test_mock_capacity_queues_requests_first_come_first_served():
    async with open_mock_server(MockBehaviour(ttft=0.01, itl=0.005, capacity=2)) as server:
        await _stream_all(server.base_url, 5)
        recs = sorted(server.requests, key=lambda r: r.sent_times[0])
    assert len(recs) == 5
    # Never more than two generating at once: each request's first token comes after
    # the last token of the request two places before it.
    for earlier, later in zip(recs, recs[2:], strict=False):
        assert later.sent_times[0] >= earlier.sent_times[-1]
    assert server._load.running == 0 and server._load.waiting == 0


@pytest.mark.anyio
async def test_mock_ttft_grows_with_the_requests_in_flight():
    async with open_mock_server(MockBehaviour(ttft=0.0, itl=0.1, ttft_per_active=0.05)) as server:
        await _stream_all(server.base_url, 3)
    waits = sorted(r.sent_times[0] - r.received_at for r in server.requests)
    # The last of three to start had two generating: at least 2 x 50 ms to its first token.
    assert waits[-1] >= 0.09


def test_mock_server_cli_load_flags():
    import argparse

    from anyio_llmreq.testing._cli import add_parser, behaviour_from_args

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["mock-server", "--capacity", "8", "--ttft-per-active", "0.002"])
    behaviour = behaviour_from_args(args)
    assert behaviour.capacity == 8 and behaviour.ttft_per_active == 0.002
    assert behaviour_from_args(parser.parse_args(["mock-server"])).capacity is None
    with pytest.raises(ValueError):
        MockBehaviour().with_overrides({"capacity": 0})
