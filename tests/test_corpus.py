"""The stream conformance corpus (``tests/corpus/``): every case, every split, every loop.

Each case is a byte-exact response body and the outputs it must produce. It runs
through the parser alone (``Exchange`` fed read by read, no I/O) at several split
patterns, and through the engine over a real socket (a raw server replays the bytes,
chunked or read-until-close, cut the same ways) on asyncio, uvloop and trio. Every run
of a case must give the same outputs, and those must match the expected file.
"""

from __future__ import annotations

import itertools
import json
import pathlib
import random
import re
import ssl
from collections.abc import Callable
from typing import Any

import anyio
import attrs
import httpx
import pytest

from anyio_llmreq import Client, RequestFuncInput, RequestFuncOutput, backend_names, get_backend
from anyio_llmreq._engine import Exchange, is_event_stream

from .rawserver import Connection, RawServer, chunked, head

CORPUS = pathlib.Path(__file__).parent / "corpus"

ENDPOINTS = {
    "openai": "/v1/completions",
    "openai-chat": "/v1/chat/completions",
    "tgi": "/generate_stream",
    "tensorrt-llm": "/v2/models/ensemble/generate_stream",
    "openai-audio": "/v1/audio/transcriptions",
}
COMPARED = (
    "success",
    "generated_text",
    "reasoning_text",
    "output_tokens",
    "output_tokens_source",
    "n_output_events",
)
# Plain-HTTP tests: one TLS context for every httpx transport saves ~20 ms each.
_TLS = ssl.create_default_context()
# Events larger than this are not replayed one byte per write (4 Mi writes).
_BYTEWISE_LIMIT = 64 * 1024


@attrs.frozen
class Case:
    id: str
    dialect: str
    sse: pathlib.Path
    expected: dict[str, Any]

    def _expand(self, text: str) -> str:
        spec = self.expected.get("expand")
        if spec is None:
            return text
        return text.replace(spec["marker"], spec["unit"] * spec["repeat"])

    def body(self) -> bytes:
        raw = self.sse.read_bytes()
        spec = self.expected.get("expand")
        if spec is None:
            return raw
        return raw.replace(spec["marker"].encode(), (spec["unit"] * spec["repeat"]).encode())

    def expect(self, key: str) -> Any:
        value = self.expected[key]
        return self._expand(value) if isinstance(value, str) else value

    @property
    def content_type(self) -> str | None:
        ctype: str | None = self.expected["content_type"]
        return ctype


def load_cases() -> list[Case]:
    cases = []
    for sse in sorted(CORPUS.glob("v*/*/*.sse")):
        expected = json.loads(sse.with_name(sse.stem + ".expected.json").read_text("utf-8"))
        dialect = sse.parent.name
        assert expected["backend"] == dialect, sse
        case_id = f"{sse.parent.parent.name}/{dialect}/{sse.stem}"
        cases.append(Case(case_id, dialect, sse, expected))
    return cases


CASES = load_cases()


def _params() -> list[Any]:
    registered = set(backend_names())
    params = []
    for case in CASES:
        marks: list[pytest.MarkDecorator] = []
        if case.dialect not in registered:
            reason = f"backend {case.dialect!r} is not registered (anyio_llmreq.backends)"
            marks.append(pytest.mark.skip(reason=reason))
        if case.expected.get("superseded_by"):
            marks.append(pytest.mark.skip(reason=f"superseded by {case.expected['superseded_by']}"))
        params.append(pytest.param(case, id=case.id, marks=marks))
    return params


# --- split patterns -------------------------------------------------------------------------


def whole(data: bytes) -> list[bytes]:
    return [data]


def bytewise(data: bytes) -> list[bytes]:
    size = 1 if len(data) <= _BYTEWISE_LIMIT else 4093
    return [data[i : i + size] for i in range(0, len(data), size)]


def random_cuts(data: bytes, seed: int = 20250101) -> list[bytes]:
    rng = random.Random(seed)
    top = 97 if len(data) <= _BYTEWISE_LIMIT else 65536
    pieces, pos = [], 0
    while pos < len(data):
        step = rng.randint(1, top)
        pieces.append(data[pos : pos + step])
        pos += step
    return pieces


