"""What the bench tells a newcomer: the self-check's verdict and advice, the result
files' modes, and the report's header."""

from __future__ import annotations

import io
import json
import math
import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from anyio_llmreq.bench import BenchConfig, run_benchmark
from anyio_llmreq.bench._records import save_result
from anyio_llmreq.bench._selfcheck import (
    CPU_FRACTION_LIMIT,
    LOOP_LAG_P99_LIMIT_MS,
    SEND_LAG_P99_LIMIT_MS,
    after_burst,
    evaluate_self_check,
)

# A burst of 200 requests issued over 80 ms: request i leaves i * 0.4 ms after t=0.
BURST_SEND_LAGS = [i * 0.0004 for i in range(200)]


def _check(**kw):
    args: dict[str, object] = {
        "send_lags": [0.001] * 200, "loop_lags": [0.001] * 200, "queue_times": [0.0] * 200,
        "cpu_s": [0.3], "wall_s": 1.0, "completed": 200,
    }  # fmt: skip
    args.update(kw)
    return evaluate_self_check(**args)  # type: ignore[arg-type]


def _text(check) -> str:
    """The self-check's lines as one string, the wrapping undone."""
    return " ".join(" ".join(check.report_lines()).split())


def test_burst_the_client_kept_up_with_is_not_flagged():
    check = _check(send_lags=BURST_SEND_LAGS, burst=True, cpu_s=[0.5])
    assert check.verdict == "kept_up" and not check.saturated and not check.warnings
    text = _text(check)
    assert "Client kept up" in text and "WARNING" not in text
    assert "Burst issue time" in text and "send lag not judged" in text
    assert f"loop lag P99 1.0 ms (limit {LOOP_LAG_P99_LIMIT_MS:g} ms)" in text
    assert "CPU 0.50 of a core" in text
    assert check.to_json()["client_verdict"] == "kept_up"
    # The same lags against a schedule (a finite rate) are requests leaving late.
    late = _check(send_lags=BURST_SEND_LAGS)
    assert late.saturated
    assert f"(limit {SEND_LAG_P99_LIMIT_MS:g} ms)" in late.warnings[0]


def test_every_request_failed_is_not_a_capacity_problem():
    # Refused connections: a few ms of run, so the CPU fraction is noise (here 0.97).
    check = _check(send_lags=[0.003] * 5, loop_lags=[], cpu_s=[0.0029], wall_s=0.003,
                   completed=0, burst=True)  # fmt: skip
    assert check.verdict == "no_success" and not check.saturated and not check.warnings
    text = _text(check)
    assert "--workers" not in text and "WARNING" not in text
    assert "no request succeeded" in text and "errors above" in text
    assert check.to_json()["client_saturated"] is False


def test_saturated_client_cpu_suggests_workers():
    check = _check(loop_lags=[0.03] * 200, cpu_s=[0.95, 0.1], includes_server=True)
    assert check.verdict == "client_busy" and check.saturated
    text = _text(check)
    assert "the event loop was 30.0 ms late at P99" in text
    assert f"(limit {LOOP_LAG_P99_LIMIT_MS:g} ms)" in text
    assert f"0.95 of a CPU core (limit {CPU_FRACTION_LIMIT:g})" in text
    assert "Try --workers N" in text and "--base-url" in text  # the embedded server
    more = _check(loop_lags=[0.03] * 200, cpu_s=[0.95, 0.9], workers=2)
    assert "more than --workers 2" in _text(more)


def test_late_loop_with_low_cpu_blames_the_machine():
    check = _check(loop_lags=[0.03] * 200, cpu_s=[0.2])
    assert check.verdict == "machine_loaded" and check.saturated
    text = _text(check)
    assert "0.20 of a CPU core" in text and "other processes" in text
    assert "would not help" in text and "Try --workers" not in text
    between = _check(loop_lags=[0.03] * 200, cpu_s=[0.6])
    assert between.verdict == "busy_and_loaded" and "0.60 of a CPU core" in _text(between)


def test_busy_cpu_without_lag_is_a_note_not_a_warning():
    check = _check(cpu_s=[0.9])
    assert check.verdict == "kept_up" and not check.saturated
    text = _text(check)
    assert "Client kept up" in text and "Note:" in text and "0.90 of a CPU core" in text
    limits = f"(limit {SEND_LAG_P99_LIMIT_MS:g} ms), loop lag P99 1.0 ms (limit"
    assert "send lag P99 1.0 ms " + limits in text


def test_after_burst_drops_the_wake_ups_the_burst_delayed():
    # First wake-up 80 ms late (the loop was issuing the burst), then on time.
    samples = [0.08, 0.001, 0.002, 0.001]
    assert after_burst(samples, issue_s=0.08) == [0.001, 0.002, 0.001]
    assert after_burst(samples, issue_s=0.0) == samples


