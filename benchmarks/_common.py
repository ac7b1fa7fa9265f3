"""Shared pieces of the benchmarks: servers in other processes, CPU pinning, the harness."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator

import attrs

# Runs only the mock server's own command line, without the rest of the CLI.
_MOCK_MAIN = (
    "import argparse, sys; from anyio_llmreq.testing._cli import add_parser; "
    "p = argparse.ArgumentParser(); add_parser(p.add_subparsers()); "
    "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pin_to(core: int) -> None:
    """Pin this process to *core* when the machine has more than one."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {core % (os.cpu_count() or 1)})


@contextlib.contextmanager
def mock_server_process(*args: str, core: int | None = 1, loop: str = "uvloop") -> Iterator[str]:
    """Run ``anyio-llmreq mock-server`` in another process; yield its base URL."""
    port = free_port()
    cmd = [sys.executable, "-c", _MOCK_MAIN, "mock-server", "--port", str(port)]
    cmd += ["--loop", loop, *args]
    proc = subprocess.Popen(
        _pinned(cmd, core), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 20
        for line in proc.stdout:
            if "listening on" in line:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("mock server did not start")
        else:
            raise RuntimeError(f"mock server exited with status {proc.wait()}")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@attrs.frozen
class ServerProcess:
    """A benchmark server running in another process."""

    url: str
    pid: int

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server has used so far (Linux; 0 elsewhere)."""
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def raw_server_process(
    itl: float = 0.0, core: int | None = 1, burst: int = 1
) -> Iterator[ServerProcess]:
    """Run ``bench_transport.py``'s minimal SSE server in another process.

    It answers every POST with 256 vLLM-shaped completion events, then usage and
    ``[DONE]``, one write each. Like an inference server's decode step, every *itl*
    seconds it writes the next event of every active stream (``0``: step after step, as
    fast as it can), *burst* events per write: far cheaper per event than the mock
    server, so the client's own cost shows.
    """
    port = free_port()
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_transport.py")
    cmd = [sys.executable, script, "--serve", f"--port={port}", f"--itl={itl}", f"--burst={burst}"]
    with _ready_server(cmd, port, core, "raw server") as server:
        yield server


async def drive(one: Callable[[], Awaitable[int]], concurrency: int, requests: int) -> int:
    """Run *requests* calls of *one* on *concurrency* workers; sum what they return.

    Every client of a benchmark runs under this same harness, so none pays for its own.
    """
    import anyio

    left = requests
    total = 0

    async def worker() -> None:
        nonlocal left, total
        while left > 0:
            left -= 1
            got = await one()  # not "total += await": that reads total before awaiting
            total += got

    async with anyio.create_task_group() as tg:
        for _ in range(min(concurrency, requests)):
            tg.start_soon(worker)
    return total


# A per-request server: every response in one write, so that the client's cost per
# request (not the server's, nor its pacing) shows. A streaming request (``"stream":
# true``) gets a one-token vLLM-shaped event stream (token, usage, ``[DONE]``); any other
# an embeddings-shaped JSON body. Run as ``python -c`` in its own process.
_REQUEST_SERVER = r"""
import asyncio, socket, sys
TOKEN = (b'data: {"id":"cmpl-1","object":"text_completion","created":1,"model":"mock",'
         b'"choices":[{"index":0,"text":" hi","logprobs":null,"finish_reason":"length",'
         b'"stop_reason":null}],"usage":null}\n\n'
         b'data: {"id":"cmpl-1","object":"text_completion","created":1,"model":"mock",'
         b'"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}}'
         b'\n\ndata: [DONE]\n\n')
STREAM = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
          b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(TOKEN), TOKEN))
BODY = (b'{"id":"embd-1","object":"list","created":1,"model":"mock","data":[{"index":0,'
        b'"object":"embedding","embedding":[0.0123,-0.0456,0.0789,0.0012,-0.0345,0.0678,'
        b'0.0901,-0.0234]}],"usage":{"prompt_tokens":2,"total_tokens":2,'
        b'"completion_tokens":0}}')
JSON = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (len(BODY), BODY))

class P(asyncio.Protocol):
    def connection_made(self, t):
        self.t = t
        self.buf = b""
        t.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    def data_received(self, data):
        buf = self.buf + data
        out = []
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end].lower()
            i = head.find(b"content-length:")
            n = int(head[i + 15:].split(b"\r\n", 1)[0]) if i >= 0 else 0
            if len(buf) < end + 4 + n:
                break
            body = buf[end + 4:end + 4 + n]
            buf = buf[end + 4 + n:]
            out.append(STREAM if b'"stream":true' in body.replace(b" ", b"") else JSON)
        self.buf = buf
        if out:
            self.t.write(b"".join(out))

async def main(port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(P, "127.0.0.1", port, backlog=4096)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()

try:
    import uvloop
    uvloop.install()
except ImportError:
    pass
asyncio.run(main(int(sys.argv[1])))
"""


@contextlib.contextmanager
def request_server_process(core: int | None = 1) -> Iterator[ServerProcess]:
    """Run the per-request server (see ``_REQUEST_SERVER``) in another process."""
    port = free_port()
    cmd = [sys.executable, "-c", _REQUEST_SERVER, str(port)]
    with _ready_server(cmd, port, core, "request server") as server:
        yield server


def _pinned(cmd: list[str], core: int | None) -> list[str]:
    """*cmd* run on *core* (``taskset``) when the machine has more than one."""
    if core is not None and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(core % (os.cpu_count() or 1)), *cmd]
    return cmd


@contextlib.contextmanager
def _ready_server(
    cmd: list[str], port: int, core: int | None, name: str
) -> Iterator[ServerProcess]:
    """Run a server that prints "ready" once listening on *port*; stop it afterwards."""
    proc = subprocess.Popen(_pinned(cmd, core), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        if "ready" not in proc.stdout.readline():
            raise RuntimeError(f"{name} exited with status {proc.wait()}")
        yield ServerProcess(f"http://127.0.0.1:{port}", proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
