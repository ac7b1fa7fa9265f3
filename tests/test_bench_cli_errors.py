"""``anyio-llmreq bench`` as a newcomer meets it: each mistake is one line on stderr,
``anyio-llmreq bench: error: <what> (<flag, file or URL>): <why>. <what to try>``, with
no traceback and an honest exit status (2 a mistake, 1 nothing measured, 130/143 a
signal after the report and files are written).

The command runs in subprocesses, as a user runs it. They start together (a module
fixture) since each costs about a second of interpreter start-up.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from anyio_llmreq.testing import MockBehaviour, MockServerThread
from tests.rawserver import Connection, RawServer, head

PREFIX = "anyio-llmreq bench: error:"
FAST = ["--num-prompts", "2", "--request-rate", "inf", "--disable-tqdm",
        "--random-input-len", "4", "--random-output-len", "2"]  # fmt: skip


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _models_404(conn: Connection) -> None:
    body = b'{"detail": "Not Found"}'
    fields = [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
              ("Connection", "close")]  # fmt: skip
    conn.send(head(404, fields, "Not Found") + body)


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("ANYIO_LLMREQ_DEBUG", None)
    env.update(extra)
    return env


def _blocked(*modules: str) -> list[str]:
    """The command with *modules* made unimportable, as on an install without them."""
    code = (
        "import sys\n"
        f"for name in {modules!r}:\n"
        "    sys.modules[name] = None\n"
        "from anyio_llmreq._cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    return [sys.executable, "-c", code, "bench"]


BENCH = [sys.executable, "-m", "anyio_llmreq", "bench"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[int, str, str]]]:
    """Every case's ``(status, stdout, stderr)``, the processes run side by side."""
    tmp = tmp_path_factory.mktemp("cli")
    wrong_shape = tmp / "wrong.json"
    wrong_shape.write_text('{"conversations": []}')
    bad_record = tmp / "record.json"
    bad_record.write_text(json.dumps([{"conversations": [{"value": "hi"}, {"text": "x"}]}]))
    malformed = tmp / "bad.json"
    malformed.write_text('[{"conversations": ')
    bad_jsonl = tmp / "bad.jsonl"
    bad_jsonl.write_text('{"prompt": "hi"}\n{prompt}\n')
    closed = _closed_port()
    with (
        RawServer(_models_404) as models_404,
        MockServerThread(MockBehaviour(status=404)) as endpoint_404,
        MockServerThread(MockBehaviour(status=401)) as endpoint_401,
        MockServerThread(MockBehaviour()) as ok,
    ):
        words = ["--model", "m", "--tokenizer-mode", "words"]
        cases: dict[str, tuple[list[str], dict[str, str]]] = {
            "closed_port": ([*BENCH, *FAST, "--base-url", f"http://127.0.0.1:{closed}"], {}),
            "models_404": ([*BENCH, *FAST, "--base-url", models_404.url("")], {}),
            "endpoint_404": ([*BENCH, *FAST, "--base-url", endpoint_404.base_url, *words], {}),
            "endpoint_401": ([*BENCH, *FAST, "--base-url", endpoint_401.base_url, *words], {}),
            "no_scheme": ([*BENCH, *FAST, "--base-url", "127.0.0.1:8000"], {}),
            "no_dataset": (
                [
                    *BENCH,
                    *FAST,
                    "--dataset-name",
                    "sharegpt",
                    "--dataset-path",
                    str(tmp / "missing.json"),
                ],
                {},
            ),  # fmt: skip
            "wrong_shape": (
                [*BENCH, *FAST, "--dataset-name", "sharegpt", "--dataset-path", str(wrong_shape)],
                {},
            ),
            "bad_record": (
                [*BENCH, *FAST, "--dataset-name", "sharegpt", "--dataset-path", str(bad_record)],
                {},
            ),
            "malformed_json": (
                [*BENCH, *FAST, "--dataset-name", "sharegpt", "--dataset-path", str(malformed)],
                {},
            ),
            "malformed_jsonl": (
                [*BENCH, *FAST, "--dataset-name", "custom", "--dataset-path", str(bad_jsonl)],
                {},
            ),
            "tokenizer_path": ([*BENCH, *FAST, "--tokenizer", "/nonexistent"], {}),
            "tokenizer_path_server": (
                [*BENCH, *FAST, "--base-url", ok.base_url, "--tokenizer", "/nonexistent"],
                {},
            ),
            # No hub to reach (a closed port stands in for no network), nothing cached.
            "hub_unreachable": (
                [*BENCH, *FAST, "--base-url", ok.base_url, "--model", "some-org/some-model"],
                {
                    "HF_ENDPOINT": f"http://127.0.0.1:{closed}",
                    "HF_HUB_OFFLINE": "0",
                    "HF_HOME": str(tmp / "hf"),
                },
            ),  # fmt: skip
            "percentiles": ([*BENCH, *FAST, "--metric-percentiles", "50,abc"], {}),
            "request_rate": ([*BENCH, *FAST[:2], "--request-rate", "-1"], {}),
            "extra_body": ([*BENCH, *FAST, "--extra-body", "{bad"], {}),
            "no_trio": ([*_blocked("trio"), *FAST, "--loop", "trio"], {}),
            "no_uvloop": ([*_blocked("uvloop"), *FAST, "--loop", "uvloop"], {}),
            "no_bench_extra": ([*_blocked("numpy", "tqdm"), *FAST], {}),
            "bad_choice": ([*BENCH, "--loop", "nope"], {}),
            "debug": ([*BENCH, *FAST, "--request-rate", "-1", "--debug"], {}),
            "debug_env": (
                [*BENCH, *FAST, "--request-rate", "-1"],
                {"ANYIO_LLMREQ_DEBUG": "1"},
            ),
        }
        procs = {
            name: (
                subprocess.Popen(
                    argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                    env=_env(**env), start_new_session=True,
                ),
                time.monotonic(),
            )
            for name, (argv, env) in cases.items()
        }  # fmt: skip
        results = {}
        for name, (proc, _) in procs.items():
            out, err = proc.communicate(timeout=60)
            results[name] = (proc.returncode, out, err)
        yield results


