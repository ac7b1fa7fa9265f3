"""Security basics: the API key stays secret, TLS is verified unless told otherwise.

The key must never show up in ``repr(client)``, in outputs, in our error text or in
logs; it goes only to the server it is meant for (not to backends that take no key,
not across a redirect to another origin).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import pathlib
import ssl
import time
from typing import Any

import pytest

import anyio_llmreq
from anyio_llmreq import Client, RequestFuncInput, RequestFuncOutput, Timeouts
from anyio_llmreq.testing import MockBehaviour, open_mock_server

from .clients import make_client
from .rawserver import Connection, RawServer, head, refused_port, self_signed_cert

pytestmark = pytest.mark.anyio

KEY = "sk-test-9f8e7d6c5b4a39281706"
CHAT = "/v1/chat/completions"




def no_key(out: RequestFuncOutput) -> None:
    assert KEY not in json.dumps(dataclasses.asdict(out))
    assert KEY not in repr(out)


def test_key_not_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert KEY not in repr(Client(api_key=KEY))
    assert KEY not in repr(Client())
    assert KEY not in str(Client(api_key=KEY))


@pytest.mark.parametrize("source", ["argument", "environment"])
async def test_key_is_sent_and_never_echoed(
    transport: str,
    source: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # httpx and httpcore log requests at INFO and DEBUG
    kwargs: dict[str, Any] = {}
    if source == "environment":
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
    else:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        kwargs["api_key"] = KEY
    async with open_mock_server(MockBehaviour()) as server:
        async with make_client(transport, **kwargs) as client:
            url = server.base_url + CHAT
            ok = await client.send("openai-chat", RequestFuncInput("hi", url, 1, 4, "m"))
            bad = await client.send(
                "openai-chat",
                RequestFuncInput("hi", url, 1, 4, "m", extra_body={"mock": {"status": 401}}),
            )
            assert KEY not in repr(client)
    assert ok.success and not bad.success
    assert [r.header("authorization") for r in server.requests] == [f"Bearer {KEY}"] * 2
    no_key(ok)
    no_key(bad)
    assert KEY not in caplog.text


async def test_key_not_in_errors_of_any_kind(
    transport: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    cert, key = self_signed_cert(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    outs = []
    with (
        refused_port() as port,
        RawServer(lambda conn: conn.wait_for_client_close(5), tls=context) as tls_server,
    ):
        refused = f"http://127.0.0.1:{port}{CHAT}"
        async with open_mock_server(MockBehaviour()) as server:
            async with make_client(transport, timeouts=Timeouts(read=0.2)) as client:
                for url, mock in [
                    (refused, None),
                    (tls_server.url(CHAT, "https"), None),
                    (server.base_url + CHAT, {"stall_after": 1}),
                    (server.base_url + CHAT, {"reset_after": 1}),
                    (server.base_url + CHAT, {"malformed_after": 1}),
                    (server.base_url + CHAT, {"status": 403}),
                ]:
                    extra = {"mock": mock} if mock else None
                    request = RequestFuncInput("hi", url, 1, 4, "m", extra_body=extra)
                    outs.append(await client.send("openai-chat", request))
    for out in outs:
        assert not out.success and out.error
        no_key(out)


async def test_no_key_no_authorization_header(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ``Authorization: Bearer None`` when there is no key (vLLM #33412)."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    async with open_mock_server(MockBehaviour()) as server:
        async with make_client(transport) as client:
            url = server.base_url + CHAT
            out = await client.send("openai-chat", RequestFuncInput("hi", url, 1, 4, "m"))
    assert out.success
    assert server.requests[0].header("authorization") is None


@pytest.mark.parametrize(
    ("backend", "path"),
    [("tgi", "/generate_stream"), ("tensorrt-llm", "/v2/models/ensemble/generate_stream")],
)
async def test_key_not_sent_to_backends_without_auth(
    transport: str, backend: str, path: str
) -> None:
    async with open_mock_server(MockBehaviour()) as server:
        async with make_client(transport, api_key=KEY) as client:
            url = server.base_url + path
            out = await client.send(backend, RequestFuncInput("hi", url, 1, 4, "m"))
    assert out.success, out.error
    assert server.requests[0].header("authorization") is None


async def test_key_not_forwarded_across_a_redirect(transport: str) -> None:
    async with open_mock_server(MockBehaviour()) as target:

        def redirect(conn: Connection) -> None:
            location = ("Location", target.base_url + CHAT)
            conn.send(head(307, [location, ("Content-Length", "0")], "Temporary Redirect"))

        with RawServer(redirect) as origin:
            async with make_client(transport, api_key=KEY) as client:
                request = RequestFuncInput("hi", origin.url(CHAT), 1, 4, "m")
                out = await client.send("openai-chat", request)
    assert out.success, out.error
    assert target.requests[0].header("authorization") is None


# --- TLS ------------------------------------------------------------------------------------


async def test_tls_is_verified_as_httpx_verifies_and_can_be_turned_off(
    transport: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed_cert(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def reply(conn: Connection) -> None:
        body = b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n'
        headers = [("Content-Type", "text/event-stream"), ("Content-Length", str(len(body)))]
        conn.send(head(200, headers) + body)

    with RawServer(reply, tls=context) as server:
        url = server.url(CHAT, "https")
        async with make_client(transport) as client:
            refused = await client.send("openai-chat", RequestFuncInput("hi", url, 1, 4, "m"))
        async with make_client(transport, verify=False) as client:
            accepted = await client.send("openai-chat", RequestFuncInput("hi", url, 1, 4, "m"))
        # Trusted as httpx trusts: SSL_CERT_FILE names the certificate.
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        async with make_client(transport) as client:
            trusted = await client.send("openai-chat", RequestFuncInput("hi", url, 1, 4, "m"))
    assert not refused.success and "CERTIFICATE_VERIFY_FAILED" in refused.error
    assert accepted.success, accepted.error
    assert accepted.generated_text == "hi"
    assert trusted.success, trusted.error


async def test_chunked_token_stream_over_tls(transport: str, tmp_path: pathlib.Path) -> None:
    # Over TLS the asyncio path still pushes each (decrypted) read; trio reads in the task.
    cert, key = self_signed_cert(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def reply(conn: Connection) -> None:
        headers = [("Content-Type", "text/event-stream"), ("Transfer-Encoding", "chunked")]
        conn.send(head(200, headers))
        for word in ["a", "b", "c"]:
            event = b'data: {"choices":[{"delta":{"content":"%s"}}]}\n\n' % word.encode()
            conn.send(b"%x\r\n%s\r\n" % (len(event), event))
            time.sleep(0.02)
        done = b"data: [DONE]\n\n"
        conn.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))

    with RawServer(reply, tls=context) as server:
        url = server.url(CHAT, "https")
        async with make_client(transport, verify=False) as client:
            out = await client.send("openai-chat", RequestFuncInput("hi", url, 1, 4, "m"))
    assert out.success, out.error
    assert out.generated_text == "abc"
    assert len(out.itl) == 2 and min(out.itl) > 0  # separate reads, separately stamped


def test_get_tokenizer_does_not_trust_remote_code_by_default() -> None:
    parameter = inspect.signature(anyio_llmreq.get_tokenizer).parameters["trust_remote_code"]
    assert parameter.default is False
