"""The embedded mock server, exercised over real sockets with plain httpx."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import pytest

from anyio_llmreq.testing import (
    MockBehaviour,
    MockServer,
    MockServerThread,
    open_mock_server,
)

pytestmark = pytest.mark.anyio


COMPLETION = {
    "model": "m1",
    "prompt": "one two three",
    "max_tokens": 4,
    "stream": True,
    "stream_options": {"include_usage": True},
}
CHAT = {
    "model": "c1",
    "messages": [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}],
    "max_completion_tokens": 3,
    "stream": True,
    "stream_options": {"include_usage": True},
}


def data_payloads(text: str) -> list[str]:
    """Values of the ``data:`` lines (one optional space removed), any line ending."""
    out = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line.startswith("data:"):
            value = line[5:]
            out.append(value[1:] if value.startswith(" ") else value)
    return out


def events_json(text: str) -> list[dict[str, Any]]:
    return [json.loads(p) for p in data_payloads(text) if p != "[DONE]"]


def client(server: MockServer, **kwargs: Any) -> httpx.AsyncClient:
    kwargs.setdefault("timeout", 5.0)
    return httpx.AsyncClient(base_url=server.base_url, **kwargs)


async def wait_for(predicate: Callable[[], bool]) -> None:
    """Poll server state that has no event to wait on."""
    with anyio.fail_after(5):
        for _ in iter(int, 1):
            if predicate():
                return
            await anyio.sleep(0.005)


# --- dialects -----------------------------------------------------------------------------


async def test_completions_stream_shape_and_record():
    async with open_mock_server() as server, client(server) as c:
        r = await c.post("/v1/completions", json=COMPLETION, headers={"X-Request-Id": "r-1"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["transfer-encoding"] == "chunked"
    assert r.headers["x-request-id"] == "r-1"
    payloads = data_payloads(r.text)
    assert payloads[-1] == "[DONE]"
    events = events_json(r.text)
    tokens, usage = events[:-1], events[-1]
    assert len(tokens) == 4
    for ev in tokens:
        assert ev["object"] == "text_completion"
        assert ev["model"] == "m1"
        assert set(ev["choices"][0]) == {"index", "text", "logprobs", "finish_reason"}
    assert [ev["choices"][0]["finish_reason"] for ev in tokens] == [None, None, None, "length"]
    text = "".join(ev["choices"][0]["text"] for ev in tokens)
    assert len(text.split()) == 4
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}

    (rec,) = server.requests
    assert (rec.method, rec.path) == ("POST", "/v1/completions")
    assert rec.json == COMPLETION
    assert json.loads(rec.body) == COMPLETION
    assert ("X-Request-Id", "r-1") in rec.headers
    assert rec.header("x-request-id") == "r-1"
    assert rec.status == 200 and rec.completed and rec.fault is None
    assert len(rec.sent_times) == 5
    assert rec.sent_times == sorted(rec.sent_times)
    assert rec.received_at <= rec.sent_times[0]
    assert "".join(rec.tokens) == text
    assert server.errors == []


async def test_asyncio_connections_read_at_most_64_kib(
    monkeypatch: pytest.MonkeyPatch, anyio_backend: object
) -> None:
    # asyncio's selector transport asks recv for 256 KiB, a buffer glibc maps and unmaps
    # on every read; the server's connections ask for 64 KiB (uvloop and trio read into
    # buffers of their own and have no such attribute). A 300 KB body still arrives whole.
    sizes: list[object] = []
    serve = MockServer.serve_connection

    async def spy(self: MockServer, stream: Any) -> None:
        try:
            await serve(self, stream)
        finally:  # the server's exit may cancel the handler
            transport = getattr(stream, "_transport", None)
            sizes.append(getattr(transport, "max_size", None))

    monkeypatch.setattr(MockServer, "serve_connection", spy)
    prompt = "word " * 60_000
    async with open_mock_server() as server, client(server) as c:
        r = await c.post("/v1/completions", json={**COMPLETION, "prompt": prompt})
        assert r.status_code == 200
        assert events_json(r.text)[-1]["usage"]["prompt_tokens"] == 60_000
    uvloop_or_trio = anyio_backend != ("asyncio", {})
    assert sizes == ([None] if uvloop_or_trio else [65536])


async def test_completions_usage_follows_request_unless_configured():
    body = {k: v for k, v in COMPLETION.items() if k != "stream_options"}
    async with open_mock_server() as server, client(server) as c:
        plain = events_json((await c.post("/v1/completions", json=body)).text)
        server.behaviour = MockBehaviour(usage=True)
        forced = events_json((await c.post("/v1/completions", json=body)).text)
        server.behaviour = MockBehaviour(usage=False)
        off = events_json((await c.post("/v1/completions", json=COMPLETION)).text)
    assert all(ev["choices"] for ev in plain) and len(plain) == 4
    assert forced[-1]["usage"]["completion_tokens"] == 4 and len(forced) == 5
    assert all("usage" not in ev for ev in off)


async def test_output_length_default_and_cap():
    body = {"model": "m", "prompt": "x", "stream": True}
    async with open_mock_server(MockBehaviour(output_len=5)) as server, client(server) as c:
        default = events_json((await c.post("/v1/completions", json=body)).text)
        server.behaviour = MockBehaviour(max_output_len=2)
        capped = events_json((await c.post("/v1/completions", json=COMPLETION)).text)
    assert len(default) == 5
    assert default[-1]["choices"][0]["finish_reason"] == "stop"
    assert len([e for e in capped if e["choices"]]) == 2
    assert capped[-1]["usage"]["completion_tokens"] == 2


async def test_continuous_usage_and_tokens_per_event():
    b = MockBehaviour(continuous_usage=True, tokens_per_event=3)
    body = dict(COMPLETION, max_tokens=7)
    async with open_mock_server(b) as server, client(server) as c:
        events = events_json((await c.post("/v1/completions", json=body)).text)
    content = [e for e in events if e["choices"]]
    assert [len(e["choices"][0]["text"].split()) for e in content] == [3, 3, 1]
    assert [e["usage"]["completion_tokens"] for e in content] == [3, 6, 7]
    assert [len(t) for t in server.requests[0].event_tokens] == [3, 3, 1, 0]


async def test_separate_finish_chunk():
    async with open_mock_server(MockBehaviour(finish_chunk=True)) as server, client(server) as c:
        events = events_json((await c.post("/v1/completions", json=COMPLETION)).text)
    choices = [e["choices"][0] for e in events if e["choices"]]
    assert len(choices) == 5
    assert choices[-1] == {"index": 0, "text": "", "logprobs": None, "finish_reason": "length"}


async def test_non_streaming_completion_is_the_mii_dialect():
    body = {"model": "mii", "prompt": "a b", "max_tokens": 3, "temperature": 0.01}
    async with open_mock_server() as server, client(server) as c:
        r = await c.post("/v1/completions", json=body)
        server.behaviour = MockBehaviour(mii_legacy=True)
        legacy = (await c.post("/v1/completions", json=body)).json()
    assert r.headers["content-type"] == "application/json"
    assert int(r.headers["content-length"]) == len(r.content)
    data = r.json()
    assert data["object"] == "text_completion" and data["model"] == "mii"
    assert len(data["choices"][0]["text"].split()) == 3
    assert data["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    assert list(legacy) == ["text"] and len(legacy["text"][0].split()) == 3


async def test_chat_stream_with_reasoning():
    b = MockBehaviour(reasoning_tokens=2)
    async with open_mock_server(b) as server, client(server) as c:
        r = await c.post("/v1/chat/completions", json=CHAT)
    assert data_payloads(r.text)[-1] == "[DONE]"
    events = events_json(r.text)
    deltas = [e["choices"][0]["delta"] for e in events if e["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert [list(d) for d in deltas[1:]] == [["reasoning_content"]] * 2 + [["content"]] * 3
    assert all(e["object"] == "chat.completion.chunk" and e["model"] == "c1" for e in events)
    assert events[-2]["choices"][0]["finish_reason"] == "length"
    assert events[-1]["usage"] == {
        "prompt_tokens": 2,
        "completion_tokens": 5,
        "total_tokens": 7,
        "completion_tokens_details": {"reasoning_tokens": 2},
    }
    assert len("".join(d.get("content", "") for d in deltas).split()) == 3
    assert server.requests[0].event_tokens[0] == ()


async def test_chat_non_streaming():
    body = dict(CHAT, stream=False)
    async with open_mock_server(MockBehaviour(reasoning_tokens=1)) as server, client(server) as c:
        data = (await c.post("/v1/chat/completions", json=body)).json()
    message = data["choices"][0]["message"]
    assert data["object"] == "chat.completion"
    assert message["role"] == "assistant" and len(message["content"].split()) == 3
    assert len(message["reasoning_content"].split()) == 1
    assert data["usage"]["completion_tokens"] == 4


async def test_tgi_stream():
    body = {"inputs": "a b c", "parameters": {"max_new_tokens": 3, "do_sample": True}}
    async with open_mock_server() as server, client(server) as c:
        r = await c.post("/generate_stream", json=body)
        server.behaviour = MockBehaviour(tgi_eos=True)
        eos = events_json((await c.post("/generate_stream", json=body)).text)
    assert "[DONE]" not in r.text
    assert all(line.startswith("data:{") for line in r.text.split("\n") if line)
    events = events_json(r.text)
    assert [e["index"] for e in events] == [0, 1, 2]
    assert all(e["token"]["special"] is False for e in events)
    assert [e["generated_text"] for e in events[:-1]] == [None, None]
    text = "".join(e["token"]["text"] for e in events)
    assert events[-1]["generated_text"] == text
    assert events[-1]["details"] == {
        "finish_reason": "length",
        "generated_tokens": 3,
        "seed": None,
    }
    assert len(eos) == 4 and eos[-1]["token"]["special"] is True
    assert eos[-1]["token"]["text"] == "</s>" and eos[-1]["generated_text"] == text
    assert eos[-2]["generated_text"] is None


async def test_triton_stream_and_generate():
    body = {"text_input": "hi", "max_tokens": 3, "stream": True, "accumulate_tokens": True}
    async with open_mock_server() as server, client(server) as c:
        r = await c.post("/v2/models/ensemble/generate_stream", json=body)
        whole = (await c.post("/v2/models/ensemble/generate", json=body)).json()
    assert "[DONE]" not in r.text
    events = events_json(r.text)
    assert len(events) == 3
    assert events[0] == {
        "model_name": "ensemble",
        "model_version": "1",
        "sequence_end": False,
        "sequence_id": 0,
        "text_output": events[0]["text_output"],
    }
    assert "".join(e["text_output"] for e in events) == whole["text_output"]


async def test_audio_stream_records_form():
    form = {
        "model": "whisper",
        "temperature": "0.0",
        "max_completion_tokens": "3",
        "stream": "True",
        "language": "en",
        "stream_include_usage": "True",
        "stream_continuous_usage_stats": "True",
    }
    files = {"file": ("file", b"RIFF0000WAVE", "audio/wav")}
    async with open_mock_server() as server, client(server) as c:
        r = await c.post("/v1/audio/transcriptions", data=form, files=files)
        plain = await c.post("/v1/audio/translations", data={"model": "w"}, files=files)
    events = events_json(r.text)
    assert data_payloads(r.text)[-1] == "[DONE]"
    assert all(e["object"] == "transcription.chunk" for e in events)
    content = [e for e in events if e["choices"]]
    assert len("".join(e["choices"][0]["delta"]["content"] for e in content).split()) == 3
    assert [e["usage"]["completion_tokens"] for e in content] == [1, 2, 3]
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] == 3
    assert list(plain.json()) == ["text"] and len(plain.json()["text"].split()) == 16
    rec = server.requests[0]
    assert rec.form == form
    assert rec.files["file"].filename == "file"
    assert rec.files["file"].content_type == "audio/wav"
    assert rec.files["file"].size == 12
    assert rec.json is None


@pytest.mark.parametrize("flag", ["true", "1"])
async def test_audio_stream_flag_spellings(flag):
    files = {"file": ("a.wav", b"x", "audio/wav")}
    async with open_mock_server() as server, client(server) as c:
        r = await c.post("/v1/audio/transcriptions", data={"stream": flag}, files=files)
    assert r.headers["content-type"].startswith("text/event-stream")


async def test_audio_overrides_by_header_or_form_field():
    files = {"file": ("a.wav", b"x", "audio/wav")}
    hdr = {"x-mock-behaviour": json.dumps({"output_len": 2})}
    async with open_mock_server() as server, client(server) as c:
        by_header = await c.post("/v1/audio/transcriptions", files=files, headers=hdr)
        by_field = await c.post(
            "/v1/audio/transcriptions", files=files, data={"mock": '{"status": 500}'}
        )
    assert len(by_header.json()["text"].split()) == 2
    assert by_field.status_code == 500


async def test_pooling_endpoints_and_metadata():
    async with open_mock_server(MockBehaviour(embedding_dim=4), model="srv") as server:
        async with client(server) as c:
            emb = (await c.post("/v1/embeddings", json={"model": "e", "input": "a b c"})).json()
            b64 = await c.post("/v1/embeddings", json={"input": ["x"], "encoding_format": "base64"})
            raw = await c.post("/v1/embeddings", json={"input": "x y", "encoding_format": "bytes"})
            docs = {"query": "q", "documents": ["a", "b c", "d"], "top_n": 2}
            rr = (await c.post("/rerank", json=docs)).json()
            rr1 = (await c.post("/v1/rerank", json=docs)).json()
            pool = (await c.post("/pooling", json={"model": "p", "input": "a b"})).json()
            models = (await c.get("/v1/models")).json()
            health = await c.get("/health")
            prof = [await c.post(p) for p in ("/start_profile", "/stop_profile")]
    assert emb["object"] == "list" and emb["model"] == "e"
    assert emb["data"][0]["object"] == "embedding" and emb["data"][0]["index"] == 0
    assert len(emb["data"][0]["embedding"]) == 4
    assert emb["usage"]["prompt_tokens"] == 3 and emb["usage"]["total_tokens"] == 3
    assert isinstance(b64.json()["data"][0]["embedding"], str)
    assert len(raw.content) == 16
    assert json.loads(raw.headers["metadata"])["usage"]["prompt_tokens"] == 2
    assert rr["results"] == rr1["results"] and len(rr["results"]) == 2
    scores = [r["relevance_score"] for r in rr["results"]]
    assert scores == sorted(scores, reverse=True)
    assert rr["usage"]["prompt_tokens"] == 5
    assert len(pool["data"][0]["data"]) == 4 and pool["usage"]["prompt_tokens"] == 2
    assert models == {
        "object": "list",
        "data": [{"id": "srv", "object": "model", "root": "srv", "owned_by": "mock"}],
    }
    assert health.status_code == 200 and health.content == b""
    assert [p.status_code for p in prof] == [200, 200]


async def test_unicode_tokens():
    async with open_mock_server(MockBehaviour(unicode=True)) as server, client(server) as c:
        r = await c.post("/v1/completions", json=dict(COMPLETION, max_tokens=8))
    text = "".join(e["choices"][0]["text"] for e in events_json(r.text) if e["choices"])
    assert len(text.split()) == 8
    assert any(len(ch.encode()) >= 3 for ch in text)
    assert "\\u" not in r.text  # raw UTF-8 on the wire, not JSON escapes


# --- HTTP behaviour ------------------------------------------------------------------------


async def test_errors_for_bad_requests():
    async with open_mock_server() as server, client(server) as c:
        missing = await c.post("/nope", json={})
        bad_json = await c.post("/v1/completions", content=b"{nope", headers={"x": "y"})
        not_obj = await c.post("/v1/completions", json=[1])
        bad_mock = await c.post("/v1/completions", json={"mock": {"no_such_field": 1}})
        bad_header = await c.post("/v1/completions", json={}, headers={"x-mock-behaviour": "{"})
        wrong_method = await c.get("/v1/completions")
        ok = await c.post("/v1/completions", json=COMPLETION)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == 404
    for r in (bad_json, not_obj, bad_mock, bad_header):
        assert r.status_code == 400
        assert r.json()["error"]["type"] == "BadRequestError"
    assert "no_such_field" in bad_mock.json()["error"]["message"]
    assert wrong_method.status_code == 405
    assert ok.status_code == 200
    assert server.stats.connections == 1  # errors keep the connection alive
    assert server.errors == []


async def test_keep_alive_and_chunked_request_body():
    async def body() -> AsyncIterator[bytes]:
        yield b'{"model": "m", "prompt": "a b",'
        yield b' "max_tokens": 2, "stream": true}'

    async with open_mock_server() as server, client(server) as c:
        for _ in range(3):
            r = await c.post("/v1/completions", json=COMPLETION)
            assert r.status_code == 200
        r = await c.post("/v1/completions", content=body())
    assert len(events_json(r.text)) == 2
    assert server.requests[-1].header("transfer-encoding") == "chunked"
    assert server.requests[-1].json["prompt"] == "a b"
    assert server.stats.connections == 1
    assert server.stats.requests == 4


async def test_per_request_overrides():
    override = {"mock": {"output_len": 2, "tokens_per_event": 2}}
    body = {"model": "m", "prompt": "p", "stream": True, **override}
    async with open_mock_server() as server, client(server) as c:
        a = events_json((await c.post("/v1/completions", json=body)).text)
        hdr = {"x-mock-behaviour": json.dumps({"status": 503})}
        b = await c.post("/v1/completions", json=COMPLETION, headers=hdr)
        c3 = events_json((await c.post("/v1/completions", json=COMPLETION)).text)
    assert len(a) == 1 and len(a[0]["choices"][0]["text"].split()) == 2
    assert b.status_code == 503
    assert len(c3) == 5  # the override applied to its request only
    assert server.requests[0].json == body  # recorded as received


async def test_timing_follows_ttft_and_itl():
    b = MockBehaviour(ttft=0.05, itl=0.02)
    async with open_mock_server(b) as server, client(server) as c:
        await c.post("/v1/completions", json=COMPLETION)
    rec = server.requests[0]
    times = rec.sent_times
    # Deadlines are absolute, so each event's lower bound holds whatever the load.
    for k in range(4):
        assert times[k] - rec.received_at >= 0.05 + k * 0.02 - 0.002, (k, times)
    assert times[3] - rec.received_at < 1.0
    assert times[4] >= times[3]  # the usage trailer needs no extra step


async def test_split_events_arrive_as_separate_chunks():
    b = MockBehaviour(split_at=[5, 20], split_delay=0.005)
    async with open_mock_server(b) as server, client(server) as c:
        body = dict(COMPLETION, max_tokens=2, stream_options={})
        async with c.stream("POST", "/v1/completions", json=body) as r:
            pieces = [p async for p in r.aiter_raw()]
    whole = b"".join(pieces)
    frames = [f + b"\n\n" for f in whole.split(b"\n\n") if f]
    assert len(frames) == 3
    expected = []
    for frame in frames:
        expected += [p for p in (frame[:5], frame[5:20], frame[20:]) if p]
    assert pieces == expected


async def test_split_every_and_trickle_keep_content():
    async with open_mock_server(MockBehaviour(split_every=7, split_delay=0)) as server:
        async with client(server) as c:
            split = (await c.post("/v1/completions", json=COMPLETION)).text
            server.behaviour = MockBehaviour(trickle=True)
            trickled = await c.post("/v1/completions", json=dict(COMPLETION, max_tokens=2))
            whole = await c.post("/v1/completions", json=dict(COMPLETION, stream=False))
    assert [e["choices"] for e in events_json(split)][0][0]["text"] == " the"
    assert len(events_json(split)) == 5
    assert len(events_json(trickled.text)) == 3
    assert whole.json()["usage"]["completion_tokens"] == 4


async def test_framing_options():
    b = MockBehaviour(
        line_ending="\r\n", data_space=False, event_ids=True, ping_every=2, send_done=False
    )
    async with open_mock_server(b) as server, client(server) as c:
        r = await c.post("/v1/completions", json=COMPLETION)
    text = r.text
    assert "\r\n\r\n" in text and "\n\n" not in text.replace("\r\n", "")
    assert "data: " not in text and "data:{" in text
    assert "[DONE]" not in text
    assert text.count(": ping\r\n\r\n") == 2
    assert "id: 0\r\ndata:{" in text and "id: 4\r\n" in text
    assert len(events_json(text)) == 5


async def test_content_type_override():
    b = MockBehaviour(content_type="text/plain")
    async with open_mock_server(b) as server, client(server) as c:
        r = await c.post("/v1/completions", json=COMPLETION)
    assert r.headers["content-type"] == "text/plain"


# --- faults --------------------------------------------------------------------------------


@pytest.mark.parametrize("html", [False, True])
async def test_status_fault(html):
    b = MockBehaviour(status=429, error_body="html" if html else "json")
    async with open_mock_server(b) as server, client(server) as c:
        r = await c.post("/v1/completions", json=COMPLETION)
        health = await c.get("/health")
    assert r.status_code == 429
    if html:
        assert r.headers["content-type"].startswith("text/html") and "<html>" in r.text
    else:
        assert r.json() == {
            "error": {"message": "mock error", "type": "RateLimitError", "code": 429}
        }
    assert health.status_code == 200  # faults only hit generation endpoints
    assert server.requests[0].fault == "status"


async def test_reset_fault():
    async with open_mock_server(MockBehaviour(reset_after=2)) as server, client(server) as c:
        got = []
        with pytest.raises(httpx.TransportError):
            async with c.stream("POST", "/v1/completions", json=COMPLETION) as r:
                async for line in r.aiter_lines():
                    got.append(line)
        assert server.requests[0].fault == "reset"
        assert len(server.requests[0].sent_times) == 2
        server.behaviour = MockBehaviour()
        ok = await c.post("/v1/completions", json=COMPLETION)
    assert len([g for g in got if g.startswith("data")]) <= 2
    assert ok.status_code == 200
    assert server.errors == []


async def test_reset_before_body_of_whole_response():
    async with open_mock_server(MockBehaviour(reset_after=0)) as server, client(server) as c:
        with pytest.raises(httpx.TransportError):
            await c.post("/v1/completions", json=dict(COMPLETION, stream=False))
    assert server.errors == []


async def test_stall_fault_times_out_client():
    b = MockBehaviour(stall_after=1)
    async with open_mock_server(b) as server, client(server, timeout=0.2) as c:
        lines = []
        with pytest.raises(httpx.ReadTimeout):
            async with c.stream("POST", "/v1/completions", json=COMPLETION) as r:
                async for line in r.aiter_lines():
                    lines.append(line)
    assert len(data_payloads("\n".join(lines))) == 1
    assert server.errors == []


async def test_stall_with_duration_resumes():
    b = MockBehaviour(stall_after=1, stall_duration=0.05)
    async with open_mock_server(b) as server, client(server) as c:
        r = await c.post("/v1/completions", json=COMPLETION)
    rec = server.requests[0]
    assert len(events_json(r.text)) == 5
    assert rec.sent_times[1] - rec.received_at >= 0.05 - 0.002


@pytest.mark.parametrize("fault", ["hang", "headers_then_hang"])
async def test_hangs_time_out_client(fault):
    async with open_mock_server(MockBehaviour().with_overrides({fault: True})) as server:
        async with client(server, timeout=0.15) as c:
            if fault == "hang":
                with pytest.raises(httpx.ReadTimeout):
                    await c.post("/v1/completions", json=COMPLETION)
            else:
                async with c.stream("POST", "/v1/completions", json=COMPLETION) as r:
                    assert r.status_code == 200
                    with pytest.raises(httpx.ReadTimeout):
                        await r.aread()
    assert server.requests[0].fault == fault


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("error_after", 'data: {"error": {"message": "mock error", "type": "server_error"'),
        ("error_event_after", "event: error\ndata: {"),
        ("malformed_after", "data: {not json\n"),
    ],
)
async def test_in_stream_faults_end_the_stream(field, expected):
    async with (
        open_mock_server(MockBehaviour().with_overrides({field: 2})) as server,
        client(server) as c,
    ):
        r = await c.post("/v1/completions", json=COMPLETION)
        again = await c.post("/v1/completions", json=COMPLETION)
    assert r.status_code == 200
    assert expected in r.text
    assert "[DONE]" not in r.text
    assert r.text.count("text_completion") == 2
    assert again.status_code == 200
    assert server.stats.connections == 1


async def test_client_disconnect_mid_stream_does_not_hurt():
    b = MockBehaviour(itl=0.005, output_len=200)
    body = {"model": "m", "prompt": "p", "stream": True}
    payload = json.dumps(body).encode()
    request = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%b" % (
        len(payload),
        payload,
    )
    async with open_mock_server(b) as server:
        async with await anyio.connect_tcp(server.host, server.port) as sock:
            await sock.send(request)
            assert (await sock.receive()).startswith(b"HTTP/1.1 200 OK")
        await wait_for(lambda: server.stats.active_connections == 0)
        async with client(server) as c:
            r = await c.post("/v1/completions", json=COMPLETION)
    assert r.status_code == 200
    assert server.stats.client_disconnects == 1
    assert not server.requests[0].completed
    assert server.errors == []


async def test_exit_with_streams_in_flight():
    errors = []
    with anyio.fail_after(5):
        async with httpx.AsyncClient(timeout=5) as c, anyio.create_task_group() as tg:
            async with open_mock_server(MockBehaviour(stall_after=1)) as server:
                url = f"{server.base_url}/v1/completions"

                async def request():
                    try:
                        await c.post(url, json=COMPLETION)
                    except httpx.TransportError as exc:
                        errors.append(exc)

                for _ in range(3):
                    tg.start_soon(request)
                await wait_for(lambda: server.stats.events >= 3)
            # Leaving the block closed the stalled connections under the clients.
    assert len(errors) == 3
    assert server.stats.active_connections == 0


async def test_fault_rate_is_seeded_and_survivable():
    b = MockBehaviour(fault_rate=1.0, seed=7, fault_stall=0.01)
    kinds = []
    for _ in range(2):
        async with open_mock_server(b) as server, client(server, timeout=2) as c:
            for _ in range(8):
                try:
                    await c.post("/v1/completions", json=COMPLETION)
                except httpx.TransportError:
                    pass
            kinds.append([r.fault for r in server.requests])
            assert server.errors == []
            assert (await c.get("/health")).status_code == 200
    assert kinds[0] == kinds[1]
    assert all(k in {"status", "reset", "error_event", "stall"} for k in kinds[0])


async def test_record_false_keeps_counters():
    async with open_mock_server(record=False) as server, client(server) as c:
        await c.post("/v1/completions", json=COMPLETION)
    assert server.requests == []
    assert server.stats.requests == 1
    assert server.stats.tokens == 4 and server.stats.events == 5


async def test_control_endpoints():
    async with open_mock_server() as server, client(server) as c:
        await c.post("/v1/completions", json=COMPLETION)
        recs = (await c.get("/mock/requests")).json()
        stats = (await c.get("/mock/stats")).json()
        new = (await c.post("/mock/behaviour", json={"output_len": 3})).json()
        bad = await c.post("/mock/behaviour", json={"ttft": -1})
        events = events_json(
            (await c.post("/v1/completions", json={"prompt": "x", "stream": True})).text
        )
        reset = await c.post("/mock/reset")
        after = (await c.get("/mock/requests")).json()
        stats_after = (await c.get("/mock/stats")).json()
    assert len(recs) == 1 and recs[0]["json"] == COMPLETION and recs[0]["path"] == "/v1/completions"
    assert len(recs[0]["sent_times"]) == 5
    assert stats["requests"] == 1 and stats["tokens"] == 4
    assert new["output_len"] == 3 and len(events) == 3 and events[0]["model"] == "mock-model"
    assert bad.status_code == 400
    assert reset.status_code == 200 and after == [] and stats_after["requests"] == 0
    assert server.behaviour.output_len == 3


async def test_bad_http_gets_400():
    async with open_mock_server() as server:
        reply = await exchange(server, b"NONSENSE\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert server.errors == []


LIMIT = 64


async def exchange(server: MockServer, data: bytes) -> bytes:
    """Send *data* and read until the server closes. The server must answer without
    the rest of any body *data* announces: nothing more is ever sent."""
    async with await anyio.connect_tcp(server.host, server.port) as s:
        await s.send(data)
        reply = b""
        with anyio.fail_after(5):
            try:
                while chunk := await s.receive():
                    reply += chunk
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass
    return reply


def assert_413(reply: bytes, limit: int = LIMIT) -> None:
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 "), reply[:200]
    assert b"connection: close" in head.lower()
    assert b"100 continue" not in head.lower()
    error = json.loads(body)["error"]
    assert error["code"] == 413 and str(limit) in error["message"]


@pytest.mark.parametrize(
    "request_head",
    [
        b"POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 65\r\n\r\n{",
        b"POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 65\r\n"
        b"expect: 100-continue\r\n\r\n",
        # One chunk over the limit, refused on its size line.
        b"POST /v1/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n41\r\n",
        # Chunks that pass the limit together; no terminating chunk ever comes.
        b"POST /v1/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
        + b"20\r\n"
        + b"x" * 32
        + b"\r\n"
        + b"20\r\n"
        + b"x" * 32
        + b"\r\n"
        + b"1\r\n",
    ],
    ids=["content-length", "expect-100-continue", "chunk", "chunks"],
)
async def test_body_over_the_limit_gets_413_unread(request_head: bytes) -> None:
    async with open_mock_server(max_body_size=LIMIT) as server:
        assert_413(await exchange(server, request_head))
        assert server.requests == [] and server.stats.requests == 0
        assert server.errors == []


async def test_body_at_the_limit_is_read() -> None:
    body = json.dumps({"prompt": "a", "max_tokens": 1, "pad": ""}).encode()
    body = body[:-2] + b"x" * (LIMIT - len(body)) + body[-2:]
    assert len(body) == LIMIT
    async with open_mock_server(max_body_size=LIMIT) as server, client(server) as c:
        r = await c.post("/v1/completions", content=body)
        too_big = await c.post("/v1/completions", content=body + b" ")
        again = await c.post("/v1/completions", content=body)
    assert r.status_code == again.status_code == 200
    assert too_big.status_code == 413
    assert server.stats.connections == 2  # the 413 closed the first one
    assert server.errors == []


async def test_default_body_limit_is_16_mib() -> None:
    async with open_mock_server() as server:
        assert server.max_body_size == 16 * 1024 * 1024
        declared = b"content-length: %d\r\n" % (16 * 1024 * 1024 + 1)
        assert_413(
            await exchange(server, b"POST /v1/completions HTTP/1.1\r\n" + declared + b"\r\n"),
            16 * 1024 * 1024,
        )


def test_server_thread_and_cli_take_the_body_limit() -> None:
    with MockServerThread(max_body_size=LIMIT) as server:
        assert server.max_body_size == LIMIT
    import argparse

    from anyio_llmreq.testing._cli import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    assert parser.parse_args(["mock-server"]).max_body_size == 16 * 1024 * 1024
    args = parser.parse_args(["mock-server", "--max-body-size", "-1"])
    assert args.func(args) == 2


def test_cli_answers_as_the_embedded_server_and_every_flag_says_what_it_does() -> None:
    import argparse

    from anyio_llmreq.bench import BenchConfig
    from anyio_llmreq.testing._cli import add_parser, behaviour_from_args

    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    add_parser(subparsers)
    behaviour = behaviour_from_args(parser.parse_args(["mock-server"]))
    config = BenchConfig()
    assert (behaviour.ttft, behaviour.itl) == (config.mock_ttft, config.mock_itl) == (0.05, 0.01)
    command = subparsers.choices["mock-server"]
    assert [a.dest for a in command._actions if not a.help] == []
    text = " ".join(command.format_help().split())
    assert "seconds to the first event (default: 0.05)" in text
    assert "answered 413 (default: 16 MiB)" in text
    assert "(default: None)" not in text and "(default: False)" not in text


# --- sync pieces -----------------------------------------------------------------------------


def test_behaviour_overrides_validate():
    b = MockBehaviour()
    assert b.with_overrides({"split_at": [9, 3, 3]}).split_at == (3, 9)
    with pytest.raises(ValueError, match="unknown"):
        b.with_overrides({"nope": 1})
    with pytest.raises(ValueError):
        b.with_overrides({"line_ending": "x"})
    with pytest.raises(ValueError):
        b.with_overrides({"itl": "fast"})
    assert json.loads(json.dumps(b.to_json()))["line_ending"] == "\n"


@pytest.mark.parametrize("backend", ["asyncio", "uvloop", "trio"])
def test_server_thread(backend):
    with MockServerThread(MockBehaviour(output_len=2), backend=backend) as server:
        with httpx.Client(base_url=server.base_url, timeout=5) as c:
            r = c.post("/v1/completions", json={"prompt": "x", "stream": True})
            server.behaviour = MockBehaviour(output_len=1)
            r2 = c.post("/v1/completions", json={"prompt": "x", "stream": True})
        assert len(events_json(r.text)) == 2 and len(events_json(r2.text)) == 1
        assert len(server.requests) == 2
        server.reset()
        assert server.requests == []
    with pytest.raises(httpx.ConnectError), httpx.Client() as c:
        c.get(f"{server.base_url}/health")


def test_server_thread_start_failure():
    with MockServerThread() as first:
        with pytest.raises(RuntimeError, match="failed to start"):
            MockServerThread(port=first.port).start()


def test_cli_runs_until_sigterm():
    code = (
        "import argparse, sys\n"
        "from anyio_llmreq.testing._cli import add_parser\n"
        "p = argparse.ArgumentParser(); add_parser(p.add_subparsers())\n"
        "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))\n"
    )
    args = ["mock-server", "--port", "0", "--model", "cli-model", "--output-len", "2"]
    env = dict(os.environ, PYTHONWARNINGS="error")
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("mock server listening on http://127.0.0.1:")
        url = line.split(" on ", 1)[1].strip()
        with httpx.Client(base_url=url, timeout=5) as c:
            assert c.get("/v1/models").json()["data"][0]["id"] == "cli-model"
            r = c.post("/v1/completions", json={"prompt": "x", "stream": True})
            assert len(events_json(r.text)) == 2
        time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