def _one_line(err: str) -> str:
    """The error line; fails unless stderr holds exactly one, and no traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(PREFIX), err
    return lines[0]


@pytest.mark.parametrize(
    ("case", "status", "names"),
    [
        ("closed_port", 1, ["/v1/models", "connection refused", "--base-url"]),
        ("models_404", 2, ["/v1/models", "HTTP 404", "--model"]),
        ("endpoint_404", 2, ["/v1/completions", "404", "--endpoint"]),
        ("endpoint_401", 2, ["/v1/completions", "401", "OPENAI_API_KEY", "--header"]),
        ("no_scheme", 2, ["(--base-url)", "http://127.0.0.1:8000"]),
        ("no_dataset", 2, ["--dataset-path", "missing.json", "no such file"]),
        ("wrong_shape", 2, ["wrong.json", "expected a JSON list"]),
        ("bad_record", 2, ["record.json", "record 0", "conversations[1]", "'value'"]),
        ("malformed_json", 2, ["bad.json", "not valid JSON", "line 1"]),
        ("malformed_jsonl", 2, ["bad.jsonl", "line 2", "not valid JSON"]),
        ("tokenizer_path", 2, ["(--tokenizer)", "/nonexistent", "--tokenizer-mode words"]),
        ("tokenizer_path_server", 2, ["(--tokenizer)", "/nonexistent"]),
        ("hub_unreachable", 2, ["some-org/some-model", "--tokenizer", "not reachable",
                                "--tokenizer-mode words", "HF_HUB_OFFLINE=1"]),
        ("percentiles", 2, ["--metric-percentiles", "'abc'"]),
        ("request_rate", 2, ["(--request-rate)", "-1"]),
        ("extra_body", 2, ["(--extra-body)", "invalid JSON"]),
        ("no_trio", 2, ["--loop trio", "pip install 'anyio-llmreq[bench]'", "[trio]"]),
        ("no_uvloop", 2, ["--loop uvloop", "pip install 'anyio-llmreq[bench]'", "[uvloop]"]),
        ("no_bench_extra", 2, ["numpy", "pip install 'anyio-llmreq[bench]'"]),
        ("bad_choice", 2, ["--loop", "invalid choice", "--help"]),
    ],
)  # fmt: skip
def test_each_mistake_is_one_clear_line(
    runs: dict[str, tuple[int, str, str]], case: str, status: int, names: list[str]
) -> None:
    code, out, err = runs[case]
    line = _one_line(err)
    assert code == status, err
    for name in names:
        assert name in line, line
    # Found before the run: no report, nothing measured.
    assert "Serving Benchmark Result" not in out


def test_debug_shows_the_traceback(runs: dict[str, tuple[int, str, str]]) -> None:
    for case in ("debug", "debug_env"):
        code, _, err = runs[case]
        assert code == 1 and "Traceback" in err and "UsageError" in err, err


def test_help_documents_every_flag_once() -> None:
    from anyio_llmreq._cli import build_parser

    parser = build_parser()
    bench = next(
        p
        for action in parser._subparsers._group_actions  # type: ignore[union-attr]
        for name, p in action.choices.items()  # type: ignore[union-attr]
        if name == "bench"
    )
    missing = [a.option_strings for a in bench._actions if not a.help]
    assert missing == []
    text = re.sub(r"-\n\s*", "-", bench.format_help())  # undo the wrapping at hyphens
    assert text.count("tensorrt-llm") == 1  # the backend list, printed once


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_writes_the_report_and_files_then_exits_128_plus_it(
    tmp_path: Path, sig: signal.Signals, status: int
) -> None:
    jsonl = tmp_path / "r.jsonl"
    proc = subprocess.Popen(
        [*BENCH, "--num-prompts", "400", "--request-rate", "40", "--mock-ttft", "0.005",
         "--mock-itl", "0.002", "--random-input-len", "8", "--random-output-len", "8",
         "--disable-tqdm", "--save-result", "--result-dir", str(tmp_path),
         "--result-filename", "r.json", "--output-jsonl", str(jsonl)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (jsonl.exists() and len(jsonl.read_text().splitlines()) >= 3):
            assert time.monotonic() < deadline and proc.poll() is None, "the run never started"
            time.sleep(0.05)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == status, err
    assert "Traceback" not in err
    assert "Serving Benchmark Result" in out
    assert json.loads((tmp_path / "r.json").read_text())["interrupted"] is True
    assert len(jsonl.read_text().splitlines()) >= 3
