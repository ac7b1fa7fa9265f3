"""How long a drop-in request with ``RequestFuncInput.timeout`` takes to give up.

Three faults, each answered by ``ASYNC_REQUEST_FUNCS["vllm"]`` with ``timeout=3`` (or
``--timeout``): a stream that stalls mid-way, headers then nothing, and a server that
accepts the connection and never answers. Each should return ``success=False`` with a
one-line ``RequestTimeout`` right after the deadline.

    python benchmarks/bench_timeouts.py [--timeout 3]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading
import time

from anyio_llmreq import ASYNC_REQUEST_FUNCS, RequestFuncInput
from anyio_llmreq.testing import MockBehaviour, MockServerThread


def _silent_server() -> tuple[socket.socket, list[socket.socket]]:
    """A listener that accepts connections and never reads or answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    return listener, held


async def main(timeout: float) -> None:
    func = ASYNC_REQUEST_FUNCS["vllm"]
    listener, _held = _silent_server()
    with (
        MockServerThread(MockBehaviour(stall_after=2, stall_duration=60)) as stall,
        MockServerThread(MockBehaviour(headers_then_hang=True)) as hang,
    ):
        bases = {
            "stall mid-stream": stall.base_url,
            "headers then nothing": hang.base_url,
            "never answers": f"http://127.0.0.1:{listener.getsockname()[1]}",
        }
        for name, base in bases.items():
            request = RequestFuncInput("a b c", base + "/v1/completions", 3, 6, "m")
            request.timeout = timeout
            started = time.perf_counter()
            out = await func(request)
            took = time.perf_counter() - started
            print(f"{name:22} {took:7.3f} s  success={out.success}  {out.error}")
    listener.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=3.0)
    asyncio.run(main(parser.parse_args().timeout))
