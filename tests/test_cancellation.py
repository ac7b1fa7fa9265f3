"""Timeouts and cancellation: deadlines that fire, cancellation that cleans up.

Cancelling the caller's scope ends the request at once, closes its connection (the
server sees it go) and leaves no task or file descriptor behind; a stalled request
never holds up the others.
"""

from __future__ import annotations

import asyncio
import math
import os
import pathlib
import re
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

import anyio
import attrs
import pytest
import sniffio

from anyio_llmreq import Client, RequestFuncInput, RequestFuncOutput, Timeouts
from anyio_llmreq.testing import MockBehaviour, MockServer, open_mock_server

from .clients import make_client
from .rawserver import eventually

pytestmark = pytest.mark.anyio

COMPLETIONS = "/v1/completions"
_linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")




def req(server: MockServer, output_len: int = 6, **mock: Any) -> RequestFuncInput:
    extra = {"mock": mock} if mock else None
    url = server.base_url + COMPLETIONS
    return RequestFuncInput("a b c", url, 3, output_len, "m", extra_body=extra)


def open_fds() -> set[tuple[str, str]]:
    """This process's descriptors and what they point at.

    ``/dev/null`` is left out: libuv (uvloop) keeps one open per loop as a reserve for
    running out of descriptors, created with the loop's first listener.
    """
    fds = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the descriptor listdir itself used
            continue
        if target != "/dev/null":
            fds.add((fd, target))
    return fds


WATCHDOG = "anyio_llmreq watchdog"


def live_tasks(*, watchdog: bool = False) -> list[str]:
    """Names of the tasks of the running loop (trio: the whole task tree).

    The transport's trio watchdog (a system task) is left out unless *watchdog*: it
    outlives its streams (see ``test_the_trio_watchdog_ends_with_its_streams``).
    """
    if sniffio.current_async_library() == "asyncio":
        return sorted(task.get_name() for task in asyncio.all_tasks())
    import trio

    names: list[str] = []
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        names.append(task.name)
        stack.extend(child for nursery in task.child_nurseries for child in nursery.child_tasks)
    return sorted(name for name in names if watchdog or name != WATCHDOG)


# --- deadlines ------------------------------------------------------------------------------


def test_default_timeouts_are_finite_and_sane() -> None:
    defaults = Timeouts()
    assert Client().timeouts == defaults
    # A stalled server must fail a request, never hang it (vLLM's 6 h default: PR #51030).
    for name in ("connect", "read", "write", "pool"):
        value = getattr(defaults, name)
        assert value is not None and 0 < value <= 600, (name, value)
    assert defaults.total is None or 0 < defaults.total < 6 * 3600
    assert all(v is None or math.isfinite(v) for v in attrs.astuple(defaults))


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A listening port whose accept queue is full: a new connect hangs (Linux)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(8):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        fillers.append(sock)
    try:
        yield port
    finally:
        for sock in fillers:
            sock.close()
        listener.close()


@_linux_only
async def test_connect_timeout(transport: str, full_backlog: int) -> None:
    url = f"http://127.0.0.1:{full_backlog}{COMPLETIONS}"
    start = time.perf_counter()
    with anyio.fail_after(5):
        async with make_client(transport, timeouts=Timeouts(connect=0.2)) as client:
            out = await client.send("openai", RequestFuncInput("a", url, 1, 4, "m"))
    assert not out.success and "ConnectTimeout" in out.error, out.error
    assert time.perf_counter() - start < 3


async def test_read_timeout_is_between_reads_not_total(transport: str) -> None:
    # Six tokens 0.06 s apart: 0.3 s in all, each gap well under the 0.2 s read timeout.
    async with open_mock_server(MockBehaviour(itl=0.06)) as server:
        with anyio.fail_after(5):
            async with make_client(transport, timeouts=Timeouts(read=0.2)) as client:
                slow = await client.send("openai", req(server, 6))
            async with make_client(transport, timeouts=Timeouts(read=0.02)) as client:
                too_slow = await client.send("openai", req(server, 6))
    assert slow.success, slow.error
    assert slow.latency > 0.2
    assert not too_slow.success and "Timeout" in too_slow.error
    assert too_slow.generated_text.split() == slow.generated_text.split()[:1]


