"""End to end over real sockets: the engine against the embedded mock server.

Every SSE framing case and every fault the mock server injects, on every event loop.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from anyio_llmreq import Client, RequestFuncInput, RequestFuncOutput, Timeouts
from anyio_llmreq.testing import MockBehaviour, open_mock_server

pytestmark = pytest.mark.anyio

ENDPOINTS = {"openai": "/v1/completions", "openai-chat": "/v1/chat/completions"}


async def run(
    behaviour: MockBehaviour,
    backend: str = "openai-chat",
    *,
    output_len: int = 6,
    timeouts: Timeouts | None = None,
    **request: Any,
) -> tuple[RequestFuncOutput, Any]:
    async with open_mock_server(behaviour) as server:
        url = server.base_url + ENDPOINTS[backend]
        async with Client(timeouts=timeouts or Timeouts()) as client:
            out = await client.send(
                backend, RequestFuncInput("a b c", url, 3, output_len, "m", **request)
            )
        return out, server


def expect_words(out: RequestFuncOutput, n: int) -> None:
    assert out.success, out.error
    assert len(out.generated_text.split()) == n
    assert out.output_tokens == n and out.output_tokens_source == "usage"
    assert len(out.itl) == n - 1
    assert out.latency - out.ttft == pytest.approx(sum(out.itl), abs=1e-9)


@pytest.mark.parametrize("backend", ["openai", "openai-chat"])
async def test_plain_stream(backend: str) -> None:
    out, server = await run(MockBehaviour(), backend)
    expect_words(out, 6)
    assert server.requests[0].json["stream"] is True


@pytest.mark.parametrize(
    "behaviour",
    [
        pytest.param(MockBehaviour(line_ending="\r\n"), id="crlf"),
        pytest.param(MockBehaviour(line_ending="\r"), id="cr"),
        pytest.param(MockBehaviour(data_space=False), id="data-without-space"),
        pytest.param(MockBehaviour(ping_every=1), id="pings"),
        pytest.param(MockBehaviour(event_ids=True, ping_every=1), id="ids-and-pings"),
        pytest.param(MockBehaviour(split_every=1, split_delay=0.0, unicode=True), id="byte-split"),
        pytest.param(MockBehaviour(split_at=(1, 5, 6, 7)), id="split-at-offsets"),
        pytest.param(MockBehaviour(tokens_per_event=3), id="several-tokens-per-event"),
        pytest.param(MockBehaviour(trickle=True), id="trickle"),
        pytest.param(MockBehaviour(send_done=False), id="no-done"),
        pytest.param(MockBehaviour(continuous_usage=True), id="continuous-usage"),
        pytest.param(MockBehaviour(finish_chunk=True), id="finish-chunk"),
    ],
)
async def test_framing_variants(behaviour: MockBehaviour) -> None:
    out, _ = await run(behaviour)
    expected_events = 6 // behaviour.tokens_per_event
    assert out.success, out.error
    assert len(out.generated_text.split()) == 6
    assert out.output_tokens == 6
    assert len(out.itl) == expected_events - 1


async def test_unicode_split_at_every_byte_matches_unsplit() -> None:
    whole, _ = await run(MockBehaviour(unicode=True))
    split, _ = await run(MockBehaviour(unicode=True, split_every=1, split_delay=0.0))
    assert whole.success and split.success
    assert split.generated_text == whole.generated_text
    assert any(ord(ch) > 0x7F for ch in whole.generated_text)


async def test_event_over_one_mebibyte() -> None:
    out, _ = await run(MockBehaviour(tokens_per_event=300_000), output_len=300_000)
    assert out.success, out.error
    assert len(out.generated_text) > 1024 * 1024
    assert out.itl == []


async def test_role_chunk_and_reasoning() -> None:
    out, _ = await run(MockBehaviour(reasoning_tokens=2))
    assert out.success
    assert out.reasoning_text.strip() != ""


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_http_errors(status: int) -> None:
    out, _ = await run(MockBehaviour(status=status))
    assert not out.success
    assert out.error.startswith(f"HTTP {status}")
    assert "mock error" in out.error
    assert out.status_code == status


async def test_html_error_body() -> None:
    out, _ = await run(MockBehaviour(status=502, error_body="html"))
    assert not out.success and out.error.startswith("HTTP 502")


# The mock counts events; with completions every event is a token (chat adds a role chunk).


async def test_in_band_error_after_tokens() -> None:
    out, _ = await run(MockBehaviour(error_after=3), "openai")
    assert not out.success and "mock error" in out.error
    assert len(out.generated_text.split()) == 3
    assert out.ttft > 0 and len(out.itl) == 2


async def test_error_event_after_tokens() -> None:
    out, _ = await run(MockBehaviour(error_event_after=2), "openai")
    assert not out.success and "mock error" in out.error
    assert len(out.generated_text.split()) == 2


async def test_malformed_json() -> None:
    out, _ = await run(MockBehaviour(malformed_after=2), "openai")
    assert not out.success and "invalid JSON" in out.error
    assert len(out.generated_text.split()) == 2


async def test_reset_mid_stream() -> None:
    out, _ = await run(MockBehaviour(reset_after=2), "openai")
    assert not out.success
    assert out.error  # names the transport failure
    assert "\n" not in out.error
    assert len(out.generated_text.split()) == 2


async def test_stall_hits_the_read_timeout() -> None:
    with anyio.fail_after(10):
        out, _ = await run(MockBehaviour(stall_after=2), "openai", timeouts=Timeouts(read=0.3))
    assert not out.success and "Timeout" in out.error
    assert len(out.generated_text.split()) == 2


async def test_headers_then_nothing_hits_the_read_timeout() -> None:
    with anyio.fail_after(10):
        out, _ = await run(MockBehaviour(headers_then_hang=True), timeouts=Timeouts(read=0.3))
    assert not out.success and "Timeout" in out.error


async def test_server_that_never_answers_hits_the_total_deadline() -> None:
    with anyio.fail_after(10):
        out, _ = await run(MockBehaviour(hang=True), timeouts=Timeouts(total=0.3))
    assert not out.success and "deadline" in out.error


async def test_wrong_content_type() -> None:
    out, _ = await run(MockBehaviour(content_type="text/plain"))
    assert not out.success and "Content-Type" in out.error


async def test_stream_ends_without_output() -> None:
    out, _ = await run(MockBehaviour(), output_len=0)
    assert not out.success and "TTFT" in out.error


async def test_per_request_override_through_extra_body() -> None:
    out, server = await run(MockBehaviour(), extra_body={"mock": {"status": 418}})
    assert out.error.startswith("HTTP 418")
    assert server.requests[0].json["mock"] == {"status": 418}


async def test_timings_follow_the_server() -> None:
    out, server = await run(MockBehaviour(ttft=0.05, itl=0.02), output_len=4)
    assert out.success
    record = server.requests[0]
    assert len(record.sent_times) >= 4
    # Measured TTFT covers the server's delay; lower bounds only (no timing asserts).
    assert out.ttft >= 0.05
    assert all(gap > 0.0 for gap in out.itl)


async def test_proxy_from_the_environment_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing listens on the proxy's port: a request routed through it fails to connect.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    out, server = await run(MockBehaviour())
    assert not out.success and "ConnectError" in out.error
    assert server.requests == []
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    out, server = await run(MockBehaviour())
    assert out.success, out.error
