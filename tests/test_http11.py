"""The sans-IO HTTP/1.1 codec (``anyio_llmreq._transport._http11``), differentially against h11.

h11 (0.16) is httpx's default wire layer, so where both parse a response we must read
the same status, reason, fields, body framing, keep-alive and chunk payloads, and what
h11 rejects as malformed we must reject too. The generators stay inside the grammar both
accept (plus the malformed shapes both must refuse); where the two knowingly differ, the
difference is pinned in ``test_documented_differences`` below with the reason.
"""

from __future__ import annotations

from typing import Any

import attrs
import h11
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anyio_llmreq._transport import _http11
from anyio_llmreq._transport._http11 import (
    MAX_HEAD,
    ChunkedDecoder,
    RawHeaders,
    framing,
    parse_head,
    parse_response,
)

from .strategies import split_at, splits

FAST = settings(max_examples=120, deadline=None)

# -- the two sides -----------------------------------------------------------------------

Head = tuple[bytes, int, bytes, RawHeaders]


def ours_head(head: bytes) -> Head | None:
    """Our parse of *head* (the bytes before the blank line), None when rejected."""
    try:
        return parse_head(head)
    except httpx.RemoteProtocolError:
        return None


def h11_client(method: str = "GET", close: bool = False, **kwargs: Any) -> h11.Connection:
    """An h11 client that has sent a whole request and now waits for the response."""
    conn = h11.Connection(h11.CLIENT, **kwargs)
    headers = [("Host", "example.com")] + ([("Connection", "close")] if close else [])
    conn.send(h11.Request(method=method, target="/", headers=headers))
    conn.send(h11.EndOfMessage())
    return conn


def h11_head(head: bytes) -> Head | None:
    """h11's parse of *head* in our terms, None when rejected."""
    conn = h11_client()
    conn.receive_data(head + b"\r\n\r\n")
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError:
        return None
    assert isinstance(event, h11.Response | h11.InformationalResponse), event
    # raw_items(): the names as sent (iterating gives them lowercased).
    headers = [(bytes(name), bytes(value)) for name, value in event.headers.raw_items()]
    return b"HTTP/" + event.http_version, event.status_code, bytes(event.reason), headers


# The bytes after the head: a last chunk, then filler. What h11 makes of them tells its
# framing: nothing consumed (no body), the last chunk alone (chunked), n bytes (length),
# or all of it and then the end of the connection (read until close).
PROBE = b"0\r\n\r\n" + b"x" * 10_000


