"""End-to-end runs of the bench: CLI on the embedded server, the API against a separately
started mock server under every loop, JSONL, interruption, failures and workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from anyio_llmreq._cli import main
from anyio_llmreq.bench import BenchConfig, arun_benchmark, run_benchmark
from anyio_llmreq.testing import MockBehaviour, open_mock_server

FAST = [
    "--num-prompts", "20", "--mock-ttft", "0.005", "--mock-itl", "0.001",
    "--random-input-len", "32", "--random-output-len", "8", "--request-rate", "inf",
    "--disable-tqdm",
]  # fmt: skip

REFERENCE_KEYS = {
    "date", "endpoint_type", "label", "backend", "model_id", "tokenizer_id", "num_prompts",
    "request_rate", "burstiness", "max_concurrency", "duration", "completed", "failed",
    "total_input_tokens", "total_output_tokens", "request_throughput", "request_goodput",
    "output_throughput", "total_token_throughput", "max_output_tokens_per_s",
    "max_concurrent_requests", "rtfx", "mean_ttft_ms", "median_ttft_ms", "std_ttft_ms",
    "p99_ttft_ms", "mean_tpot_ms", "median_tpot_ms", "std_tpot_ms", "p99_tpot_ms",
    "mean_itl_ms", "median_itl_ms", "std_itl_ms", "p99_itl_ms",
}  # fmt: skip
DETAILED = {
    "input_lens",
    "output_lens",
    "ttfts",
    "itls",
    "start_times",
    "generated_texts",
    "errors",
}


def _fast_config(**kwargs):
    base = {
        "num_prompts": 20, "mock_ttft": 0.005, "mock_itl": 0.001, "random_input_len": 32,
        "random_output_len": 8, "request_rate": float("inf"), "disable_tqdm": True, "quiet": True,
    }  # fmt: skip
    base.update(kwargs)
    return BenchConfig(**base)


def _jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_cli_embedded_default_run(tmp_path, capsys):
    jsonl = tmp_path / "requests.jsonl"
    status = main(
        ["bench", *FAST, "--save-result", "--result-dir", str(tmp_path / "out"),
         "--output-jsonl", str(jsonl), "--metadata", "run=ci", "--goodput", "ttft:1000"]
    )  # fmt: skip
    assert status == 0
    out = capsys.readouterr().out
    assert "============ Serving Benchmark Result ============" in out
    assert "{:<40} {:<10}".format("Successful requests:", 20) in out
    assert "Request goodput (req/s):" in out
    assert "server usage (20/20)" in out
    assert "whitespace words" in out
    assert "Client self-check" in out
    (name,) = os.listdir(tmp_path / "out")
    assert name.startswith("openai-infqps-mock-model-") and name.endswith(".json")
    result = json.loads((tmp_path / "out" / name).read_text())
    assert REFERENCE_KEYS <= set(result)
    assert not DETAILED & set(result)  # only with --save-detailed
    assert result["completed"] == 20 and result["failed"] == 0
    assert result["total_output_tokens"] == 160 and result["total_input_tokens"] == 640
    assert result["run"] == "ci"
    assert result["embedded_server"] is True
    assert result["output_tokens_source"] == {"usage": 20}
    assert {"client_send_lag_p99_ms", "client_loop_lag_p99_ms", "client_cpu_fraction",
            "client_saturated"} <= set(result)  # fmt: skip
    lines = _jsonl(jsonl)
    assert sorted(line["index"] for line in lines) == list(range(20))
    assert all(line["success"] and line["output_tokens"] == 8 for line in lines)
    assert {"scheduled_time", "dispatch_time", "client_queue_time", "ttft"} <= set(lines[0])


def test_save_detailed_and_append(tmp_path):
    path = tmp_path / "r.json"
    for _ in range(2):
        run_benchmark(
            _fast_config(num_prompts=4, save_detailed=True, append_result=True,
                         result_filename=str(path), max_concurrency=2)
        )  # fmt: skip
    first, second = (json.loads(x) for x in path.read_text().split("\n"))
    assert DETAILED <= set(first)
    assert len(second["itls"]) == 4 and len(second["scheduled_times"]) == 4
    assert second["max_concurrency"] == 2


@pytest.mark.anyio
@pytest.mark.parametrize("backend", ["openai", "openai-chat"])
async def test_against_a_separate_mock_server(anyio_backend, backend, tmp_path):
    loop = "uvloop" if anyio_backend[1].get("use_uvloop") else anyio_backend[0]
    behaviour = MockBehaviour(ttft=0.005, itl=0.001)
    async with open_mock_server(behaviour, model="served/model", record=False) as server:
        config = _fast_config(
            base_url=server.base_url, backend=backend, loop=loop, max_concurrency=4,
            tokenizer_mode="words", output_jsonl=str(tmp_path / "r.jsonl"),
        )  # fmt: skip
        result = await arun_benchmark(config, handle_signals=False)
    assert result.model_id == "served/model"
    assert result.metrics.completed == 20 and result.metrics.failed == 0
    # An exact sweep over the requests' send and end times: never more than 4 in flight.
    edges = sorted(
        [(r.output.start_time, 1) for r in result.records]
        + [(r.output.start_time + r.output.latency, -1) for r in result.records],
        key=lambda e: (e[0], e[1]),
    )
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert peak <= 4
    assert any(r.output.client_queue_time > 0 for r in result.records)
    assert [r.index for r in result.records] == list(range(20))
    assert result.result["embedded_server"] is False
    assert result.result["max_concurrency"] == 4
    assert len(_jsonl(tmp_path / "r.jsonl")) == 20
    assert 4 <= result.metrics.mean_ttft_ms < 500


def test_failed_requests_are_counted_and_printed(capsys):
    status = main(
        ["bench", *FAST, "--num-prompts", "6", "--extra-body", '{"mock": {"status": 503}}']
    )
    assert status == 1
    out = capsys.readouterr().out
    assert "6 request(s) failed. First errors:" in out
    assert "HTTP 503" in out
    assert "All requests failed" in out
    assert "{:<40} {:<10}".format("Failed requests:", 6) in out


def test_partial_failures():
    result = run_benchmark(
        _fast_config(num_prompts=30, extra_body={"mock": {"fault_rate": 0.3, "seed": 3}})
    )
    assert result.metrics.completed + result.metrics.failed == 30
    assert 0 < result.metrics.failed < 30
    assert result.result["failed"] == result.metrics.failed


def test_stop_after_keeps_everything_finished(tmp_path):
    jsonl = tmp_path / "r.jsonl"
    result = run_benchmark(
        _fast_config(num_prompts=40, request_rate=100.0, save_result=True,
                     result_dir=str(tmp_path), output_jsonl=str(jsonl)),
        stop_after=5,
    )  # fmt: skip
    assert result.interrupted
    assert result.metrics.completed >= 5
    assert result.metrics.completed < 40
    assert result.not_finished == 40 - result.metrics.completed
    with open(result.result_path) as f:
        saved = json.load(f)
    assert saved["completed"] == result.metrics.completed
    assert saved["interrupted"] is True
    assert len(_jsonl(jsonl)) == result.metrics.completed


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigint_writes_the_results(tmp_path, workers):
    jsonl = tmp_path / "r.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "anyio_llmreq", "bench", "--num-prompts", "400",
         "--request-rate", "40", "--mock-ttft", "0.005", "--mock-itl", "0.002",
         "--random-input-len", "16", "--random-output-len", "16", "--disable-tqdm",
         "--save-result", "--result-dir", str(tmp_path), "--result-filename", "r.json",
         "--output-jsonl", str(jsonl), "--workers", workers],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if jsonl.exists() and len(jsonl.read_text().splitlines()) >= 5:
                break
            time.sleep(0.05)
        else:
            pytest.fail("no request finished")
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, out  # 128 + SIGINT, after the report and files
    assert "Interrupted:" in out
    assert "Serving Benchmark Result" in out
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["interrupted"] is True
    lines = _jsonl(jsonl)
    assert 5 <= result["completed"] < 400
    assert len(lines) == result["completed"] + result["failed"]
    assert len({line["index"] for line in lines}) == len(lines)


def test_two_workers_split_the_load_and_merge_exactly():
    result = run_benchmark(
        _fast_config(num_prompts=30, workers=2, max_concurrency=6, save_detailed=True)
    )
    assert result.metrics.completed == 30
    assert [r.index for r in result.records] == list(range(30))
    assert {r.worker for r in result.records} == {0, 1}
    assert all(r.index % 2 == r.worker for r in result.records)
    assert len({r.request_id for r in result.records}) == 30
    assert result.result["workers"] == 2
    assert result.result["client_processes"] == 3  # two workers + the embedded server
    assert len(result.result["ttfts"]) == 30
    # Percentiles are computed on the merged data.
    ttfts = sorted(r.output.ttft for r in result.records)
    assert result.metrics.median_ttft_ms == pytest.approx((ttfts[14] + ttfts[15]) / 2 * 1000)
