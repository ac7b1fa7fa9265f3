"""JSON gives the same result with and without orjson (the ``fast`` extra).

The stdlib pair (``std_loads``/``std_dumps``) is the definition; the orjson pair
(``fast_loads``/``fast_dumps``) must give the same values, the same bytes and the same
exceptions on everything: random JSON texts and random Python values (hypothesis), the
known differences between the two libraries, and a request over a real socket.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import json
import math
import uuid
from typing import Any

import anyio
import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from anyio_llmreq import (
    ASYNC_REQUEST_FUNCS,
    RequestFuncInput,
    SSEEvent,
    StreamProtocolError,
    _json,
)
from anyio_llmreq.backends import decode_json, event_object
from anyio_llmreq.bench import _records

from .rawserver import Connection, RawServer, chunked, head

assert _json.fast_loads is not None and _json.fast_dumps is not None  # orjson: test extra
fast_loads = _json.fast_loads
fast_dumps = _json.fast_dumps
std_loads = _json.std_loads
std_dumps = _json.std_dumps


def outcome(func: Any, arg: Any) -> tuple[Any, str]:
    """What *func* makes of *arg*: its value (``repr``: types, order, ``-0.0`` and ``nan``
    count) or its exception's type and message."""
    try:
        return "ok", repr(func(arg))
    except Exception as exc:
        return type(exc), str(exc)


def same(func_fast: Any, func_std: Any, arg: Any) -> tuple[Any, str]:
    got, want = outcome(func_fast, arg), outcome(func_std, arg)
    assert got == want, arg
    return want


def definition(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


# --- strategies ---------------------------------------------------------------------------

# Any code point, lone surrogates included (the default alphabet leaves them out).
_any_text = st.text(st.characters(exclude_categories=()), max_size=6)
_ints = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**19]),
)
_json_scalars = st.one_of(st.none(), st.booleans(), _ints, st.floats(), _any_text)
json_values = st.recursive(
    _json_scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(_any_text, kids, max_size=4),
    max_leaves=12,
)
number_literals = st.from_regex(
    r"\A-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,22})?([eE][+-]?[0-9]{1,4})?\Z", fullmatch=True
)
_noise = st.sampled_from(list(' \t\n\r\x0c\x0b\xa0\u2028\ufeff\x00\x1f"\\,:[]{}-+.eE0123456789'))


@st.composite
def json_texts(draw: st.DrawFn) -> str | bytes:
    """A JSON text as a server might send it, or one near it, as str or in some encoding."""
    if draw(st.booleans()):
        text = json.dumps(
            draw(json_values),
            ensure_ascii=draw(st.booleans()),
            indent=draw(st.sampled_from([None, 1, "\t"])),
            separators=draw(st.sampled_from([None, (",", ":"), (" , ", " : ")])),
        )
    else:
        text = draw(number_literals)
        text = draw(st.sampled_from([text, f"[{text}]", f'{{"n":{text},"n":{text}}}']))
    mutation = draw(st.sampled_from(["none", "pad", "truncate", "insert"]))
    if mutation == "pad":
        pad = st.text(st.sampled_from(" \t\n\r\x0c\xa0\ufeff"), max_size=2)
        text = draw(pad) + text + draw(pad)
    elif mutation == "truncate":
        text = text[: draw(st.integers(0, len(text)))]
    elif mutation == "insert":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(_noise) + text[at:]
    encoding = draw(st.sampled_from(["str", "str", "utf-8", "utf-8-sig", "utf-16", "utf-32-be"]))
    if encoding == "str":
        return text
    data = text.encode(encoding, "surrogatepass")
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=2)) + data[at:]
    return data