_TERMINATOR = re.compile(rb"\r\n\r\n|\n\n|\r\r|\r\n\n|\n\r\n")


def at_events(data: bytes) -> list[bytes]:
    """Cut right after every event terminator: one event per read."""
    bounds = [0, *(m.end() for m in _TERMINATOR.finditer(data)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


Split = Callable[[bytes], list[bytes]]
SPLITS: dict[str, Split] = {
    "whole": whole,
    "bytes": bytewise,
    "random": random_cuts,
    "random-2": lambda data: random_cuts(data, seed=7),
    "events": at_events,
}
# Over the socket: (split, framing, transport). Chunked framing writes one chunk per
# piece; "default" is whatever ``Client()`` uses (our transport), "httpx" httpx's own.
SOCKET_RUNS = [
    ("whole", "chunked", "default"),
    ("bytes", "chunked", "default"),
    ("random", "close", "default"),
    ("events", "chunked", "default"),
    ("bytes", "close", "httpx"),
    ("random-2", "chunked", "httpx"),
]


# --- running a case -------------------------------------------------------------------------


def request_for(case: Case, url: str) -> RequestFuncInput:
    extra: dict[str, Any] = {}
    if case.dialect == "openai-audio":
        import numpy

        extra["multi_modal_content"] = {"audio": (numpy.zeros(160, dtype="float32"), 16000)}
    return RequestFuncInput("Say hello.", url, 3, 16, "m", **extra)


def summary(out: RequestFuncOutput) -> dict[str, Any]:
    """The outputs a case pins, independent of timings."""
    return {
        "success": out.success,
        "generated_text": out.generated_text,
        "reasoning_text": out.reasoning_text,
        "output_tokens": out.output_tokens,
        "output_tokens_source": out.output_tokens_source,
        "n_output_events": len(out.itl) + 1 if out.ttft else 0,
        "error": out.error,
    }


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else f"{text[:90]}...{text[-90:]} ({len(text)} chars)"


def check_expected(case: Case, got: dict[str, Any], how: str) -> None:
    for key in COMPARED:
        want = case.expect(key)
        assert got[key] == want, f"{case.id} [{how}] {key}: {_short(got[key])} != {_short(want)}"
    contains = case.expect("error_contains")
    if contains is None:
        assert got["error"] == "", f"{case.id} [{how}] unexpected error: {got['error']}"
    else:
        assert contains in got["error"], f"{case.id} [{how}] error: {_short(got['error'])}"
        assert "\n" not in got["error"]


def parse_alone(case: Case, pieces: list[bytes]) -> tuple[RequestFuncOutput, Exchange]:
    """What the engine does with these reads, minus the I/O (mirrors ``Client._pump``)."""
    backend = get_backend(case.dialect)
    ex = Exchange(backend, request_for(case, "http://corpus.test" + ENDPOINTS[case.dialect]))
    headers = {} if case.content_type is None else {"content-type": case.content_type}
    try:
        if is_event_stream(httpx.Response(200, headers=headers), backend):
            for i, piece in enumerate(pieces, 1):
                ex.feed(piece, float(i))
        else:
            for piece in pieces:
                ex.feed_body(piece)
            ex.feed_whole_body(float(len(pieces) + 1))
    except Exception as exc:
        ex.fail(exc)
    return ex.output(), ex


def merged_tool_calls(ex: Exchange) -> list[dict[str, Any]]:
    calls: dict[int, dict[str, Any]] = {}
    for delta in ex.acc.tool_calls:
        call = calls.setdefault(
            delta.index, {"index": delta.index, "id": None, "name": None, "arguments": ""}
        )
        call["id"] = call["id"] or delta.id
        call["name"] = call["name"] or delta.name
        call["arguments"] += delta.arguments
    return [calls[i] for i in sorted(calls)]


# With orjson and with the stdlib's JSON (tests/conftest.py). The socket runs below take
# the default one only: the JSON step is the same code either way, and test_json.py
# covers it over a socket in both modes.
@pytest.mark.usefixtures("json_impl")
@pytest.mark.parametrize("case", _params())
def test_parser_alone(case: Case) -> None:
    data = case.body()
    reference: dict[str, Any] | None = None
    for name, split in SPLITS.items():
        pieces = split(data)
        assert b"".join(pieces) == data
        out, ex = parse_alone(case, pieces)
        got = summary(out)
        check_expected(case, got, name)
        if "tool_calls" in case.expected:
            assert merged_tool_calls(ex) == case.expected["tool_calls"]
        if reference is None:
            reference = got
        else:
            assert got == reference, f"{case.id}: split {name!r} changed the outputs"


# --- over a real socket ----------------------------------------------------------------------


@attrs.define
class Replays:
    """Scripts the raw server replays, keyed by the first path segment."""

    scripts: dict[str, tuple[str | None, list[bytes], str]] = attrs.Factory(dict)
    _ids: itertools.count[int] = attrs.Factory(itertools.count)

    def add(self, content_type: str | None, pieces: list[bytes], framing: str) -> str:
        token = f"r{next(self._ids)}"
        self.scripts[token] = (content_type, pieces, framing)
        return token

    def __call__(self, conn: Connection) -> None:
        assert conn.request is not None
        token = conn.request.path.split("/")[1]
        content_type, pieces, framing = self.scripts.pop(token)
        headers = [("Connection", "close")]
        if content_type is not None:
            headers.append(("Content-Type", content_type))
        if framing == "chunked":
            headers.append(("Transfer-Encoding", "chunked"))
            pieces = chunked(pieces)
        conn.send(head(200, headers))
        conn.send_all(pieces)


@pytest.fixture(scope="module")
def replay_server() -> Any:
    replays = Replays()
    with RawServer(replays) as server:
        server.replays = replays  # type: ignore[attr-defined]
        yield server
    assert not server.errors, server.errors


@pytest.mark.anyio
@pytest.mark.parametrize("case", _params())
async def test_engine_over_socket(case: Case, replay_server: Any) -> None:
    data = case.body()
    want = summary(parse_alone(case, [data])[0])
    check_expected(case, want, "parser")
    results: dict[str, RequestFuncOutput] = {}

    async def one(client: Client, split: str, framing: str, transport: str) -> None:
        token = replay_server.replays.add(case.content_type, SPLITS[split](data), framing)
        url = replay_server.url(f"/{token}{ENDPOINTS[case.dialect]}")
        out = await client.send(case.dialect, request_for(case, url))
        results[f"{split}/{framing}/{transport}"] = out
        if (split, transport) == ("bytes", "httpx"):
            return  # byte-by-byte replays are slow; the default transport streams them
        # The same bytes through Client.stream: the same output, delta by delta.
        token = replay_server.replays.add(case.content_type, SPLITS[split](data), framing)
        url = replay_server.url(f"/{token}{ENDPOINTS[case.dialect]}")
        async with client.stream(case.dialect, request_for(case, url)) as stream:
            async for _ in stream:
                pass
        results[f"{split}/{framing}/{transport}/stream"] = stream.output

    with anyio.fail_after(20):
        async with (
            Client() as default,
            Client(transport=httpx.AsyncHTTPTransport(verify=_TLS)) as theirs,
            anyio.create_task_group() as tg,
        ):
            clients = {"default": default, "httpx": theirs}
            for split, framing, transport in SOCKET_RUNS:
                tg.start_soon(one, clients[transport], split, framing, transport)
    for how, out in results.items():
        got = summary(out)
        check_expected(case, got, how)
        assert got == want, f"{case.id}: {how} differs from the parser alone"
        if out.ttft:
            assert all(gap >= 0 for gap in out.itl)
            assert out.latency - out.ttft == pytest.approx(sum(out.itl), abs=1e-6)


def test_corpus_is_complete() -> None:
    """Every dialect directory has cases, and every case has its expected file."""
    for version in CORPUS.glob("v*"):
        for dialect in version.iterdir():
            if not dialect.is_dir():
                continue
            sse = {p.stem for p in dialect.glob("*.sse")}
            expected = {p.name.removesuffix(".expected.json") for p in dialect.glob("*.json")}
            assert sse and sse == expected, dialect
    assert {c.dialect for c in CASES} >= set(ENDPOINTS)
