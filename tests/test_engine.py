"""The engine over scripted httpx streams: exact timings, failures, the stream API."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import anyio
import httpx
import pytest

from anyio_llmreq import (
    Client,
    RequestFuncInput,
    RequestFuncOutput,
    TextDelta,
    Timeouts,
    UsageDelta,
)

pytestmark = pytest.mark.anyio

CHAT_URL = "http://llm.test/v1/chat/completions"
SSE = {"content-type": "text/event-stream"}


def chat(content: str) -> bytes:
    return b'data: {"choices":[{"delta":{"content":"' + content.encode() + b'"}}]}\n\n'


ROLE = b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n'
USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3}}\n\n'
DONE = b"data: [DONE]\n\n"


class Ticks:
    """A clock that advances one second per reading: timings become exact integers."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


class Script(httpx.AsyncByteStream):
    """Scripted reads: bytes, an exception to raise, or seconds to sleep.

    A plain async iterator (as our transport's stream is), not a generator.
    """

    def __init__(self, reads: Sequence[bytes | BaseException | float]) -> None:
        self.reads = list(reads)

    def __aiter__(self) -> Script:
        return self

    async def __anext__(self) -> bytes:
        while self.reads:
            item = self.reads.pop(0)
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, float):
                await anyio.sleep(item)
                continue
            return item
        raise StopAsyncIteration


def transport(
    reads: Sequence[bytes | BaseException | float],
    status: int = 200,
    headers: dict[str, str] | None = None,
    seen: list[httpx.Request] | None = None,
) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        chosen = SSE if headers is None else headers
        return httpx.Response(status, headers=chosen, stream=Script(reads))

    return httpx.MockTransport(handler)


def request(url: str = CHAT_URL) -> RequestFuncInput:
    return RequestFuncInput("hi", url, 2, 3, "m")


async def send(
    reads: Sequence[bytes | BaseException | float],
    *,
    backend: str = "openai-chat",
    url: str = CHAT_URL,
    clock: Callable[[], float] | None = None,
    **kwargs: object,
) -> RequestFuncOutput:
    mock = transport(reads, **kwargs)  # type: ignore[arg-type]
    async with Client(transport=mock, clock=clock or Ticks()) as client:
        return await client.send(backend, request(url))


async def test_timings_are_exact_and_consistent() -> None:
    out = await send([ROLE, chat("a"), chat("b"), chat("c"), USAGE, DONE])
    assert out.success, out.error
    assert out.generated_text == "abc"
    # start=1; role chunk at 2 is not output; tokens at 3, 4, 5; usage at 6 is not.
    assert out.start_time == 1.0
    assert out.ttft == 2.0
    assert out.itl == [1.0, 1.0]
    assert out.latency == 4.0
    assert out.latency - out.ttft == sum(out.itl)
    # prompt_len stays the caller's (as in the reference); the server's count is beside it.
    assert (out.output_tokens, out.output_tokens_source) == (3, "usage")
    assert (out.prompt_len, out.prompt_tokens) == (2, 7)
    assert out.tpot == pytest.approx((4.0 - 2.0) / 2)
    assert out.status_code == 200 and out.streamed


async def test_events_in_one_read_share_its_stamp() -> None:
    out = await send([chat("a") + chat("b"), chat("c")])
    assert out.ttft == 1.0
    assert out.itl == [0.0, 1.0]


def completion(text: str) -> bytes:
    return b'data: {"choices":[{"text":"' + text.encode() + b'"}],"usage":null}\n\n'


async def test_plain_token_reads_and_mixed_reads() -> None:
    # Reads of plain token events take the batch path; a read that ends with usage and
    # [DONE] mixes them with events the backend parses in full. Same results either way.
    usage = b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":4}}\n\n'
    url = "http://llm.test/v1/completions"
    reads = [completion("a") + completion("b"), completion("c") + completion("d") + usage + DONE]
    out = await send(reads, backend="openai", url=url)
    assert out.success, out.error
    assert out.generated_text == "abcd"
    assert (out.ttft, out.itl, out.latency) == (1.0, [0.0, 1.0, 0.0], 2.0)
    assert (out.output_tokens, out.output_tokens_source) == (4, "usage")
    assert (out.prompt_len, out.prompt_tokens) == (2, 5)


