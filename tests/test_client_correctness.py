"""Regressions of the client's less-travelled paths, over real sockets on every loop:
redirects, deadlines around the caller's code, headers, per-request timeouts, limits."""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
import httpx
import pytest

from anyio_llmreq import (
    ASYNC_REQUEST_FUNCS,
    Client,
    ConfigError,
    RequestFuncInput,
    Timeouts,
    _compat,
    set_default_timeouts,
)
from anyio_llmreq.testing import MockBehaviour, open_mock_server

from .clients import make_client
from .rawserver import Connection, RawServer, head

pytestmark = pytest.mark.anyio

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
# A request bounded at TIMEOUT must be over within TIMEOUT + MARGIN.
TIMEOUT = 0.4
MARGIN = 0.5


def req(url: str, **kwargs: Any) -> RequestFuncInput:
    return RequestFuncInput("a b c", url, 3, 6, "m", **kwargs)


def one_line_failure(error: str, *needles: str) -> None:
    assert error and "\n" not in error, error
    for needle in needles:
        assert needle.lower() in error.lower(), error


# --- redirects ------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "method"), [(307, "POST"), (308, "POST"), (302, "GET")])
async def test_a_redirect_is_followed_from_the_response_in_hand(
    transport: str, status: int, method: str
) -> None:
    async with open_mock_server(MockBehaviour()) as target:

        def redirect(conn: Connection) -> None:
            location = ("Location", target.base_url + CHAT)
            conn.send(head(status, [location, ("Content-Length", "0")], "Moved"))

        with RawServer(redirect) as origin:
            async with make_client(transport) as client:
                out = await client.send("openai-chat", req(origin.url(CHAT)))
    # The origin saw the request once: it is not sent again before the redirect.
    assert origin.connections == 1
    assert [r.method for r in target.requests] == [method]
    if method == "POST":
        assert out.success, out.error
        assert "a b c" in json.dumps(target.requests[0].json["messages"])
    else:  # the mock answers a body-less GET with an error: the request went there once
        assert not out.success


# --- the total deadline bounds the request, not the caller ------------------------------------


async def test_stream_deadline_spares_the_callers_code(transport: str) -> None:
    async with open_mock_server(MockBehaviour()) as server:
        async with make_client(transport, timeouts=Timeouts(total=0.2)) as client:
            got = []
            async with client.stream("openai-chat", req(server.base_url + CHAT)) as stream:
                async for timed in stream:
                    got.append(timed.delta)
                    await anyio.sleep(0.05)  # the caller's own work, past the deadline
                slept = True
            out = stream.output
    assert slept
    assert out.success, out.error
    assert len(out.generated_text.split()) == 6 and len(got) >= 6


async def test_stream_deadline_still_bounds_a_stalled_server(transport: str) -> None:
    behaviour = MockBehaviour(stall_after=2, stall_duration=30)
    async with open_mock_server(behaviour) as server:
        async with make_client(transport, timeouts=Timeouts(total=TIMEOUT)) as client:
            started = time.perf_counter()
            url = server.base_url + COMPLETIONS
            async with client.stream("openai", req(url)) as stream:
                async for _ in stream:
                    pass
            elapsed = time.perf_counter() - started
    one_line_failure(stream.output.error, "RequestTimeout", f"{TIMEOUT} s")
    assert elapsed < TIMEOUT + MARGIN
    assert len(stream.output.generated_text.split()) == 2


# --- a body over the limit ends the iteration, as in send() -----------------------------------


async def test_oversized_json_body_fails_the_stream_like_send(transport: str) -> None:
    body = json.dumps({"choices": [{"text": "x" * 5000}]}).encode()

    def reply(conn: Connection) -> None:
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        conn.send(head(200, headers) + body)

    with RawServer(reply) as server:
        async with make_client(transport, max_response_bytes=1024) as client:
            sent = await client.send("openai", req(server.url(COMPLETIONS)))
            async with client.stream("openai", req(server.url(COMPLETIONS))) as stream:
                deltas = [d async for d in stream]
    assert deltas == []
    assert stream.output.error == sent.error
    one_line_failure(sent.error, "response body larger than 1024 bytes")


# --- headers ----------------------------------------------------------------------------------