class Color(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    LOW = 1


class Tag(str):
    pass


class Count(int):
    pass


class Ratio(float):
    pass


@dataclasses.dataclass
class Point:
    x: int = 1


_odd = st.sampled_from(
    [
        uuid.UUID(int=7),
        Color.RED,
        Level.LOW,
        Tag("t"),
        Count(3),
        Ratio(0.5),
        Ratio("nan"),
        Point(),
        datetime.date(2024, 1, 2),
        datetime.datetime(2024, 1, 2, 3, 4, 5),
        frozenset({1}),
        b"bytes",
        decimal.Decimal("1.5"),
        orjson.Fragment(b"1"),
        np.float64(0.25),
        np.int64(3),
        np.array([1, 2]),
    ]
)
_keys = st.one_of(
    _any_text,
    _ints,
    st.floats(),
    st.booleans(),
    st.none(),
    st.sampled_from([(1, 2), Tag("k"), Level.LOW, Color.RED, uuid.UUID(int=1)]),
)
python_values = st.recursive(
    st.one_of(_json_scalars, _odd, st.sets(st.integers(0, 3), max_size=2)),
    lambda kids: st.one_of(
        st.lists(kids, max_size=4),
        st.lists(kids, max_size=3).map(tuple),
        st.dictionaries(_keys, kids, max_size=4),
        st.dictionaries(st.text(max_size=3), kids, max_size=3).map(collections.OrderedDict),
    ),
    max_leaves=12,
)


# --- differential: orjson path against the stdlib ------------------------------------------


@given(json_texts())
def test_loads_matches_the_stdlib_on_random_texts(data: str | bytes) -> None:
    want = same(fast_loads, std_loads, data)
    assert want == outcome(json.loads, data)  # std_loads is json.loads (not nested deep)


@given(json_values)
def test_loads_matches_the_stdlib_on_random_values(value: Any) -> None:
    text = json.dumps(value, ensure_ascii=False)
    same(fast_loads, std_loads, text)
    same(fast_loads, std_loads, text.encode("utf-8", "surrogatepass"))


@given(python_values)
def test_dumps_matches_the_stdlib_on_random_values(value: Any) -> None:
    want = same(fast_dumps, std_dumps, value)
    assert want == outcome(definition, value)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_are_written_byte_for_byte_as_the_stdlib(x: float) -> None:
    assert fast_dumps({"x": x}) == std_dumps({"x": x}) == b'{"x":%s}' % repr(x).encode()
    assert fast_loads(repr(x)) == x == std_loads(repr(x))


@given(st.integers())
def test_integers_round_trip_exactly(n: int) -> None:
    text = fast_dumps([n])
    assert text == std_dumps([n])
    assert fast_loads(text) == [n] == std_loads(text)
    assert type(fast_loads(str(n))) is int


# --- the known differences, one by one ----------------------------------------------------


def test_int_keys_are_written_as_the_stdlib_writes_them() -> None:
    payload = {"logit_bias": {50256: -100, 1: 2.5}, "n": {True: 1, None: 2, 1.5: 3}}
    want = b'{"logit_bias":{"50256":-100,"1":2.5},"n":{"true":1,"null":2,"1.5":3}}'
    assert fast_dumps(payload) == std_dumps(payload) == want


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, [1, {"t": math.nan}]])
def test_nan_and_infinity_are_refused_in_both_modes(value: Any) -> None:
    for dumps in (fast_dumps, std_dumps):
        with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
            dumps(value)


@pytest.mark.parametrize(
    "value",
    [uuid.UUID(int=1), Color.RED, Point(), datetime.datetime(2024, 1, 1), {1}, np.array([1.0])],
    ids=["uuid", "enum", "dataclass", "datetime", "set", "ndarray"],
)
def test_what_the_stdlib_refuses_is_refused_in_both_modes(value: Any) -> None:
    for dumps in (fast_dumps, std_dumps):
        with pytest.raises(TypeError, match="is not JSON serializable"):
            dumps({"extra": [value]})