def h11_framing(head: bytes, method: str, close: bool) -> tuple[str, int, bool] | None:
    """(framing, length, keep alive) as h11 reads the response, None when rejected."""
    conn = h11_client(method, close)
    conn.receive_data(head + b"\r\n\r\n" + PROBE)
    received = 0
    try:
        assert isinstance(conn.next_event(), h11.Response)
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Data):
                received += len(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                assert event is h11.NEED_DATA, event
                assert received == len(PROBE)
                conn.receive_data(b"")
                assert isinstance(conn.next_event(), h11.EndOfMessage)
                return "close", 0, False
    except h11.RemoteProtocolError:
        return None
    keep_alive = conn.our_state is h11.DONE and conn.their_state is h11.DONE
    if received:
        return "length", received, keep_alive
    left = bytes(conn.trailing_data[0])
    if left == PROBE:
        return "length", 0, keep_alive
    assert left == PROBE[5:]
    return "chunked", 0, keep_alive


def ours_framing(head: bytes, method: str, close: bool) -> tuple[str, int, bool] | None:
    """What the transport does with the response: parse_head, then framing."""
    try:
        version, status, _, headers = parse_head(head)
        length, chunked, keep_alive = framing(
            version, status, method, headers, keep_alive=not close
        )
    except httpx.RemoteProtocolError:
        return None
    if chunked:
        return "chunked", 0, keep_alive
    if length is None:
        return "close", 0, keep_alive
    return "length", length, keep_alive


# -- response heads ----------------------------------------------------------------------

TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Field-value bytes both accept: VCHAR, obs-text, and the controls h11 lets through (not
# NUL, CR, LF, nor VT/FF, which h11's \s refuses and we take: see the differences).
VALUE_BYTES = bytes(b if b not in b"\x00\t\n\x0b\x0c\r " else b"!"[0] for b in range(256))

# Not the framing fields, whose values h11 checks while parsing (see the framing tests).
names = (
    st.one_of(
        st.text(TCHAR, min_size=1, max_size=16),
        st.sampled_from(["Content-Type", "Server", "Date", "X-Request-Id", "set-cookie"]),
    )
    .map(str.encode)
    .filter(lambda name: name.lower() not in (b"content-length", b"transfer-encoding"))
)
words = st.binary(min_size=1, max_size=8).map(lambda b: b.translate(VALUE_BYTES))
ows = st.sampled_from([b"", b" ", b"\t", b"  ", b" \t"])


@st.composite
def values(draw: st.DrawFn) -> bytes:
    """A field value with optional whitespace around it (both strip it) and inside."""
    parts = draw(st.lists(words, max_size=4))
    inner = b"".join(p + draw(st.sampled_from([b" ", b"\t", b" \t "])) for p in parts)
    return draw(ows) + inner.rstrip(b" \t") + draw(ows)


reasons = st.binary(max_size=20).map(lambda b: b.translate(None, b"\x00\n\r\x0b\x0c"))
versions = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"])
statuses = st.integers(100, 999).filter(lambda s: s != 101)  # 101: see the differences


@st.composite
def heads(draw: st.DrawFn) -> bytes:
    """A response head in the grammar both accept, without its final CRLF CRLF."""
    status_line = b"%s %d" % (draw(versions), draw(statuses))
    if draw(st.booleans()):
        status_line += b" " + draw(reasons)  # the reason and its space are optional
    fields = draw(st.lists(st.tuples(names, values()), max_size=8))
    return b"\r\n".join([status_line, *(n + b":" + v for n, v in fields)])


@FAST
@given(heads())
def test_heads_parse_as_h11_parses_them(head: bytes) -> None:
    ours = ours_head(head)
    assert ours is not None
    assert ours == h11_head(head)


def test_long_heads_parse_as_h11_parses_them() -> None:
    # The 64 KiB limit is the transport's (checked before the head is complete).
    head = b"HTTP/1.1 200 OK\r\nX-Big: " + b"v" * (MAX_HEAD - 100) + b"\r\nServer: s"
    assert ours_head(head) == h11_head(head) is not None


BAD_STATUS_LINES = [
    b"HTTP/1.1 2OO OK",
    b"HTTP/1.1 20 OK",
    b"HTTP/1.1 2000 OK",
    b"HTTP/1.1 -20 OK",
    b"HTTP/1.1  200 OK",
    b"HTTP/1.1 099 Nothing",  # 000-099 is no status class
    b"HTTP/1.1 000",
    b"ICY 200 OK",
    b"http/1.1 200 OK",
    b"HTTP/1 200 OK",
    b"HTTP/11 200 OK",
    b"HTTP/1.1.1 200 OK",
    b" HTTP/1.1 200 OK",
    b"HTTP/1.1\t200 OK",
    b"HTTP/1.1 200 O\rK",
    b"HTTP/1.1 200 O\x00K",
    b"",
]
BAD_FIELDS = [
    b"No colon here",
    b"Name : value",  # whitespace before the colon
    b"Name\t: value",
    b": no name",
    b"X: a\x00b",
    b"X: a\rb",
    b"X: a\r",
    b"X: a\nb",  # for h11 "b" is a line of its own, with no colon
    b"X: a\nY",
]


@pytest.mark.parametrize("status_line", BAD_STATUS_LINES)
def test_malformed_status_lines_are_rejected_by_both(status_line: bytes) -> None:
    head = status_line + b"\r\nServer: s"
    assert h11_head(head) is None
    with pytest.raises(httpx.RemoteProtocolError, match="^Malformed status line: "):
        parse_head(head)


@pytest.mark.parametrize(
    "field",
    [
        *BAD_FIELDS,
        b" Leading: space",  # a continuation line with nothing to continue: first only
        b"\tLeading: tab",
    ],
)
def test_malformed_fields_are_rejected_by_both(field: bytes) -> None:
    head = b"HTTP/1.1 200 OK\r\n" + field + b"\r\nServer: s"
    assert h11_head(head) is None
    with pytest.raises(httpx.RemoteProtocolError, match="^Malformed response header: "):
        parse_head(head)


@FAST
@given(heads(), st.data())
def test_a_malformed_line_anywhere_is_rejected_by_both(head: bytes, data: Any) -> None:
    lines = head.split(b"\r\n")
    if data.draw(st.booleans()) or len(lines) == 1:
        lines[0] = data.draw(st.sampled_from(BAD_STATUS_LINES))
    else:
        at = data.draw(st.integers(1, len(lines) - 1))
        lines[at] = data.draw(st.sampled_from(BAD_FIELDS))
    bad = b"\r\n".join(lines)
    assert ours_head(bad) is None
    assert h11_head(bad) is None


# -- framing and keep-alive --------------------------------------------------------------

connection_values = st.sampled_from(
    [b"close", b"Close", b"keep-alive", b"Keep-Alive", b"upgrade", b"te, close", b"TE"]
)
framing_fields = st.one_of(
    st.tuples(
        st.sampled_from([b"Content-Length", b"content-length", b"CONTENT-LENGTH"]),
        st.one_of(
            st.integers(0, 3000).map(b"%d".__mod__),
            st.sampled_from([b"0005", b"5, 5", b"5,5", b" 7 ", b"1, 2", b"x", b"", b"-1"]),
        ),
    ),
    # One Transfer-Encoding of exactly "chunked": h11 refuses every other (see the
    # differences).
    st.tuples(st.sampled_from([b"Transfer-Encoding", b"transfer-encoding"]), st.just(b"chunked")),
    st.tuples(st.sampled_from([b"Connection", b"connection"]), connection_values),
    st.tuples(st.sampled_from([b"Content-Type", b"X-Accel"]), st.just(b"text/plain")),
)
methods = st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS"])


@st.composite
def framed_heads(draw: st.DrawFn) -> bytes:
    fields = draw(st.lists(framing_fields, max_size=5))
    if sum(name.lower() == b"transfer-encoding" for name, _ in fields) > 1:
        fields = [f for f in fields if f[0].lower() != b"transfer-encoding"]
    status = draw(st.one_of(st.sampled_from([200, 204, 206, 304, 404, 500]), st.integers(200, 599)))
    status_line = b"%s %d OK" % (draw(versions), status)
    return b"\r\n".join([status_line, *(n + b": " + v for n, v in fields)])


def _tokens(head: bytes, name: bytes) -> list[bytes]:
    _, _, _, headers = parse_head(head)
    return [
        token.strip()
        for field, value in headers
        if field.lower() == name
        for token in value.lower().split(b",")
    ]


@FAST
@given(framed_heads(), methods, st.booleans())
def test_framing_and_keep_alive_as_h11(head: bytes, method: str, close: bool) -> None:
    ours = ours_framing(head, method, close)
    theirs = h11_framing(head, method, close)
    if ours is None:
        assert theirs is None  # all we reject, h11 rejects
        return
    status = int(head[9:12])
    no_body = method == "HEAD" or status in (204, 304)
    transfer_encoding = bool(_tokens(head, b"transfer-encoding"))
    content_length = bool(_tokens(head, b"content-length"))
    if theirs is None:
        # h11 checks every Content-Length; we only one that frames the body, and the
        # connection is not reused when Transfer-Encoding is there too.
        assert no_body or transfer_encoding, head
        return
    kind, length, keep_alive = ours
    assert (kind, length) == theirs[:2]
    if head.startswith(b"HTTP/1.0") and b"keep-alive" in _tokens(head, b"connection"):
        # An HTTP/1.0 server that says "keep-alive" keeps the connection (RFC 9112
        # C.2.2) when the body has a length; h11 never reuses an HTTP/1.0 connection.
        assert not theirs[2]
        closes = close or b"close" in _tokens(head, b"connection")
        assert keep_alive == (kind == "length" and not closes)
    elif transfer_encoding and content_length and not no_body:
        # Both framings present: the body is read as chunked, but the connection is not
        # reused (RFC 9112 6.3: a middlebox may have used the other); h11 reuses it.
        assert not keep_alive
    else:
        assert keep_alive == theirs[2]


# -- chunked bodies ----------------------------------------------------------------------

extensions = st.sampled_from(
    [b"", b"", b"", b";a", b";name=value", b';q="a, b;c"', b";a=1;b", b";a=1 ", b"\t"]
)


@st.composite
def chunk_lines(draw: st.DrawFn, size: int) -> bytes:
    """The size line of a chunk of *size* bytes: any hex case, leading zeros, an
    extension or trailing whitespace (no CRLF)."""
    digits = b"%x" % size
    if draw(st.booleans()):
        digits = digits.upper()
    digits = b"0" * draw(st.integers(0, 16 - len(digits))) + digits
    return digits + draw(extensions)


trailers = st.lists(
    st.tuples(names, values()).map(lambda f: f[0] + b": " + f[1].strip(b" \t")), max_size=3
)


@attrs.frozen
class Body:
    """A chunked body in parts: (size line, payload) per chunk, the last chunk's line,
    the trailer fields. A 0-size chunk is the last one: no payload is empty (nor for
    h11)."""

    chunks: list[tuple[bytes, bytes]]
    last: bytes
    trailers: list[bytes]

    @property
    def payload(self) -> bytes:
        return b"".join(payload for _, payload in self.chunks)

    def encode(self, start: int = 0, stop: int | None = None) -> bytes:
        """The raw bytes of chunks[start:stop], and of the end when *stop* is None."""
        raw = b"".join(line + b"\r\n" + p + b"\r\n" for line, p in self.chunks[start:stop])
        if stop is None:
            raw += self.last + b"\r\n" + b"".join(t + b"\r\n" for t in self.trailers) + b"\r\n"
        return raw


@st.composite
def chunked_bodies(draw: st.DrawFn) -> Body:
    payloads = draw(st.lists(st.binary(min_size=1, max_size=40), max_size=8))
    chunks = [(draw(chunk_lines(len(p))), p) for p in payloads]
    return Body(chunks, draw(chunk_lines(0)), draw(trailers))


def ours_chunks(pieces: list[bytes]) -> tuple[bytes, int | None]:
    """The payload, and the piece at which the body was complete (None: not complete).
    Raises RemoteProtocolError as the decoder does."""
    decoder = ChunkedDecoder()
    out = b""
    for i, piece in enumerate(pieces):
        out += b"".join(decoder.decode(piece))
        if decoder.done:
            return out, i
    return out, None


def h11_chunks(pieces: list[bytes]) -> tuple[bytes, int | None]:
    """The same as h11 reads it: a chunked response fed piece by piece."""
    conn = h11_client()
    conn.receive_data(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert isinstance(conn.next_event(), h11.Response)
    out = b""
    for i, piece in enumerate(pieces):
        conn.receive_data(piece)
        while (event := conn.next_event()) is not h11.NEED_DATA:
            if isinstance(event, h11.EndOfMessage):
                return out, i
            assert isinstance(event, h11.Data)
            out += event.data
    return out, None


@FAST
@given(chunked_bodies(), st.data())
def test_chunked_bodies_as_h11_at_any_split(body: Body, data: Any) -> None:
    pieces = data.draw(splits(body.encode()))
    assert ours_chunks(pieces) == h11_chunks(pieces) == (body.payload, len(pieces) - 1)


@settings(max_examples=60, deadline=None)
@given(chunked_bodies())
def test_chunked_bodies_as_h11_byte_by_byte(body: Body) -> None:
    pieces = split_at(body.encode(), 1)
    assert ours_chunks(pieces) == h11_chunks(pieces) == (body.payload, len(pieces) - 1)
    # Cut short, neither sees the end (and what arrived is the same).
    assert ours_chunks(pieces[:-1]) == h11_chunks(pieces[:-1])


@FAST
@given(chunked_bodies(), st.integers(0, 5))
def test_chunked_reads_of_whole_chunks_as_h11(body: Body, cut: int) -> None:
    # The decoder's whole-read fast paths: reads that end on a chunk boundary, once its
    # size lines have been seen (the second time round, they all have).
    cut = min(cut, len(body.chunks))
    halves = [read for read in (body.encode(0, cut), body.encode(cut)) if read]
    cases = [
        ([body.encode()], (body.payload, 0)),
        (halves, (body.payload, len(halves) - 1)),
        # A chunk per read, and the end not yet come.
        (
            [body.encode(i, i + 1) for i in range(cut)],
            (b"".join(p for _, p in body.chunks[:cut]), None),
        ),
    ]
    for _ in range(2):
        for reads, expected in cases:
            assert ours_chunks(reads) == h11_chunks(reads) == expected


BAD_SIZE_LINES = [b"zz", b"0x5", b"-1", b"+5", b"1_0", b"", b" 5", b"5\x00", b"g", b"5;a\nb"]


@FAST
@given(chunked_bodies(), st.data())
def test_malformed_chunked_bodies_are_rejected_by_both(body: Body, data: Any) -> None:
    at = data.draw(st.integers(0, len(body.chunks)))  # len(chunks): the last chunk's line
    line, payload = body.chunks[at] if at < len(body.chunks) else (body.last, b"")
    if payload and data.draw(st.booleans()):
        # The CRLF after a payload replaced by two other bytes.
        crlf = data.draw(st.sampled_from([b"\n\n", b"\r\r", b"xx", b"\n\r", b"\r ", b" \n"]))
        bad_chunk = line + b"\r\n" + payload + crlf
    else:
        bad_line = data.draw(st.sampled_from(BAD_SIZE_LINES))
        bad_chunk = bad_line + b"\r\n" + (payload + b"\r\n" if payload else b"")
    end = body.encode(len(body.chunks))  # the last chunk and the trailers
    rest = body.encode(at + 1) if payload else end[len(body.last) + 2 :]
    bad = body.encode(0, at) + bad_chunk + rest
    pieces = data.draw(splits(bad))
    with pytest.raises(httpx.RemoteProtocolError):
        ours_chunks(pieces)
    with pytest.raises(h11.RemoteProtocolError):
        h11_chunks(pieces)


def test_oversized_chunk_size_line_is_rejected_by_both() -> None:
    line = b"1" + b";" + b"x" * 70_000  # no CRLF in sight: both give up waiting for one
    with pytest.raises(httpx.RemoteProtocolError, match="Chunk size line too long"):
        ours_chunks(split_at(line, 1000))
    with pytest.raises(h11.RemoteProtocolError):
        h11_chunks(split_at(line, 1000))


# -- where we knowingly differ from h11 --------------------------------------------------

CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"


@pytest.mark.parametrize(
    ("head", "ours", "theirs"),
    [
        # Stricter: obs-fold (RFC 9112 5.2 lets a client refuse what it can't unfold
        # safely; h11 unfolds), also after a bare LF.
        (b"HTTP/1.1 200 OK\r\nX: a\r\n b", None, "parsed"),
        (b"HTTP/1.1 200 OK\r\nX: a\n b", None, "parsed"),
        # Stricter: a bare LF as a line end (RFC 9112 2.2 makes it a MAY); we refuse a
        # head where it would make fields h11 sees and we would not.
        (b"HTTP/1.1 200 OK\r\nX: a\nContent-Length: 0", None, "parsed"),
        # Stricter: HTTP/1.x only.
        (b"HTTP/2.0 200 OK", None, "parsed"),
        (b"HTTP/0.9 200 OK", None, "parsed"),
        # Stricter: Content-Length of 19-20 digits (h11 takes 20).
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456789", None, "parsed"),
        # Laxer: field names are not checked to be tokens, nor values for VT/FF; a name
        # that isn't exactly a framing field's frames nothing.
        (b"HTTP/1.1 200 OK\r\nX Y: 1", "parsed", None),
        (b"HTTP/1.1 200 OK\r\nX@Y: 1", "parsed", None),
        (b"HTTP/1.1 200 OK\r\nX: a\x0bb", "parsed", None),
        (b"HTTP/1.1 200 OK\r\nX: a\x0cb", "parsed", None),
        # Laxer: the minor version is not checked to be a digit (read as HTTP/1.0).
        (b"HTTP/1.a 200 OK", "parsed", None),
        # Laxer: an unsolicited 101 ends the exchange (the connection is closed); h11
        # refuses a switch it did not propose.
        (b"HTTP/1.1 101 Switching Protocols", "parsed", None),
        # Laxer: a Content-Length that frames nothing is not checked (204, 304, HEAD, or
        # with Transfer-Encoding: chunked, where the connection is not reused).
        (b"HTTP/1.1 204 No Content\r\nContent-Length: x", "parsed", None),
        (CHUNKED + b"\r\nContent-Length: 1, 2", "parsed", None),
        # Laxer: Transfer-Encoding other than one "chunked" (RFC 9112 6.3: chunked last
        # is chunked, anything else is read until close); h11 supports "chunked" only.
        (CHUNKED + b"\r\nTransfer-Encoding: chunked", "parsed", None),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked", "parsed", None),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip", "parsed", None),
    ],
)
def test_documented_differences(head: bytes, ours: str | None, theirs: str | None) -> None:
    assert ("parsed" if ours_framing(head, "GET", False) else None) == ours
    assert ("parsed" if h11_framing(head, "GET", False) or h11_head(head) else None) == theirs


def test_documented_framing_differences() -> None:
    # Transfer-Encoding not ending in chunked: read until close.
    assert ours_framing(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip", "GET", False) == (
        "close",
        0,
        False,
    )
    # Two Transfer-Encoding fields ending in chunked: chunked, as RFC 9112 6.1 reads them.
    assert ours_framing(CHUNKED + b"\r\nTransfer-Encoding: chunked", "GET", False) == (
        "chunked",
        0,
        True,
    )
    # 101: no body, and the connection is not reused.
    assert ours_framing(b"HTTP/1.1 101 Switching Protocols", "GET", False) == ("length", 0, False)
    # CONNECT: for h11 a 2xx switches protocols; the transport frames it as any other
    # response (it sends no CONNECT of its own: proxies are refused).
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 3"
    assert ours_framing(head, "CONNECT", False) == ("length", 3, True)


@pytest.mark.parametrize(
    ("raw", "ours", "theirs"),
    [
        # Stricter: at most 16 hex digits, leading zeros included (h11 takes 20).
        (b"00000000000000001\r\na\r\n0\r\n\r\n", None, b"a"),
        # Stricter: a CR inside a chunk extension (a bare LF both refuse).
        (b"1;a\rb\r\na\r\n0\r\n\r\n", None, b"a"),
        # Stricter: a bare LF in the trailer section, blank line included.
        (b"1\r\na\r\n0\r\nX: a\n\r\n\r\n", None, b"a"),
        (b"1\r\na\r\n0\r\n\nX\r\n", None, b"a"),
        # Laxer: whitespace before an extension's ";" (the BWS of RFC 9112 7.1.1).
        (b"1 ;a\r\na\r\n0\r\n\r\n", b"a", None),
        # Laxer: trailer fields are skipped, not parsed.
        (b"1\r\na\r\n0\r\nno colon\r\n\r\n", b"a", None),
    ],
)
def test_documented_chunked_differences(
    raw: bytes, ours: bytes | None, theirs: bytes | None
) -> None:
    def run(decode: Any, error: type[Exception]) -> bytes | None:
        try:
            out, done = decode([raw])
        except error:
            return None
        assert done == 0
        return out  # type: ignore[no-any-return]

    assert run(ours_chunks, httpx.RemoteProtocolError) == ours
    assert run(h11_chunks, h11.RemoteProtocolError) == theirs


# -- fixed: what we took before h11's differential showed it ------------------------------


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nX: a\nContent-Length: 0",  # a field hidden in a value
        b"HTTP/1.1 200 OK\r\nX: a\rb",
        b"HTTP/1.1 200 OK\r\nX: a\x00b",
        b"HTTP/1.1 200 OK\nContent-Length: 0",  # in the reason
        b"HTTP/1.1 099 Nope\r\nContent-Length: 3",  # read as having no body
    ],
)
def test_heads_with_bare_line_breaks_or_no_status_class_are_rejected(head: bytes) -> None:
    with pytest.raises(httpx.RemoteProtocolError, match="^Malformed "):
        parse_head(head)