async def test_callers_headers_win_whatever_their_case(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    mine = {
        "authorization": "Bearer mine",
        "content-type": "application/json; charset=utf-8",
        "user-agent": "my-agent",
        "ACCEPT": "text/event-stream",
    }
    async with open_mock_server(MockBehaviour()) as server:
        async with make_client(transport) as client:
            out = await client.send("openai-chat", req(server.base_url + CHAT, extra_headers=mine))
    assert out.success, out.error
    sent = server.requests[0].headers
    for name, value in mine.items():
        values = [v for k, v in sent if k.lower() == name.lower()]
        assert values == [value], (name, sent)


async def test_the_api_key_is_the_clients_or_the_environments_at_each_request(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """None (the default) reads OPENAI_API_KEY at each request; "" sends no key."""
    sent: list[str | None] = []
    async with open_mock_server(MockBehaviour()) as server:
        url = server.base_url + COMPLETIONS
        async with make_client(transport) as default, make_client(transport, api_key="") as none:
            for key in ("first", "second"):
                monkeypatch.setenv("OPENAI_API_KEY", key)
                for client in (default, none):
                    assert (await client.send("openai", req(url))).success
        for request in server.requests:
            auth = [v for k, v in request.headers if k.lower() == "authorization"]
            sent.append(auth[0] if auth else None)
    assert sent == ["Bearer first", None, "Bearer second", None]


@pytest.mark.parametrize(
    "headers",
    [
        {"X Bad": "1"},
        {"X:Bad": "1"},
        {"X\tBad": "1"},
        {"": "1"},
        {"X-Ok": "one\r\nInjected: yes"},
        {"X-Ok": "nul\x00"},
    ],
)
async def test_headers_that_http_cannot_carry_are_refused_before_io(
    headers: dict[str, str],
) -> None:
    with RawServer(lambda conn: None) as server:
        async with Client() as client:
            with pytest.raises(ConfigError, match="header"):
                await client.send("openai-chat", req(server.url(CHAT), extra_headers=headers))
    assert server.connections == 0


async def test_a_body_json_cant_encode_is_a_config_error() -> None:
    for extra in ({"stop": {1, 2}}, {"seed": object()}):
        async with Client() as client:
            with pytest.raises(ConfigError, match="JSON"):
                await client.send(
                    "openai", req("http://127.0.0.1:9/v1/completions", extra_body=extra)
                )


# --- per-request timeouts for drop-in callers -------------------------------------------------


def _never_answers(conn: Connection) -> None:
    conn.wait_for_client_close()


@pytest.mark.parametrize("fault", ["stall", "headers-then-nothing", "never-answers"])
async def test_drop_in_timeout_bounds_every_fault(fault: str) -> None:
    func = ASYNC_REQUEST_FUNCS["vllm"]
    started = time.perf_counter()
    if fault == "never-answers":
        with RawServer(_never_answers, read_request=False) as raw:
            out = await func(req(raw.url(COMPLETIONS), timeout=TIMEOUT))
    else:
        behaviour = (
            MockBehaviour(stall_after=2, stall_duration=30)
            if fault == "stall"
            else MockBehaviour(headers_then_hang=True)
        )
        async with open_mock_server(behaviour) as server:
            out = await func(req(server.base_url + COMPLETIONS, timeout=TIMEOUT))
    elapsed = time.perf_counter() - started
    assert not out.success
    one_line_failure(out.error, "RequestTimeout", f"{TIMEOUT} s")
    assert elapsed < TIMEOUT + MARGIN, elapsed


async def test_script_wide_default_timeouts() -> None:
    try:
        set_default_timeouts(Timeouts(total=TIMEOUT))
        async with open_mock_server(MockBehaviour(headers_then_hang=True)) as server:
            with anyio.fail_after(TIMEOUT + MARGIN):
                out = await ASYNC_REQUEST_FUNCS["openai"](req(server.base_url + COMPLETIONS))
    finally:
        set_default_timeouts(Timeouts())
    one_line_failure(out.error, "RequestTimeout")
    with pytest.raises(TypeError):
        set_default_timeouts(30)  # type: ignore[arg-type]
    assert _compat._default_timeouts == Timeouts()


@pytest.mark.parametrize("bad", [0, -1, float("nan"), "3", True])
async def test_a_bad_timeout_is_a_config_error(bad: Any) -> None:
    async with Client() as client:
        with pytest.raises(ConfigError, match="timeout"):
            await client.send("openai", req("http://127.0.0.1:9/v1/completions", timeout=bad))


async def test_timeouts_apply_to_a_callers_http_client() -> None:
    async with open_mock_server(MockBehaviour(headers_then_hang=True)) as server:
        async with httpx.AsyncClient() as http:
            client = Client(http_client=http, timeouts=Timeouts(read=0.2))
            with anyio.fail_after(3):
                out = await client.send("openai", req(server.base_url + COMPLETIONS))
    one_line_failure(out.error, "Timeout")


# --- an endless stream is bounded --------------------------------------------------------------


async def test_an_endless_token_stream_is_bounded(transport: str) -> None:
    event = b'data: {"choices":[{"text":"tok "}]}\n\n'

    def endless(conn: Connection) -> None:
        headers = [("Content-Type", "text/event-stream"), ("Connection", "close")]
        conn.send(head(200, headers))
        while not conn.server.stopping.is_set():
            conn.send(event * 64)

    with RawServer(endless) as server:
        async with make_client(transport, max_stream_bytes=64 * 1024) as client:
            with anyio.fail_after(5):
                out = await client.send("openai", req(server.url(COMPLETIONS)))
    one_line_failure(out.error, "response stream longer than 65536 bytes")
    # What was measured up to the limit is kept.
    assert out.generated_text.startswith("tok tok")
    assert len(out.itl) < 64 * 1024 // len(event)
