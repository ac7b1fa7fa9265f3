"""Just enough HTTP/1.1 for the mock server: request parsing and response framing.

Hand-written rather than h11 because the server is the far end of client-CPU
benchmarks: per-chunk work must stay a couple of bytes operations.
"""

from __future__ import annotations

import http
import time
from functools import lru_cache

import anyio
import attrs
from anyio.streams.buffered import BufferedByteReceiveStream

from ._records import UploadedFile

__all__ = [
    "MAX_BODY",
    "BodyTooLarge",
    "HTTPRequest",
    "ProtocolError",
    "chunk",
    "parse_multipart",
    "read_request",
    "response_head",
]

_MAX_HEAD = 64 * 1024
_MAX_CHUNK_LINE = 1024
#: The default cap on a request body: audio uploads and long prompts fit; a runaway or
#: hostile client can't make the server buffer what it likes.
MAX_BODY = 16 * 1024 * 1024
TERMINATOR = b"0\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class ProtocolError(Exception):
    """The client sent something that is not HTTP/1.x we understand."""

    #: The status the server answers with before it closes the connection.
    status = 400


class BodyTooLarge(ProtocolError):
    """The request body is over the server's limit; the rest of it is left unread."""

    status = 413


@attrs.frozen
class HTTPRequest:
    """A parsed request; ``headers`` keeps the client's spelling and order."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    received_at: float

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    def header(self, name: str) -> str | None:
        """Last value of ``name`` (lower-case), or None."""
        for key, value in reversed(self.headers):
            if key.lower() == name:
                return value
        return None

    @property
    def keep_alive(self) -> bool:
        conn = (self.header("connection") or "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn


async def read_request(
    reader: BufferedByteReceiveStream,
    send_continue: anyio.abc.ByteSendStream,
    max_body: int = MAX_BODY,
) -> HTTPRequest | None:
    """Read one request; None when the client closed cleanly between requests.

    Raises:
        BodyTooLarge: the body is (or declares itself) over *max_body* bytes; it is
            refused before it is read (and before a ``100 Continue``).
        ProtocolError: anything else that is not HTTP/1.x as we read it.
    """
    try:
        head = await reader.receive_until(b"\r\n\r\n", _MAX_HEAD)
    except anyio.IncompleteRead:
        if reader.buffer.strip():
            raise ProtocolError("connection closed inside the request head") from None
        return None
    except anyio.DelimiterNotFound:
        raise ProtocolError("request head too large") from None
    received_at = time.perf_counter()
    method, target, version, headers = _parse_head(head.lstrip(b"\r\n"))
    request = HTTPRequest(method, target, version, headers, b"", received_at)
    chunked = "chunked" in (request.header("transfer-encoding") or "").lower()
    size = 0 if chunked else _content_length(request, max_body)
    if (request.header("expect") or "").lower() == "100-continue":
        await send_continue.send(CONTINUE)
    if chunked:
        body = await _read_chunked(reader, max_body)
    else:
        body = await reader.receive_exactly(size) if size else b""
    return attrs.evolve(request, body=body)


def _parse_head(head: bytes) -> tuple[str, str, str, list[tuple[str, str]]]:
    lines = head.split(b"\r\n")
    try:
        method, target, version = lines[0].decode("ascii").split(" ", 2)
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError(f"bad request line {lines[0][:100]!r}") from None
    if not version.startswith("HTTP/1."):
        raise ProtocolError(f"unsupported version {version!r}")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise ProtocolError(f"bad header line {line[:100]!r}")
        headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
    return method, target, version, headers


def _content_length(request: HTTPRequest, max_body: int) -> int:
    """The declared body size (0 without one), checked against *max_body*."""
    length = request.header("content-length")
    if length is None:
        return 0
    try:
        size = int(length)
    except ValueError:
        raise ProtocolError(f"bad Content-Length {length!r}") from None
    if size < 0:
        raise ProtocolError(f"bad Content-Length {length!r}")
    if size > max_body:
        raise BodyTooLarge(
            f"request body of {size} bytes is over this server's limit of {max_body} bytes"
        )
    return size


async def _read_chunked(reader: BufferedByteReceiveStream, max_body: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        line = await reader.receive_until(b"\r\n", _MAX_CHUNK_LINE)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size line {line[:100]!r}") from None
        if size < 0:
            raise ProtocolError(f"bad chunk size line {line[:100]!r}")
        if size == 0:
            break
        total += size
        if total > max_body:  # refused on the size line, before the chunk is read
            raise BodyTooLarge(
                f"chunked request body is over this server's limit of {max_body} bytes"
            )
        parts.append(await reader.receive_exactly(size))
        if await reader.receive_exactly(2) != b"\r\n":
            raise ProtocolError("chunk not followed by CRLF")
    # Trailer fields end with an empty line; nobody needs their values here.
    while await reader.receive_until(b"\r\n", _MAX_HEAD):
        pass
    return b"".join(parts)


@lru_cache(maxsize=64)
def _status_line(status: int) -> bytes:
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    return f"HTTP/1.1 {status} {reason}\r\n".encode("ascii")


def response_head(
    status: int,
    content_type: str | None,
    *,
    length: int | None,
    keep_alive: bool,
    extra: list[tuple[str, str]] | None = None,
) -> bytes:
    """Status line and headers; ``length=None`` means a chunked body."""
    parts = [_status_line(status)]
    if content_type is not None:
        parts.append(b"content-type: " + content_type.encode("latin-1") + b"\r\n")
    if length is None:
        parts.append(b"transfer-encoding: chunked\r\ncache-control: no-cache\r\n")
    else:
        parts.append(b"content-length: %d\r\n" % length)
    for name, value in extra or ():
        parts.append(f"{name}: {value}\r\n".encode("latin-1"))
    if not keep_alive:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def chunk(data: bytes) -> bytes:
    """One chunked-encoding chunk."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def parse_multipart(
    body: bytes, content_type: str
) -> tuple[dict[str, str], dict[str, UploadedFile]]:
    """Split a ``multipart/form-data`` body into text fields and file descriptions."""
    boundary = _param(content_type, "boundary")
    if not boundary:
        raise ProtocolError("multipart body without a boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    form: dict[str, str] = {}
    files: dict[str, UploadedFile] = {}
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            raise ProtocolError("multipart part without headers")
        content = content.removesuffix(b"\r\n")
        headers = {}
        for line in head.strip(b"\r\n").split(b"\r\n"):
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        name = _param(disposition, "name")
        if name is None:
            raise ProtocolError("multipart part without a name")
        filename = _param(disposition, "filename")
        if filename is not None or "content-type" in headers and name == "file":
            files[name] = UploadedFile(filename, headers.get("content-type"), len(content))
        else:
            form[name] = content.decode("utf-8", "replace")
    return form, files


def _param(header: str, key: str) -> str | None:
    """A ``key=value`` parameter of a header value (quotes removed)."""
    for item in header.split(";")[1:]:
        name, sep, value = item.strip().partition("=")
        if sep and name.strip().lower() == key:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value
    return None