def test_http10_connection_close_and_transfer_encoding_end_reuse() -> None:
    # RFC 9112 9.6: "close" ends reuse, "keep-alive" beside it too.
    head = b"HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 2"
    assert ours_framing(head, "GET", False) == ("length", 2, False)
    head = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2"
    assert ours_framing(head, "GET", False) == ("length", 2, True)
    # RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
    head = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked"
    assert ours_framing(head, "GET", False) == ("chunked", 0, False)


@pytest.mark.parametrize("raw", [b"5;a\nb\r\n", b"5;\n0\r\n", b"5;a\rb\r\n"])
def test_line_breaks_in_chunk_extensions_are_rejected(raw: bytes) -> None:
    # A bare LF ends the size line for some parsers: the "funky chunks" smuggling shape.
    with pytest.raises(httpx.RemoteProtocolError, match="^Malformed chunk size: "):
        ChunkedDecoder().decode(raw)


@pytest.mark.parametrize("trailer", [b"X: a\n", b"X: a\nY: b", b"\nHTTP/1.1 200 OK", b"X: \rb"])
def test_line_breaks_in_trailers_are_rejected(trailer: bytes) -> None:
    raw = b"1\r\na\r\n0\r\n" + trailer + b"\r\n\r\n"
    for pieces in ([raw], split_at(raw, 1)):
        with pytest.raises(httpx.RemoteProtocolError, match="^Malformed chunked trailer: "):
            ours_chunks(pieces)