def test_dumps_edge_cases_match() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    deep: Any = []
    for _ in range(300):  # deeper than orjson nests
        deep = [deep]
    too_deep: Any = {}
    for _ in range(5000):  # deeper than the stack allows
        too_deep = {"a": too_deep}
    for dumps in (fast_dumps, std_dumps):
        with pytest.raises(ValueError, match="nested too deeply"):
            dumps(too_deep)
    for value in [
        2**64,
        -(2**63) - 1,
        [1e-05, 1e16, 1.5e300, 5e-324, -0.0, 0.0001, 9999999999999998.0],
        "\ud800",
        '\x00\x1f\x7f\u2028"\\/é🙂',
        cyclic,
        deep,
        Tag("s"),
        Level.LOW,
        np.float64(0.1),
        (1, "2"),
        collections.OrderedDict(a=1),
    ]:
        same(fast_dumps, std_dumps, value)


@pytest.mark.parametrize(
    "data",
    [
        "NaN",
        "[-Infinity, Infinity, NaN]",
        '{"logprob": -Infinity}',
        "18446744073709551616",
        "-9223372036854775809",
        "[123456789012345678901234567890]",
        "1e400",
        "-1e400",
        "1e-400",
        '"\\ud800"',
        '"\\udc00x"',
        '{"a": 1, "b": 2, "a": 3}',
        "\ufeff[1]",
        b"\xef\xbb\xbf[1]",
        "[1]".encode("utf-16"),
        '["é"]'.encode("utf-32"),
        b'"\xff"',
        b'"\xed\xa0\x80"',
        " \t\r\n[1] \t\r\n",
        "\x0c[1]",
        "\xa0[1]",
        '"\x00"',
        "",
        "[1,]",
        "01",
        "-0",
        "-0.0",
        bytearray(b"[1]"),
        memoryview(b"[1]"),
        1,
        None,
    ],
)
def test_loads_known_differences_behave_as_the_stdlib(data: Any) -> None:
    assert same(fast_loads, std_loads, data) == outcome(json.loads, data)


def test_loads_errors_are_value_errors_in_both_modes() -> None:
    for bad in ["{", "[1,]", "\ufeff1", b'"\xff"', "[" * 5000 + "]" * 5000]:
        for loads in (fast_loads, std_loads):
            with pytest.raises(ValueError):
                loads(bad)


def test_nesting_too_deep_is_a_decode_error_not_a_recursion_error() -> None:
    data = "[" * 5000 + "]" * 5000  # beyond orjson's limit and the stack's
    assert same(fast_loads, std_loads, data)[0] is json.JSONDecodeError
    shallow = "[" * 200 + "]" * 200
    assert fast_loads(shallow) == std_loads(shallow)


def test_events_with_nan_parse_and_bad_ones_fail_alike(json_impl: str) -> None:
    event = SSEEvent('{"choices":[{"text":"a","logprobs":{"top":[-Infinity, NaN]}}]}')
    obj = decode_json(event)
    assert math.isinf(obj["choices"][0]["logprobs"]["top"][0])
    assert math.isnan(obj["choices"][0]["logprobs"]["top"][1])
    assert repr(event_object(event)) == repr(obj)
    for bad in ['{"a": ', '{"a": ' + "[" * 5000, "[" * 5000]:
        with pytest.raises(StreamProtocolError, match="invalid JSON"):
            event_object(SSEEvent(bad))


def test_the_fast_path_is_taken_on_ordinary_json(monkeypatch: pytest.MonkeyPatch) -> None:
    """orjson does the work on what servers and payloads usually hold: the stdlib is
    not called (the check costs a scan, not a second parse)."""

    def fail(_: Any) -> Any:
        raise AssertionError("fell back to the stdlib")

    monkeypatch.setattr(_json, "std_loads", fail)
    monkeypatch.setattr(_json, "std_dumps", fail)
    event = (
        '{"id":"cmpl-6f1c2e8a9b3d4c5e8f7a6b5c4d3e2f1a","object":"text_completion",'
        '"created":1715000000,"choices":[{"index":0,"text":" é","logprobs":null}],'
        '"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}'
    )
    assert fast_loads(event) == json.loads(event)
    assert fast_loads(event.encode()) == json.loads(event)
    payload = {
        "model": "m",
        "prompt": [1, 2, 3] * 20,
        "temperature": 0.0,
        "top_p": 0.95,
        "max_tokens": 16,
        "logprobs": None,
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": [{"type": "text", "text": "héllo"}]}],
    }
    assert fast_dumps(payload) == definition(payload)


