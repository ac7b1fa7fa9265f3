"""A raw-socket HTTP/1.1 server in daemon threads: byte-exact replies and faults.

It runs beside the test's event loop, not in it, so the same server serves asyncio,
uvloop and trio clients, and a client that misbehaves can't stall it. A handler gets
the connection after the request was read and writes whatever bytes it wants.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import pathlib
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType

import anyio
import attrs

__all__ = [
    "Connection",
    "eventually",
    "RawServer",
    "Request",
    "chunked",
    "head",
    "self_signed_cert",
]

_READ_TIMEOUT = 10.0


async def eventually(condition: Callable[[], bool], within: float = 3.0) -> None:
    """Wait until *condition* holds: state that another thread or the kernel changes,
    so there is no event to wait on, only polling."""
    with anyio.fail_after(within):
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.01)


@attrs.frozen
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@attrs.define(eq=False)
class Connection:
    sock: socket.socket
    server: RawServer
    request: Request | None = None

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_all(self, pieces: Iterable[bytes]) -> None:
        """One ``send`` per piece (TCP_NODELAY is on, so each leaves at once)."""
        for piece in pieces:
            self.sock.sendall(piece)

    def wait_for_client_close(self, timeout: float = 30.0) -> bool:
        """Block until the client closes (True) or the server stops / *timeout* passes."""
        self.sock.settimeout(0.05)
        waited = 0.0
        while not self.server.stopping.is_set() and waited < timeout:
            try:
                if self.sock.recv(65536):
                    continue
            except TimeoutError:
                waited += 0.05
                continue
            except OSError:
                pass
            if self.server.stopping.is_set():
                return False  # our own shutdown, not the client
            self.server.note_client_close()
            return True
        return False

    def reset(self) -> None:
        """Close with an RST instead of a FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


Handler = Callable[[Connection], None]


class RawServer:
    """``with RawServer(handler) as server:`` listens on 127.0.0.1 and runs *handler*
    in a thread per connection. Counters: ``connections``, ``client_closes`` (handlers
    that saw the client go away via ``wait_for_client_close``), ``tls_failures``.

    Args:
        handler: called with each connection, after its request was read.
        tls: serve TLS with this server-side context.
        read_request: read (and parse) the request before calling *handler*.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        tls: ssl.SSLContext | None = None,
        read_request: bool = True,
    ) -> None:
        self.handler = handler
        self.tls = tls
        self.read_request = read_request
        self.stopping = threading.Event()
        self.connections = 0
        self.client_closes = 0
        self.tls_failures = 0
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=512)
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> RawServer:
        thread = threading.Thread(target=self._accept, name="rawserver-accept", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stopping.set()
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(5.0)
        self._listener.close()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            with self._lock:
                self.connections += 1
                self._socks.add(sock)
                self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            sock.settimeout(_READ_TIMEOUT)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                raw = sock
                try:
                    # Takes over the descriptor: from here on only the TLS socket closes it.
                    sock = self.tls.wrap_socket(raw, server_side=True)
                except (ssl.SSLError, OSError):
                    with self._lock:
                        self.tls_failures += 1
                    return
                finally:
                    with self._lock:
                        self._socks.discard(raw)
                        self._socks.add(sock)
            conn = Connection(sock, self)
            if self.read_request:
                conn.request = _read_request(sock)
                if conn.request is None:
                    return
            with contextlib.suppress(OSError):  # the client went away mid-reply
                self.handler(conn)
        except Exception as exc:  # surfaced by tests that check ``errors``
            self.errors.append(exc)
        finally:
            sock.close()
            with self._lock:
                self._socks.discard(sock)

    def note_client_close(self) -> None:
        with self._lock:
            self.client_closes += 1


def _read_request(sock: socket.socket) -> Request | None:
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            return None
        buf += data
    raw_head, _, rest = buf.partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while not rest.endswith(b"0\r\n\r\n"):
            data = sock.recv(65536)
            if not data:
                return None
            rest += data
        body = rest  # still chunk-framed; handlers here never look inside
    else:
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            data = sock.recv(65536)
            if not data:
                return None
            rest += data
        body = rest
    return Request(method, path, headers, body)


def head(
    status: int = 200,
    headers: Iterable[tuple[str, str]] = (),
    reason: str | None = None,
) -> bytes:
    """A response head; *reason* defaults to a generic phrase.

    ``Connection: close`` is added unless *headers* name the field: the server closes
    each connection after one request, and says so, so no client reuses it.
    """
    phrase = reason if reason is not None else ("OK" if status < 400 else "Error")
    headers = list(headers)
    lines = [f"HTTP/1.1 {status} {phrase}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if not any(name.lower() == "connection" for name, _ in headers):
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunked(pieces: Iterable[bytes]) -> list[bytes]:
    """Each piece as one chunk, then the last-chunk marker."""
    framed = [b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p]
    framed.append(b"0\r\n\r\n")
    return framed


def self_signed_cert(directory: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """A self-signed certificate for 127.0.0.1/localhost; returns (certfile, keyfile)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "anyio-llmreq test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        # A CA certificate, so it can also be trusted as its own authority (cafile=...).
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile = directory / "cert.pem"
    keyfile = directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound but not listening, so the kernel
    answers with a reset and no other process can take the port meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])
