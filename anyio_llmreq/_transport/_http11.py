"""HTTP/1.1 as bytes: the wire format of the transport, sans-IO (no socket, no clock).

The request head, the response head, the framing of a response body and the chunked
body decoder: nothing here touches a socket, reads a clock or knows an event loop, so
each function is tested on bytes alone, differentially against h11 in
``tests/test_http11.py``: the same heads, framing, keep-alive and chunk payloads, and the
same bytes rejected. Where it knowingly differs (stricter on obs-fold, bare LF line ends
and oversized numbers; laxer on field-name characters and on fields that frame nothing),
that test pins each difference and says why.

Errors are httpx's own exception types, as httpx's default transport raises them:
``RemoteProtocolError`` for what the server sent, ``LocalProtocolError`` for a request
that cannot be encoded. The transport lets them through unchanged.

``ChunkedDecoder.decode`` runs once per socket read of a streamed body: its whole-read
fast paths are why it is written as it is.
"""

from __future__ import annotations

from typing import Final

from httpx import LocalProtocolError, RemoteProtocolError

__all__ = (
    "MAX_HEAD",
    "ChunkedDecoder",
    "RawHeaders",
    "encode_head",
    "framing",
    "is_interim",
    "parse_chunk_size",
    "parse_head",
    "parse_response",
)

MAX_HEAD: Final = 65536  # header section limit (status line + headers), trailers too
_MAX_CHUNK_LINE: Final = 4096  # chunk size line incl. extensions
_HEXDIGITS: Final = b"0123456789abcdefABCDEF"
_NO_BODY_STATUS: Final = frozenset({204, 304})

RawHeaders = list[tuple[bytes, bytes]]
# parse_head's and framing's results: (version, status, reason, fields, content
# length, chunked, keep alive).
Parsed = tuple[bytes, int, bytes, RawHeaders, "int | None", bool, bool]


# -- request head --------------------------------------------------------------------


def encode_head(method: str, raw_path: bytes, raw_headers: RawHeaders) -> tuple[bytes, bool, bool]:
    """Return the request head, whether the body is chunked, and whether to keep alive.

    *raw_headers* are the fields in order, as ``httpx.Headers.raw`` gives them; a line
    break inside a name or value raises ``httpx.LocalProtocolError``.
    """
    chunked = False
    keep_alive = True
    fields: list[bytes] = []
    append = fields.append
    for name, value in raw_headers:
        lname = name.lower()
        if lname in _FRAMING_FIELDS:
            if lname == b"expect":
                if value.lower() == b"100-continue":
                    # Waiting for "100 Continue" costs a round trip and many servers
                    # never send it; sending the body straight away is what the RFC
                    # allows anyway.
                    continue
            elif lname == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif b"close" in value.lower():
                keep_alive = False
        append(name + b": " + value)
    start = b"%s %s HTTP/1.1\r\n" % (method.encode("ascii"), raw_path)
    if not fields:
        return start + b"\r\n", chunked, keep_alive
    block = b"\r\n".join(fields)
    # Each separator holds one CR and one LF: any other is a line break inside a field.
    separators = len(fields) - 1
    if block.count(b"\r") != separators or block.count(b"\n") != separators:
        for name, value in raw_headers:
            if b"\n" in value or b"\r" in value or b"\n" in name or b"\r" in name:
                raise LocalProtocolError(f"Illegal line break in header {name!r}")
    return b"%s%s\r\n\r\n" % (start, block), chunked, keep_alive


_FRAMING_FIELDS: Final = frozenset({b"expect", b"transfer-encoding", b"connection"})


# -- response head -------------------------------------------------------------------


