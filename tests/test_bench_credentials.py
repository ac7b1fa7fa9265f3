"""Credentials stay out of every repr, line and file of the bench, and GET /v1/models
sends the API key as the requests do."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from anyio_llmreq import RequestFuncInput
from anyio_llmreq._cli import main
from anyio_llmreq._engine import Timeouts
from anyio_llmreq.bench import BenchConfig, run_benchmark
from anyio_llmreq.bench._config import UsageError
from anyio_llmreq.bench._plan import ScheduledRequest
from anyio_llmreq.bench._redact import (
    Scrubber,
    is_credential_name,
    redact_url,
    redact_value,
)
from anyio_llmreq.bench._setup import resolve_model as _resolve_model
from anyio_llmreq.bench._workers import WorkerSpec
from anyio_llmreq.testing import MockBehaviour, MockServerThread
from tests.rawserver import Connection, RawServer, head

FAST = [
    "--num-prompts", "4", "--mock-ttft", "0.005", "--mock-itl", "0.001",
    "--random-input-len", "8", "--random-output-len", "4", "--request-rate", "inf",
    "--disable-tqdm",
]  # fmt: skip
SECRETS = ("sk-secret-1", "sk-secret-2", "sk-secret-3", "pw-secret-4")
HEADERS = ["--header", f"Authorization=Bearer {SECRETS[0]}", "--header", f"X-Api-Key={SECRETS[1]}"]
# A server that quotes the credentials it got in its error (some gateways do).
ECHO = json.dumps(
    {"mock": {"status": 401, "error_message": f"bad Bearer {SECRETS[0]} / {SECRETS[1]} / "
                                               f"{SECRETS[2]}"}}
)  # fmt: skip


@pytest.mark.parametrize(
    ("name", "credential"),
    [
        ("Authorization", True), ("proxy-authorization", True), ("X-Api-Key", True),
        ("Api-Key", True), ("Cookie", True), ("X-Auth-Token", True), ("X-Client-Secret", True),
        ("Accept", False), ("Content-Type", False), ("X-Request-Id", False),
        ("User-Agent", False),
    ],
)  # fmt: skip
def test_which_headers_are_credentials(name: str, credential: bool) -> None:
    assert is_credential_name(name) is credential


def test_reprs_show_no_credentials() -> None:
    headers = {"Authorization": f"Bearer {SECRETS[0]}", "x-api-key": SECRETS[1], "Accept": "a/b"}
    config = BenchConfig(
        headers=headers, base_url=f"http://user:{SECRETS[3]}@127.0.0.1:9/?api_key={SECRETS[2]}"
    )
    request = RequestFuncInput("p", "http://127.0.0.1:9/v1/completions", 1, 1, "m",
                               extra_headers=headers)  # fmt: skip
    scheduled = ScheduledRequest(0, request, 0.0)
    spec = WorkerSpec(0, "asyncio", "openai", (scheduled,), None, Timeouts(), True)
    for text in (repr(config), repr(scheduled), repr(spec)):
        assert not any(s in text for s in SECRETS), text
        assert "'Authorization': 'Bearer ***'" in text and "'a/b'" in text
    assert "user:***@127.0.0.1:9" in repr(config)
    # Only the repr is redacted: the requests still carry the real values.
    assert config.headers == headers and scheduled.request.extra_headers == headers
    assert redact_url("http://h/v1?api_key=x&n=1") == "http://h/v1?api_key=***&n=1"
    assert redact_url("https://sk-token@h/v1") == "https://***@h/v1"
    assert redact_url("http://h:8000/v1") == "http://h:8000/v1"


def test_a_run_shows_and_writes_no_credentials(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRETS[2])
    files = ["--save-result", "--save-detailed", "--result-dir", str(tmp_path)]
    ok = main(["bench", *FAST, *HEADERS, *files, "--result-filename", "ok.json",
               "--output-jsonl", str(tmp_path / "ok.jsonl")])  # fmt: skip
    # Every request fails with the server's echo of the credentials...
    echoed = main(["bench", *FAST, *HEADERS, *files, "--extra-body", ECHO,
                   "--result-filename", "echo.json",
                   "--output-jsonl", str(tmp_path / "echo.jsonl")])  # fmt: skip
    # ... and the ready check quotes it in the run's error.
    ready = main(["bench", *FAST, *HEADERS, "--extra-body", ECHO,
                  "--ready-check-timeout-sec", "0.01"])  # fmt: skip
    bad_flag = main(["bench", *FAST, "--header", f"Authorization: Bearer {SECRETS[0]}"])
    out, err = capfd.readouterr()
    assert (ok, echoed, ready, bad_flag) == (0, 1, 1, 2)
    assert "bad *** / *** / ***" in out  # the reason stays readable
    assert "Initial test run failed" in err and "bad *** / *** / ***" in err
    assert "invalid value 'Authorization: ...' (--header)" in err
    written = [p.read_text() for p in tmp_path.iterdir()]
    assert len(written) == 4 and any("bad *** / ***" in text for text in written)
    for text in [out, err, *written]:
        assert not any(s in text for s in SECRETS)


def test_the_result_and_its_repr_hold_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRETS[2])
    # 500, not 401/403: those stop the bench before the run (its endpoint probe).
    echo = MockBehaviour(status=500, error_message=f"{SECRETS[0]} {SECRETS[2]}")
    with MockServerThread(echo, record=False) as server:
        result = run_benchmark(
            BenchConfig(
                base_url=server.base_url, tokenizer_mode="words", num_prompts=2,
                random_input_len=4, random_output_len=2, request_rate=float("inf"),
                disable_tqdm=True, quiet=True, save_detailed=True,
                headers={"Authorization": f"Bearer {SECRETS[0]}"},
            )
        )  # fmt: skip
    body = {"error": {"message": "*** ***", "type": "InternalServerError", "code": 500}}
    assert [r.output.error for r in result.records] == [
        f"HTTP 500 Internal Server Error: {json.dumps(body)}"
    ] * 2
    text = repr(result) + json.dumps(result.result) + "\n".join(result.report)
    assert SECRETS[0] not in text and SECRETS[2] not in text


def test_only_authorization_keeps_its_scheme() -> None:
    assert redact_value("proxy-authorization", "Basic dXNlcjpw") == "Basic ***"
    assert redact_value("Authorization", "sk-bare") == "***"
    assert redact_value("X-Api-Key", "sk-abc def") == "***"  # no "sk-abc" left
    assert redact_value("Accept", "text/plain") == "text/plain"


def test_scrubber_replaces_whole_values_first() -> None:
    scrub = Scrubber.of({"Authorization": "Bearer abcdef", "X-Trace": "visible"}, values=["k1"])
    assert scrub.text("got Bearer abcdef, abcdef, visible, k1") == "got ***, ***, visible, k1"
    assert scrub.data({"e": ["abcdef", 1.5], "t": ("abcdef",)}) == {
        "e": ["***", 1.5],
        "t": ("***",),
    }
    assert not Scrubber.of({"Accept": "text/plain"})


# --- GET /v1/models carries the key ----------------------------------------------------


def _models_server(conn: Connection) -> None:
    """``/v1/models`` for ``Bearer sk-right`` only, as an authenticating server."""
    assert conn.request is not None
    if conn.request.headers.get("authorization") != "Bearer sk-right":
        body = b'{"error": {"message": "missing or wrong key", "code": 401}}'
        status, reason = 401, "Unauthorized"
    else:
        body = json.dumps({"object": "list", "data": [{"id": "served", "root": "org/m"}]}).encode()
        status, reason = 200, "OK"
    fields = [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
              ("Connection", "close")]  # fmt: skip
    conn.send(head(status, fields, reason) + body)


@pytest.fixture
def models_server() -> Iterator[RawServer]:
    with RawServer(_models_server) as server:
        yield server


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("env_key", "headers", "resolves"),
    [
        ("sk-right", {}, True),  # OPENAI_API_KEY, as the requests send it
        ("sk-wrong", {"authorization": "Bearer sk-right"}, True),  # --header wins, any case
        (None, {"X-Other": "1"}, False),
    ],
)
async def test_models_request_sends_the_api_key(
    anyio_backend: object,
    models_server: RawServer,
    monkeypatch: pytest.MonkeyPatch,
    env_key: str | None,
    headers: dict[str, str],
    resolves: bool,
) -> None:
    if env_key is None:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    else:
        monkeypatch.setenv("OPENAI_API_KEY", env_key)
    config = BenchConfig(base_url=models_server.url(""), headers=headers)
    if resolves:
        assert await _resolve_model(config, models_server.url(""), True) == ("served", "org/m")
    else:
        with pytest.raises(UsageError, match=r"HTTP 401 Unauthorized: credentials needed"):
            await _resolve_model(config, models_server.url(""), True)


def test_models_request_refused_is_one_clear_line(
    models_server: RawServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key")
    status = main(["bench", "--base-url", models_server.url(""), "--num-prompts", "1"])
    err = capsys.readouterr().err
    assert status == 2
    assert err == (
        "anyio-llmreq bench: error: could not ask the server for its model "
        f"({models_server.url('/v1/models')}): HTTP 401 Unauthorized: credentials needed. "
        "Set OPENAI_API_KEY, or pass --header 'Authorization=Bearer KEY' with the server's "
        "key.\n"
    )