_MODES_SCRIPT = textwrap.dedent(
    """
    import os, sys
    os.umask(int(sys.argv[2], 8))
    from anyio_llmreq.bench._records import JsonlWriter, save_result
    from anyio_llmreq.bench._redact import Scrubber
    d = sys.argv[1]
    save_result(os.path.join(d, "r.json"), {"a": 1})
    w = JsonlWriter(os.path.join(d, "r.jsonl"), Scrubber())
    w.close()
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_result_files_get_the_umask_mode(tmp_path: Path, umask: int, mode: int) -> None:
    # A subprocess: setting the umask here would race with other threads of the tests.
    subprocess.run([sys.executable, "-c", _MODES_SCRIPT, str(tmp_path), f"{umask:o}"], check=True)
    for name in ("r.json", "r.jsonl"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == mode, name
    assert sorted(os.listdir(tmp_path)) == ["r.json", "r.jsonl"]  # no temp file left


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
def test_replacing_a_result_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text("{}")
    os.chmod(path, 0o600)
    save_result(str(path), {"a": 1}, append=True)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [json.loads(x) for x in path.read_text().splitlines()] == [{}, {"a": 1}]


def test_header_names_the_embedded_servers_url() -> None:
    out = io.StringIO()
    config = BenchConfig(num_prompts=5, request_rate=math.inf, disable_tqdm=True)
    result = run_benchmark(config, stdout=out)
    banner, first = out.getvalue().splitlines()[:2]
    assert "EMBEDDED MOCK SERVER" in banner  # before anything else
    assert re.fullmatch(
        r"Benchmarking openai at http://127\.0\.0\.1:\d+/v1/completions "
        r"\(embedded mock server\), model mock-model",
        first,
    ), first
    assert f"{result.base_url}/v1/completions (embedded mock server)" in first
    # Rate inf: judged as a burst (the verdict itself depends on the machine's load).
    assert result.self_check.burst and result.result["client_burst"] is True


def test_word_counts_against_a_real_server_are_credited_to_the_flag() -> None:
    from anyio_llmreq.testing import MockServerThread

    out = io.StringIO()
    with MockServerThread() as server:
        config = BenchConfig(
            base_url=server.base_url,
            model="mock-model",
            tokenizer_mode="words",
            num_prompts=3,
            request_rate=math.inf,
            disable_tqdm=True,
        )
        run_benchmark(config, stdout=out)
    line = next(x for x in out.getvalue().splitlines() if x.startswith("Input token counts"))
    assert line.endswith("whitespace words (--tokenizer-mode words)"), line


@pytest.mark.parametrize(
    ("backend", "options"),
    [("asyncio", {}), ("asyncio", {"use_uvloop": True}), ("trio", {})],
    ids=["asyncio", "uvloop", "trio"],
)
def test_loop_lag_is_sampled_only_while_requests_are_in_flight(backend, options):
    import anyio

    from anyio_llmreq.bench._selfcheck import LoopLagMonitor

    async def main() -> tuple[int, int, int, LoopLagMonitor]:
        monitor = LoopLagMonitor(interval=0.005)
        async with anyio.create_task_group() as tg:
            tg.start_soon(monitor.run)
            await anyio.sleep(0.05)
            idle = len(monitor.samples)
            monitor.enter()
            monitor.enter()
            monitor.leave()  # one still in flight
            await anyio.sleep(0.1)
            busy = len(monitor.samples)
            monitor.leave()
            await anyio.sleep(0.02)  # a timer set before the last leave may still fire
            settled = len(monitor.samples)
            await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
        return idle, busy, settled, monitor

    idle, busy, settled, monitor = anyio.run(main, backend=backend, backend_options=options)
    assert idle == 0 and busy > 0
    assert len(monitor.samples) == settled  # nothing in flight: no more wake-ups
    assert len(monitor.starts) == len(monitor.samples)
    assert all(lag >= 0 for lag in monitor.samples)
    # uvloop rounds timers to whole milliseconds: the 50 ms sleep may end 1 ms early.
    assert monitor.starts == sorted(monitor.starts) and monitor.starts[0] >= 0.049


def test_since_keeps_the_samples_whose_timer_was_set_after_the_burst():
    from anyio_llmreq.bench._selfcheck import since

    assert since([0.08, 0.001, 0.002], [0.0, 0.09, 0.12], issue_s=0.08) == [0.001, 0.002]
    assert since([0.08, 0.001], [0.0, 0.09], issue_s=0.0) == [0.08, 0.001]