async def test_total_deadline_keeps_the_partial_output(transport: str) -> None:
    async with open_mock_server(MockBehaviour(itl=0.08)) as server:
        start = time.perf_counter()
        with anyio.fail_after(5):
            async with make_client(transport, timeouts=Timeouts(total=0.25)) as client:
                out = await client.send("openai", req(server, 50))
        elapsed = time.perf_counter() - start
    assert not out.success and "total deadline of 0.25 s exceeded" in out.error
    assert 0.25 <= elapsed < 2
    assert 1 <= len(out.generated_text.split()) <= 5
    assert out.ttft > 0 and len(out.itl) == len(out.generated_text.split()) - 1


# --- cancellation ---------------------------------------------------------------------------


@_linux_only
async def test_cancelling_the_caller_closes_the_connection(transport: str) -> None:
    fds = open_fds()
    tasks = live_tasks()
    # An endless-looking stream: a token every 20 ms, 1000 of them.
    async with open_mock_server(MockBehaviour(itl=0.02, output_len=1000)) as server:
        async with make_client(transport) as client:
            start = time.perf_counter()
            with anyio.move_on_after(0.15) as scope:
                await client.send("openai", req(server, 1000))
            assert scope.cancelled_caught
            assert time.perf_counter() - start < 0.6  # at once, not at a timeout
            # While the client is still open: its connection is gone, not pooled.
            await eventually(lambda: server.stats.active_connections == 0)
            assert server.stats.client_disconnects == 1
            assert server.stats.responses_completed == 0
    await eventually(lambda: open_fds() == fds)
    await eventually(lambda: live_tasks() == tasks)


@_linux_only
async def test_cancelling_a_stall_and_a_hang(transport: str) -> None:
    fds = open_fds()
    tasks = live_tasks()
    async with open_mock_server(MockBehaviour(stall_after=2)) as server:
        async with make_client(transport) as client:
            with anyio.move_on_after(0.1) as stalled:
                await client.send("openai", req(server))
            with anyio.move_on_after(0.1) as hung:
                await client.send("openai", req(server, hang=True))
            assert stalled.cancelled_caught and hung.cancelled_caught
            await eventually(lambda: server.stats.active_connections == 0)
    await eventually(lambda: open_fds() == fds)
    await eventually(lambda: live_tasks() == tasks)


@_linux_only
async def test_cancelling_from_another_task_mid_stream(transport: str) -> None:
    fds = open_fds()
    got: list[Any] = []
    async with open_mock_server(MockBehaviour(itl=0.02, output_len=1000)) as server:
        async with make_client(transport) as client, anyio.create_task_group() as tg:

            async def consume() -> None:
                async with client.stream("openai", req(server, 1000)) as stream:
                    async for timed in stream:
                        got.append(timed)
                        if len(got) == 3:
                            tg.cancel_scope.cancel()  # as a harness's Ctrl-C would

            tg.start_soon(consume)
        await eventually(lambda: server.stats.active_connections == 0)
        assert server.stats.responses_completed == 0
    assert len(got) == 3
    await eventually(lambda: open_fds() == fds)


@_linux_only
async def test_leaving_a_stream_early_closes_it(transport: str) -> None:
    fds = open_fds()
    async with open_mock_server(MockBehaviour(itl=0.02, output_len=1000)) as server:
        async with make_client(transport) as client:
            async with client.stream("openai", req(server, 1000)) as stream:
                async for _ in stream:
                    break
            await eventually(lambda: server.stats.active_connections == 0)
            out = stream.output
    assert out.ttft > 0 and out.generated_text
    await eventually(lambda: open_fds() == fds)


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_the_trio_watchdog_ends_with_its_streams() -> None:
    tasks = live_tasks(watchdog=True)
    async with open_mock_server(MockBehaviour(stall_after=2)) as server:
        async with make_client("default") as client:
            with anyio.move_on_after(0.2):
                await client.send("openai", req(server))
    await eventually(lambda: live_tasks(watchdog=True) == tasks, within=0.5)