# -- the chunked decoder on its own -----------------------------------------------------


def chunked(*payloads: bytes, trailer: bytes = b"") -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in payloads)
    return body + b"0\r\n" + trailer + b"\r\n"


EVENTS = [b'data: {"choices":[{"text":" tok%d"}]}\n\n' % i for i in range(5)]


def decode_pieces(pieces: list[bytes]) -> tuple[bytes, bool, bool]:
    decoder = ChunkedDecoder()
    out = b""
    for piece in pieces:
        out += b"".join(decoder.decode(piece))
    return out, decoder.done, decoder.clean


RAW_CHUNKED = (
    b"3\r\nabc\r\nA;name=value\r\n0123456789\r\n1 \r\nx\r\n0\r\nTrailer: yes\r\nOther: 1\r\n\r\n"
)


def test_chunked_decoder_every_split() -> None:
    expected = b"abc0123456789x"
    assert decode_pieces([RAW_CHUNKED]) == (expected, True, True)
    assert decode_pieces([bytes([b]) for b in RAW_CHUNKED]) == (expected, True, True)
    n = len(RAW_CHUNKED)
    for i in range(1, n):
        assert decode_pieces([RAW_CHUNKED[:i], RAW_CHUNKED[i:]]) == (expected, True, True), i
        for j in range(i + 1, n):
            pieces = [RAW_CHUNKED[:i], RAW_CHUNKED[i:j], RAW_CHUNKED[j:]]
            assert decode_pieces(pieces) == (expected, True, True), (i, j)


