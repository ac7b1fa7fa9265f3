"""The open-file limit at bench start: raised to the hard limit, and a run that would
still need more is a clear error naming the limit, before any request."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from anyio_llmreq.bench._config import UsageError
from anyio_llmreq.bench._limits import FD_RESERVE, check_fd_budget, peak_streams

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX rlimits")

# In a subprocess: lowering this process's limit would starve the rest of the suite.
_LOWERED = textwrap.dedent(
    """
    import json, resource, sys
    from anyio_llmreq.bench._limits import raise_fd_limit
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(256, soft)
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    now = raise_fd_limit()
    after = resource.getrlimit(resource.RLIMIT_NOFILE)
    # With the hard limit lowered too, nothing can be raised: the bench must refuse.
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, low))
    stuck = raise_fd_limit()
    from anyio_llmreq.bench import BenchConfig, run_benchmark
    from anyio_llmreq.bench._config import UsageError
    config = BenchConfig(num_prompts=400, max_concurrency=400, request_rate=float("inf"),
                         mock_ttft=0.0, mock_itl=0.0, random_input_len=4,
                         random_output_len=2, disable_tqdm=True, quiet=True)
    try:
        run_benchmark(config)
        message = None
    except UsageError as exc:
        message = str(exc)
    print(json.dumps({"low": low, "hard": hard, "now": now, "after": after,
                      "stuck": stuck, "message": message}))
    """
)


def test_bench_start_raises_the_soft_limit_and_refuses_beyond_the_hard_one() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _LOWERED], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.splitlines()[-1])
    assert got["after"][0] == got["hard"] or got["hard"] == -1  # -1: RLIM_INFINITY
    assert got["now"] == got["after"][0] or got["now"] is None
    assert got["stuck"] == got["low"]
    # 400 streams, each with both ends in this process (the embedded server): over 256.
    message = got["message"]
    assert message is not None
    assert "RLIMIT_NOFILE" in message and "ulimit -n" in message
    assert f"is {got['low']}" in message and "--max-concurrency" in message


def test_budget_names_the_limit_and_what_fits() -> None:
    check_fd_budget(1000, limit=1000 + FD_RESERVE)  # fits exactly
    check_fd_budget(None, limit=10)  # a finite rate: unknown, no check
    with pytest.raises(UsageError) as caught:
        check_fd_budget(10_000, limit=4096)
    text = str(caught.value)
    assert "10000 concurrent requests" in text and "4096" in text
    assert f"--max-concurrency {4096 - FD_RESERVE}" in text and "ulimit -n 10064" in text
    # Split over workers, each process needs its share.
    check_fd_budget(10_000, workers=4, limit=4096)
    with pytest.raises(UsageError, match="--max-concurrency 2016"):
        check_fd_budget(3000, per_stream=2, limit=4096)


def test_peak_streams_from_the_flags() -> None:
    assert peak_streams(100, 10, 5.0, burst=False) == 10
    assert peak_streams(5, 10, float("inf"), burst=True) == 5
    assert peak_streams(100, None, float("inf"), burst=True) == 100
    assert peak_streams(100, None, 5.0, burst=False) is None