async def test_a_stalled_request_never_blocks_the_others(transport: str) -> None:
    """20 concurrent requests, 2 of which stall: the 18 others finish promptly."""
    done: dict[int, tuple[float, RequestFuncOutput]] = {}
    async with open_mock_server(MockBehaviour()) as server:
        async with make_client(transport, timeouts=Timeouts(read=0.4)) as client:

            async def one(i: int) -> None:
                mock = {"stall_after": 1} if i in (3, 11) else {}
                out = await client.send("openai", req(server, **mock))
                done[i] = (time.perf_counter(), out)

            start = time.perf_counter()
            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    for i in range(20):
                        tg.start_soon(one, i)
    stalled = [done.pop(3), done.pop(11)]
    assert all(not out.success and "Timeout" in out.error for _, out in stalled)
    assert all(out.success for _, out in done.values())
    last_ok = max(t for t, _ in done.values()) - start
    first_stalled = min(t for t, _ in stalled) - start
    assert last_ok < 0.35 < first_stalled, (last_ok, first_stalled)


# --- audit ----------------------------------------------------------------------------------

PACKAGE = pathlib.Path(__file__).parent.parent / "anyio_llmreq"
# Concurrency that is not a task group's child. Each known use is listed with its owner.
UNOWNED = re.compile(
    r"create_task\(|ensure_future\(|Thread\(|run_in_executor\(|spawn_system_task\(|"
    r"call_later\(|call_soon\(|abandon_on_cancel=True|get_event_loop\("
)
KNOWN = {
    # A daemon thread running the mock server; MockServerThread.stop() joins it.
    ("testing/_thread.py", "Thread("),
    # The transport's read-timeout timer: one per loop, it reschedules itself only while
    # a stream is watched, and a trio system task ends with the run.
    ("_transport/_timers.py", "call_later("),
    ("_transport/_timers.py", "spawn_system_task("),
    # The asyncio read batch: one callback per loop turn that has pushed reads, which
    # runs at once and only hands those reads to their consumers.
    ("_transport/_asyncio_protocol.py", "call_soon("),
    # The trio reactor reading pushed bodies: one per run, it ends (closing its epoll set)
    # as soon as no body is being pushed, and a trio system task ends with the run.
    ("_transport/_trio_reactor.py", "spawn_system_task("),
    # The hub reachability check before loading a tokenizer: a daemon thread, so that a
    # name lookup a socket timeout cannot bound is abandoned after its 3 s, not waited on.
    ("bench/_tokens.py", "Thread("),
    # The bench's loop-lag timer (asyncio): one callback at a time, re-armed only while a
    # request is in flight and cancelled when the monitor's task ends with the run.
    ("bench/_selfcheck.py", "call_later("),
    # The bench's result readers: a blocked pipe read is abandoned on cancel; the worker
    # processes are then terminated, which ends the read.
    ("bench/_workers.py", "abandon_on_cancel=True"),
    # A Ray actor's run: a thread of its own with the user's event loop, joined by the
    # actor method that started it.
    ("bench/_ray.py", "Thread("),
}


def test_no_unowned_tasks_or_threads() -> None:
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        for line in path.read_text("utf-8").splitlines():
            code = line.split("#", 1)[0]
            for match in UNOWNED.finditer(code):
                found.add((path.relative_to(PACKAGE).as_posix(), match.group()))
    assert found <= KNOWN, f"new unowned concurrency: {sorted(found - KNOWN)}"