def test_the_fast_pair_is_the_default_where_orjson_is_installed() -> None:
    assert _json.loads is fast_loads and _json.dumps is fast_dumps


def test_json_impl_binds_the_pair_where_it_was_imported(json_impl: str) -> None:
    from anyio_llmreq import _engine
    from anyio_llmreq.backends import _base, _openai

    loads, dumps = (fast_loads, fast_dumps) if json_impl == "orjson" else (std_loads, std_dumps)
    assert _json.loads is _base.loads is loads
    assert _json.dumps is _engine.dumps is dumps
    # The token fast path's raw parser: orjson's own, or the stdlib's.
    raw = _json.token_loads if json_impl == "orjson" else std_loads
    assert _openai.token_loads is raw
    assert (raw is std_loads) == (json_impl == "stdlib")
    # The JSONL writer's (imported at the top of this module, before the fixture ran).
    record = _json.fast_record_dumps if json_impl == "orjson" else _json.std_record_dumps
    assert _records.record_dumps is record


# --- record_dumps: our own files, where values count, not bytes ----------------------------

assert _json.fast_record_dumps is not None
record_modes = pytest.mark.parametrize(
    "record_dumps", [_json.fast_record_dumps, _json.std_record_dumps], ids=["orjson", "stdlib"]
)


@record_modes
@given(json_values)
def test_records_read_back_as_the_values_written(record_dumps: Any, value: Any) -> None:
    """NaN, the infinities, lone surrogates and 70-bit integers included."""
    line = record_dumps({"record": value})
    assert b"\n" not in line
    assert repr(std_loads(line)) == repr({"record": value})


@record_modes
def test_a_nan_in_a_record_is_written_as_nan_not_null(record_dumps: Any) -> None:
    record = {
        "ttft": None,
        "itl": [0.01, math.nan],
        "http_phases": {"tls": None, "dns": -math.inf},
        "tpot": math.inf,
    }
    line = record_dumps(record)
    assert (
        line == b'{"ttft":null,"itl":[0.01,NaN],"http_phases":{"tls":null,"dns":-Infinity},'
        b'"tpot":Infinity}'
    )
    for value in ([1, "a", math.nan], {"a": [{"b": (math.nan,)}]}, Ratio("nan"), [2**70, math.inf]):
        assert b"null" not in record_dumps(value)


@record_modes
def test_record_keys_and_text_are_written_as_the_stdlib_writes_them(record_dumps: Any) -> None:
    assert record_dumps({1: 2, "é": "\u2028"}) == '{"1":2,"é":"\u2028"}'.encode()
    assert record_dumps({"s": "\ud800"}) == b'{"s":"\\ud800"}'  # ASCII escape: reads back


class _Floats(list):  # type: ignore[type-arg]
    pass


@dataclasses.dataclass
class _Timing:
    x: float = math.nan


@pytest.mark.parametrize(
    "value",
    [
        collections.OrderedDict(x=math.nan),
        _Floats([math.nan]),
        _Timing(),
        datetime.datetime(2024, 1, 2),
        Tag("t"),
    ],
    ids=["OrderedDict", "list subclass", "dataclass", "datetime", "str subclass"],
)
def test_records_with_what_orjson_writes_otherwise_match_the_stdlib(value: Any) -> None:
    """A NaN inside a container orjson writes itself (a subclass, a dataclass) would
    be its null: these go the stdlib's way, written or refused as it does."""
    assert _json.fast_record_dumps is not None
    record = {"a": [1, {"b": value}]}
    assert outcome(_json.fast_record_dumps, record) == outcome(_json.std_record_dumps, record)