def parse_head(data: bytes) -> tuple[bytes, int, bytes, RawHeaders]:
    """Split a response head (without its final CRLF CRLF) into (version, status, reason,
    fields); a malformed status line or field raises ``httpx.RemoteProtocolError``."""
    lines = data.split(b"\r\n")
    status_line = lines[0]
    version, _, rest = status_line.partition(b" ")
    code, _, reason = rest.partition(b" ")
    if (
        len(version) != 8
        or not version.startswith(b"HTTP/1.")
        or len(code) != 3
        or not code.isdigit()
        or code[0] == 48  # "0": 000-099 are no status codes (RFC 9110 15)
    ):
        raise RemoteProtocolError(f"Malformed status line: {status_line[:100]!r}")
    # CR, LF and NUL only in the CRLF line ends (RFC 9110 5.5: reject or replace them):
    # other parsers end a line at a bare LF, and a field hidden in a value would frame
    # the body differently for them.
    if len(data) - len(data.translate(None, b"\r\n\0")) != 2 * (len(lines) - 1):
        for i, line in enumerate(lines):
            if b"\n" in line or b"\r" in line or b"\0" in line:
                what = "Malformed response header" if i else "Malformed status line"
                raise RemoteProtocolError(f"{what}: {line[:100]!r}")
    headers: RawHeaders = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name[-1] in b" \t" or name[0] in b" \t":
            raise RemoteProtocolError(f"Malformed response header: {line[:100]!r}")
        headers.append((name, value.strip(b" \t")))
    return version, int(code), reason, headers


def framing(
    version: bytes, status: int, method: str, headers: RawHeaders, *, keep_alive: bool
) -> tuple[int | None, bool, bool]:
    """Return (content length or None, chunked, keep alive) for a response."""
    lengths: set[bytes] = set()
    transfer_encoding = b""
    connection = b""
    for name, value in headers:
        lname = name.lower()
        if lname == b"content-length":
            lengths.update(v.strip() for v in value.split(b","))
        elif lname == b"transfer-encoding":
            transfer_encoding += b"," + value.lower()
        elif lname == b"connection":
            connection += b"," + value.lower()
    if version == b"HTTP/1.1":
        keep_alive = keep_alive and b"close" not in connection
    else:
        keep_alive = keep_alive and b"keep-alive" in connection and b"close" not in connection
    if status == 101:
        return 0, False, False  # the connection now speaks another protocol
    if method == "HEAD" or status in _NO_BODY_STATUS or status < 200:
        return 0, False, keep_alive
    if transfer_encoding:
        if transfer_encoding.rsplit(b",", 1)[-1].strip() == b"chunked":
            # RFC 9112 6.3: with both, Transfer-Encoding wins and the connection is
            # not reused, since a middlebox may have read the other one; and 6.1: nor
            # after an HTTP/1.0 message with Transfer-Encoding.
            return None, True, keep_alive and not lengths and version == b"HTTP/1.1"
        return None, False, False
    if lengths:
        if len(lengths) != 1:
            raise RemoteProtocolError("Conflicting Content-Length headers")
        raw = lengths.pop()
        if not raw.isdigit() or len(raw) > 18:
            raise RemoteProtocolError(f"Malformed Content-Length: {raw[:40]!r}")
        return int(raw), False, keep_alive
    return None, False, False  # delimited by the server closing the connection


# A server sends the same response head again and again (a Date changes once a second):
# its parse and framing, by (head, method, keep-alive asked), cost one dict lookup. A
# server that echoes each request's X-Request-Id sends a new head every time: that line
# is cut out of the key and put back into a copy of the cached fields.
# The fields list is shared by the responses with that head, so it is never mutated.
_PARSED: dict[tuple[bytes, str, bool], Parsed] = {}
_PARSED_MAX: Final = 256
_PARSED_BYTES: Final = 2048  # larger heads are parsed each time: a bounded cache
_REQUEST_ID: Final = b"\r\nx-request-id:"


def is_interim(status: int) -> bool:
    """Whether *status* is an interim response (100 Continue, 103 Early Hints), which
    another head follows; 101 Switching Protocols is final."""
    return 100 <= status < 200 and status != 101