def test_chunked_decoder_one_output_per_read() -> None:
    decoder = ChunkedDecoder()
    assert decoder.decode(chunked(*EVENTS)) == EVENTS
    assert decoder.done
    assert not ChunkedDecoder().decode(b"5\r\nab")[0] == b"ab5"


@pytest.mark.parametrize(
    "raw", [b"zz\r\n", b"-1\r\n", b"0x5\r\nabcde\r\n", b"\r\n", b"2\r\nabX\r\n", b"1_0\r\n"]
)
def test_chunked_decoder_rejects(raw: bytes) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        ChunkedDecoder().decode(raw)


def test_chunked_decoder_whole_chunk_reads() -> None:
    # Reads of whole chunks split on CRLF in one go; a CRLF inside a payload, an unseen
    # size line or the last chunk must still decode exactly.
    decoder = ChunkedDecoder()
    assert decoder.decode(chunked(*EVENTS[:2])[:-5]) == EVENTS[:2]  # without "0\r\n\r\n"
    assert decoder.decode(b"4\r\na\r\nb\r\n5\r\nc\r\n\r\n\r\n") == [b"a\r\nb", b"c\r\n\r\n"]
    assert decoder.decode(b"3\r\nxyz\r\n4\r\nab\r\n\r\n") == [b"xyz", b"ab\r\n"]
    assert decoder.decode(b"1\r\nz\r\n0\r\n\r\n") == [b"z"]
    assert decoder.done and decoder.clean