def test_a_record_with_small_floats_is_written_by_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stdlib's encoder is not called for an ordinary record: a 30 us HTTP phase
    (``3e-05``) is not a reason to fall back, as it is for ``dumps``."""

    def fail(_: Any) -> Any:
        raise AssertionError("fell back to the stdlib")

    monkeypatch.setattr(_json, "std_record_dumps", fail)
    record = {
        "index": 0,
        "timeout": None,
        "generated_text": " hi é",
        "itl": [0.0091, 2.5e-05],
        "http_phases": {"connection_reused": True, "tls": None, "request_sent": 3.1e-05},
    }
    line = _json.fast_record_dumps(record)  # type: ignore[misc]
    assert repr(json.loads(line)) == repr(record)
    assert b"0.000031" in line


# --- end to end, over a real socket -------------------------------------------------------

_EVENTS = [
    b'{"id":"c","object":"text_completion","choices":[{"index":0,"text":"Hi",'
    b'"logprobs":{"token_logprobs":[-Infinity]}}],"usage":null}',
    b'{"id":"c","object":"text_completion","choices":[{"index":0,"text":" there",'
    b'"logprobs":{"top_logprobs":[{" there":NaN}]}}],"usage":null}',
    b'{"id":"c","object":"text_completion","choices":[{"index":0,"text":"!","logprobs":null,'
    b'"finish_reason":"length"}],"usage":null,"big":18446744073709551616}',
    b'{"id":"c","object":"text_completion","choices":[],'
    b'"usage":{"prompt_tokens":3,"completion_tokens":3,"total_tokens":6}}',
    b"[DONE]",
]


@pytest.mark.anyio
@pytest.mark.usefixtures("json_impl")
async def test_a_nan_in_the_request_fails_before_any_io() -> None:
    request = RequestFuncInput(
        "Hello", "http://127.0.0.1:9/v1/completions", 3, 3, "m", extra_body={"top_p": math.nan}
    )
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        await ASYNC_REQUEST_FUNCS["vllm"](request)


@pytest.mark.anyio
@pytest.mark.usefixtures("json_impl")
async def test_vllm_request_with_int_keys_and_a_stream_with_nan() -> None:
    """``extra_body={"logit_bias": {50256: -100}}`` is sent as the stdlib writes it and a
    stream whose events hold ``-Infinity``/``NaN`` is read, in both JSON modes."""
    bodies: list[bytes] = []

    def reply(conn: Connection) -> None:
        assert conn.request is not None
        bodies.append(conn.request.body)
        sse = [b"data: " + event + b"\n\n" for event in _EVENTS]
        headers = [
            ("Content-Type", "text/event-stream"),
            ("Transfer-Encoding", "chunked"),
            ("Connection", "close"),
        ]
        conn.send(head(200, headers))
        conn.send_all(chunked(sse))

    with RawServer(reply) as server:
        request = RequestFuncInput(
            "Hello",
            server.url("/v1/completions"),
            3,
            3,
            "m",
            extra_body={"logit_bias": {50256: -100}, "temperature": 1e-05},
        )
        with anyio.fail_after(10):
            out = await ASYNC_REQUEST_FUNCS["vllm"](request)
    assert not server.errors, server.errors
    assert out.success, out.error
    assert out.generated_text == "Hi there!"
    assert out.output_tokens == 3
    assert len(bodies) == 1
    assert b'"logit_bias":{"50256":-100}' in bodies[0]
    assert b'"temperature":1e-05' in bodies[0]
    assert json.loads(bodies[0])["logit_bias"] == {"50256": -100}