def parse_response(head: bytes, method: str, keep_alive: bool) -> Parsed:
    """``parse_head`` and ``framing`` of a response head (without its final CRLF CRLF)
    answering *method*, as one tuple; *keep_alive*: whether the request asked for it."""
    parsed = _PARSED.get((head, method, keep_alive))
    if parsed is not None:
        return parsed
    cut = head.lower().find(_REQUEST_ID) if len(head) <= _PARSED_BYTES else -1
    if cut >= 0:
        end = head.find(b"\r\n", cut + 2)
        if end < 0:
            end = len(head)
        line = head[cut + 2 : end]
        key = (head[:cut] + head[end:], method, keep_alive)
        base = _PARSED.get(key)
        # CR, LF and NUL only in line ends: parse_head's check, for the line cut out.
        if base is not None and 13 not in line and 10 not in line and 0 not in line:
            fields = base[3].copy()
            fields.insert(head.count(b"\r\n", 0, cut), (line[:12], line[13:].strip(b" \t")))
            version, status, reason, _, length, chunked, reusable = base
            return version, status, reason, fields, length, chunked, reusable
    version, status, reason, fields = parse_head(head)
    if is_interim(status):  # the caller reads on: never cached
        return version, status, reason, fields, 0, False, keep_alive
    length, chunked, reusable = framing(version, status, method, fields, keep_alive=keep_alive)
    parsed = (version, status, reason, fields, length, chunked, reusable)
    if len(head) <= _PARSED_BYTES:
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        if cut < 0:
            _PARSED[head, method, keep_alive] = parsed
        else:  # cached without the request id (a new one each time)
            index = head.count(b"\r\n", 0, cut)
            _PARSED[key] = (version, status, reason, fields[:index] + fields[index + 1 :],
                            length, chunked, reusable)  # fmt: skip
    return parsed


# -- chunked body --------------------------------------------------------------------


_SIZE: Final = 0
# "0\r\n\r\n" (the last chunk, no trailers) split at its CRLFs.
_LAST_CHUNK_PARTS: Final = [b"0", b"", b""]
_TRAILERS: Final = 1
_DONE: Final = 2


