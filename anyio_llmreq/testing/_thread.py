"""The mock server on its own event loop in a daemon thread, for synchronous code."""

from __future__ import annotations

import threading
from types import TracebackType

import anyio
import anyio.from_thread
import anyio.lowlevel

from .._loops import LOOPS, loop_backend
from ._behaviour import MockBehaviour
from ._http import MAX_BODY
from ._server import MockServer, open_mock_server

__all__ = ["MockServerThread"]

_START_TIMEOUT = 30.0


class MockServerThread:
    """``with MockServerThread(...) as server:`` runs :func:`open_mock_server` in a
    daemon thread and yields its :class:`MockServer` once it is listening.

    ``backend`` is ``"asyncio"``, ``"uvloop"`` or ``"trio"``. Leaving the block
    stops the server, closes its sockets and joins the thread.
    """

    def __init__(
        self,
        behaviour: MockBehaviour | None = None,
        *,
        backend: str = "asyncio",
        host: str = "127.0.0.1",
        port: int = 0,
        model: str = "mock-model",
        record: bool = True,
        max_body_size: int = MAX_BODY,
    ) -> None:
        if backend not in LOOPS:
            raise ValueError(f"backend must be one of {sorted(LOOPS)}, not {backend!r}")
        self._backend = backend
        self._behaviour = behaviour
        self._host = host
        self._port = port
        self._model = model
        self._record = record
        self._max_body_size = max_body_size
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._server: MockServer | None = None
        self._stop: anyio.Event | None = None
        self._token: anyio.lowlevel.EventLoopToken | None = None
        self._error: BaseException | None = None

    @property
    def server(self) -> MockServer:
        """The running server (only between start and stop)."""
        if self._server is None:
            raise RuntimeError("the mock server is not running")
        return self._server

    def start(self) -> MockServer:
        """Start the thread and wait until the server listens."""
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._run, name="anyio-llmreq-mock", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT):
            raise RuntimeError("the mock server did not start in time")
        if self._error is not None:
            self._thread.join()
            raise RuntimeError("the mock server failed to start") from self._error
        return self.server

    def stop(self) -> None:
        """Stop the server and join its thread (idempotent)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if self._stop is not None and self._token is not None and thread.is_alive():
            try:
                anyio.from_thread.run_sync(self._stop.set, token=self._token)
            except anyio.RunFinishedError:
                pass
        thread.join()
        self._server = None

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        name, options = loop_backend(self._backend)
        try:
            anyio.run(self._main, backend=name, backend_options=options)
        except BaseException as exc:  # handed over to the thread that called start()
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._stop = anyio.Event()
        self._token = anyio.lowlevel.current_token()
        async with open_mock_server(
            self._behaviour,
            host=self._host,
            port=self._port,
            model=self._model,
            record=self._record,
            max_body_size=self._max_body_size,
        ) as server:
            self._server = server
            self._ready.set()
            await self._stop.wait()