async def test_in_band_error_in_a_read_of_tokens_keeps_the_tokens() -> None:
    error = b'data: {"error":{"message":"overloaded"}}\n\n'
    url = "http://llm.test/v1/completions"
    out = await send([completion("a") + completion("b") + error], backend="openai", url=url)
    assert not out.success and "overloaded" in out.error
    assert out.generated_text == "ab"
    assert (out.ttft, out.itl) == (1.0, [0.0])


async def test_events_split_across_reads() -> None:
    raw = chat("héllo") + chat("中") + DONE
    reads = [raw[i : i + 3] for i in range(0, len(raw), 3)]
    out = await send(reads)
    assert out.success and out.generated_text == "héllo中"
    assert len(out.itl) == 1


async def test_in_band_error_after_tokens_fails_and_keeps_partial_output() -> None:
    error = b'data: {"error":{"message":"engine died","code":500}}\n\n'
    out = await send([chat("a"), chat("b"), error, DONE])
    assert not out.success
    assert "engine died" in out.error and "\n" not in out.error
    assert out.generated_text == "ab"
    assert out.ttft == 1.0 and out.itl == [1.0]


async def test_error_event_fails() -> None:
    out = await send([chat("a"), b'event: error\ndata: {"message":"bad"}\n\n'])
    assert not out.success and "bad" in out.error


async def test_usage_only_stream_fails_naming_ttft() -> None:
    out = await send([ROLE, USAGE, DONE])
    assert not out.success
    assert "TTFT" in out.error
    assert out.output_tokens == 3


async def test_status_error_names_code_and_body() -> None:
    body = b'{"error":{"message":"model not found"}}'
    out = await send([body], status=404, headers={"content-type": "application/json"})
    assert not out.success
    assert out.error.startswith("HTTP 404 Not Found: ")
    assert "model not found" in out.error
    assert out.status_code == 404


async def test_wrong_content_type_fails() -> None:
    out = await send([b"<html>hi</html>"], headers={"content-type": "text/html"})
    assert not out.success and "Content-Type" in out.error


async def test_json_body_for_streaming_request_is_read_whole() -> None:
    body = b'{"choices":[{"message":{"content":"all at once"}}],"usage":{"completion_tokens":3}}'
    out = await send([body[:10], body[10:]], headers={"content-type": "application/json"})
    assert out.success, out.error
    assert out.generated_text == "all at once"
    assert not out.streamed
    assert out.ttft == out.latency == 1.0


async def test_malformed_json_fails_with_partial_output() -> None:
    out = await send([chat("a"), b"data: {oops\n\n"])
    assert not out.success and "invalid JSON" in out.error
    assert out.generated_text == "a"


async def test_read_error_mid_stream_keeps_what_was_measured() -> None:
    out = await send([chat("a"), chat("b"), httpx.ReadError("connection reset by peer")])
    assert not out.success
    assert out.error == "ReadError: connection reset by peer"
    assert out.generated_text == "ab" and out.itl == [1.0]


async def test_connect_error_is_a_failed_output() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    async with Client(transport=httpx.MockTransport(refuse)) as client:
        out = await client.send("openai-chat", request())
    assert not out.success
    assert out.error == "ConnectError: [Errno 111] Connection refused"


async def test_total_deadline() -> None:
    reads: list[bytes | float] = [chat("a"), 5.0, chat("b")]
    async with Client(transport=transport(reads), timeouts=Timeouts(total=0.2)) as client:
        out = await client.send("openai-chat", request())
    assert not out.success
    assert "total deadline" in out.error
    assert out.generated_text == "a"