class ChunkedDecoder:
    """Incremental ``Transfer-Encoding: chunked`` decoder (sans-IO).

    ``decode(data)`` returns the chunk payloads completed or continued in *data*, in
    order; the caller joins them so each socket read yields one object. Partial chunk
    size lines and CRLFs are carried over to the next call.
    """

    __slots__ = (
        "_crlf_left",
        "_partial",
        "_size_left",
        "_state",
        "_trailer_bytes",
        "clean",
        "done",
    )

    def __init__(self) -> None:
        self._size_left = 0  # payload bytes of the current chunk still to come
        self._crlf_left = 0  # bytes of the CRLF that closes a chunk's payload still to come
        self._state = _SIZE
        self._partial = b""  # an incomplete size or trailer line
        self._trailer_bytes = 0
        self.clean = True  # False when bytes follow the end of the body
        self.done = False  # the last chunk and the trailers were read

    def decode(self, data: bytes) -> list[bytes]:
        if (
            data[-2:] == b"\r\n"
            and self._state == _SIZE
            and not self._size_left
            and not self._crlf_left
            and not self._partial
        ):
            # A read of whole chunks with no CRLF inside their payloads (SSE over LF, the
            # usual case) splits into "size, payload, size, payload, ..., ''". The split
            # is the true framing exactly when every payload has its line's size, so the
            # check and the slicing run in C, not once per chunk in Python.
            parts = data.split(b"\r\n")
            payloads = parts[1::2]
            sizes = list(map(_CHUNK_SIZES.get, parts[:-1:2]))
            if sizes == list(map(len, payloads)):
                return payloads
            if parts[-3:] == _LAST_CHUNK_PARTS and sizes[:-1] == list(map(len, payloads[:-1])):
                # The same, ending with the last chunk and no trailers: a short response
                # read whole in one read.
                self._state = _DONE
                self.done = True
                return payloads[:-1]
        out: list[bytes] = []
        if self._partial:
            data = self._partial + data
            self._partial = b""
        n = len(data)
        pos = 0
        size_left = self._size_left
        crlf_left = self._crlf_left
        state = self._state
        find = data.find
        known_size = _CHUNK_SIZES.get
        append = out.append
        while pos < n:
            if state == _SIZE and not size_left and not crlf_left:
                # Hot loop: complete "size CRLF payload CRLF" chunks with a size line
                # seen before. Anything else drops to the general state machine below.
                while True:
                    i = find(b"\r\n", pos)
                    if i < 0:
                        break
                    size = known_size(data[pos:i])
                    if not size:
                        break
                    start = i + 2
                    end = start + size
                    if end + 2 > n or data[end] != 13 or data[end + 1] != 10:
                        break
                    append(data[start:end])
                    pos = end + 2
                if pos >= n:
                    break
                i = find(b"\r\n", pos)
                if i < 0:
                    if n - pos > _MAX_CHUNK_LINE:
                        raise RemoteProtocolError("Chunk size line too long")
                    self._partial = data[pos:]
                    break
                size_left = parse_chunk_size(data[pos:i])
                pos = i + 2
                if not size_left:
                    state = _TRAILERS
            elif size_left:
                end = pos + size_left
                if end <= n:
                    append(data[pos:end])
                    pos = end
                    size_left = 0
                    crlf_left = 2
                else:
                    append(data[pos:] if pos else data)
                    size_left = end - n
                    pos = n
            elif crlf_left:
                if data[pos] != (13 if crlf_left == 2 else 10):
                    raise RemoteProtocolError(
                        "Malformed chunked body: chunk data not followed by CRLF"
                    )
                pos += 1
                crlf_left -= 1
            elif state == _TRAILERS:
                i = find(b"\r\n", pos)
                if i < 0:
                    if self._trailer_bytes + n - pos > MAX_HEAD:
                        raise RemoteProtocolError("Chunked trailer section too long")
                    self._partial = data[pos:]
                    break
                if i == pos:
                    pos += 2
                    state = _DONE
                    break
                if find(b"\n", pos, i) >= 0 or find(b"\r", pos, i) >= 0:
                    # Where a bare LF ends a line, the body would end elsewhere.
                    raise RemoteProtocolError(f"Malformed chunked trailer: {data[pos:i][:40]!r}")
                self._trailer_bytes += i + 2 - pos
                pos = i + 2  # trailer fields are skipped
            else:  # pragma: no cover - the caller stops at _DONE
                break
        if state == _DONE and pos < n:
            self.clean = False  # unexpected bytes after the body: do not reuse
        self._size_left = size_left
        self._crlf_left = crlf_left
        self._state = state
        self.done = state == _DONE
        return out


# Chunk size lines repeat a lot in token streams; a validated line costs one dict lookup.
_CHUNK_SIZES: dict[bytes, int] = {}


def parse_chunk_size(line: bytes) -> int:
    """The size a chunk size line (without its CRLF) gives; extensions are ignored."""
    raw = line
    semi = line.find(b";")
    if semi >= 0:
        if b"\n" in line or b"\r" in line:
            # A bare LF ends the line for other parsers (the "funky chunks" smuggling).
            raise RemoteProtocolError(f"Malformed chunk size: {raw[:40]!r}")
        line = line[:semi]
    line = line.rstrip(b" \t")
    # int(x, 16) alone would also take "0x1f", "+1f", "1_f" and surrounding whitespace.
    if not line or len(line) > 16 or line.strip(_HEXDIGITS):
        raise RemoteProtocolError(f"Malformed chunk size: {raw[:40]!r}")
    size = int(line, 16)
    # Never the last chunk's 0: the fast paths treat a known size as a payload to come.
    if size and semi < 0 and len(_CHUNK_SIZES) < 4096:
        _CHUNK_SIZES[raw] = size
    return size