@given(st.lists(st.binary(max_size=12), max_size=12), st.data())
def test_chunked_decoder_any_payloads_and_reads(payloads: list[bytes], data: Any) -> None:
    raw = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in payloads if p) + b"0\r\n\r\n"
    cuts = sorted(data.draw(st.sets(st.integers(1, len(raw) - 1), max_size=8)))
    bounds = [0, *cuts, len(raw)]
    pieces = [raw[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    assert decode_pieces(pieces) == (b"".join(payloads), True, True)


def test_chunked_decoder_trailing_garbage_not_clean() -> None:
    assert decode_pieces([b"1\r\na\r\n0\r\n\r\nHTTP/1.1"]) == (b"a", True, False)


# --- parse_response: the cached parse --------------------------------------------------


def _fresh(head: bytes, method: str = "POST", keep_alive: bool = True) -> Any:
    """What parse_response must give: parse_head and framing, uncached."""
    version, status, reason, fields = parse_head(head)
    if 100 <= status < 200 and status != 101:
        return version, status, reason, fields, 0, False, keep_alive
    return (version, status, reason, fields,
            *framing(version, status, method, fields, keep_alive=keep_alive))  # fmt: skip


_ECHOING = [
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked"
    b"\r\nx-request-id: %s",
    b"HTTP/1.1 200 OK\r\nX-Request-Id:%s\r\ncontent-length: 5\r\nconnection: close",
    b"HTTP/1.1 200 OK\r\nx-request-id: %s\r\nx-request-id: fixed\r\ncontent-length: 2",
    b"HTTP/1.0 204 No Content\r\nx-request-id:  %s \t\r\nserver: s",
]


@pytest.mark.parametrize("template", _ECHOING)
@pytest.mark.parametrize("method", ["POST", "HEAD"])
def test_heads_that_echo_a_request_id_parse_as_if_uncached(template: bytes, method: str) -> None:
    _http11._PARSED.clear()
    for i in range(50):
        head = template % b"bench-%d" % i
        assert parse_response(head, method, True) == _fresh(head, method)
        assert parse_response(head, method, False) == _fresh(head, method, False)
    # One entry per (head without its id, keep-alive asked), not one per request.
    assert len(_http11._PARSED) == 2


@pytest.mark.parametrize("bad", [b"a\rb", b"a\nb", b"a\0b"])
def test_a_bad_request_id_line_is_rejected_after_good_ones(bad: bytes) -> None:
    _http11._PARSED.clear()
    template = _ECHOING[0]
    parse_response(template % b"good", "POST", True)
    with pytest.raises(httpx.RemoteProtocolError, match="Malformed response header"):
        parse_response(template % bad, "POST", True)


def test_repeated_heads_are_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    _http11._PARSED.clear()
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 7"
    first = parse_response(head, "POST", True)
    monkeypatch.setattr(_http11, "parse_head", None)  # a second parse would fail
    assert parse_response(head, "POST", True) is first
    monkeypatch.undo()
    echo = _ECHOING[0]
    parse_response(echo % b"a", "POST", True)
    monkeypatch.setattr(_http11, "parse_head", None)
    assert parse_response(echo % b"b", "POST", True)[3][-1] == (b"x-request-id", b"b")