async def test_caller_cancellation_propagates() -> None:
    async with Client(transport=transport([chat("a"), 5.0, chat("b")])) as client:
        with anyio.move_on_after(0.1) as scope:
            await client.send("openai-chat", request())
            pytest.fail("send should have been cancelled")
    assert scope.cancelled_caught


async def test_completions_backend_and_aliases() -> None:
    text = b'data: {"choices":[{"text":"x"}],"usage":{"completion_tokens":1}}\n\n'
    for name in ["vllm", "openai", "sglang", "lmdeploy", "scalellm", "llama.cpp"]:
        out = await send([text, DONE], backend=name, url="http://llm.test/v1/completions")
        assert out.success and out.generated_text == "x" and out.output_tokens == 1


async def test_authorization_only_when_key_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    await send([chat("a")], seen=seen)
    assert "authorization" not in seen[-1].headers
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    await send([chat("a")], seen=seen)
    assert seen[-1].headers["authorization"] == "Bearer sk-test"
    assert seen[-1].headers["content-type"] == "application/json"


async def test_stream_api_yields_timed_deltas() -> None:
    clock = Ticks()
    async with Client(transport=transport([ROLE, chat("a"), chat("b"), USAGE]), clock=clock) as c:
        async with c.stream("openai-chat", request()) as stream:
            seen = [(d.time, d.delta) async for d in stream]
    assert seen == [
        (3.0, TextDelta("a")),
        (4.0, TextDelta("b")),
        (5.0, UsageDelta(7, 3)),
    ]
    out = stream.output
    assert out.success and out.generated_text == "ab" and out.ttft == 2.0


async def test_stream_api_records_failures() -> None:
    async with Client(transport=transport([b"nope"], status=500, headers={})) as client:
        async with client.stream("openai-chat", request()) as stream:
            assert [d async for d in stream] == []
    assert not stream.output.success
    assert stream.output.error.startswith("HTTP 500")


def test_the_token_text_fast_path_is_a_declared_protocol() -> None:
    from anyio_llmreq._engine import token_text_of
    from anyio_llmreq.backends import TGI, OpenAIChat, OpenAICompletions, TokenTextBackend

    for backend in (OpenAIChat(), OpenAICompletions()):
        assert isinstance(backend, TokenTextBackend)
        fast = token_text_of(backend)
        assert fast is not None and fast('{"choices":[{"text":"x","delta":{"content":"x"}}]}')
    assert not isinstance(TGI(), TokenTextBackend)
    assert token_text_of(TGI()) is None


@pytest.mark.anyio
async def test_httpxs_private_stream_wrapper_is_what_body_chunks_expects() -> None:
    """``body_chunks`` unwraps httpx's client stream (``Response.stream._stream``) to read
    our transport's body directly; an httpx release that renames it must fail here, not
    silently fall back to the slower generators."""
    import inspect

    from anyio_llmreq._engine import body_chunks, close_chunks
    from anyio_llmreq._transport import AnyioTransport, TimedBody
    from anyio_llmreq.testing import MockBehaviour, open_mock_server

    async with open_mock_server(MockBehaviour()) as server:
        async with httpx.AsyncClient(transport=AnyioTransport(trust_env=False)) as http:
            request = http.build_request(
                "POST",
                server.base_url + "/v1/completions",
                json={"model": "m", "prompt": "a b", "max_tokens": 2, "stream": True},
            )
            response = await http.send(request, stream=True)
            try:
                assert isinstance(response.stream._stream, TimedBody)  # type: ignore[attr-defined]
                chunks = body_chunks(response)
                assert not inspect.isasyncgen(chunks)  # the transport's own iterator
                body = b"".join([chunk async for chunk in chunks])
                await close_chunks(chunks)
            finally:
                await response.aclose()
    assert b"data: [DONE]" in body
