"""A short soak: many requests at high concurrency, a share of them faulty.

Every request is accounted for exactly once: the outputs split into successes and
failures that add up to what was sent, the server saw the same number, and the failures
are exactly the injected faults that can fail a request (a short stall only delays it).
Descriptors come back to where they started and nothing hangs. The longer version, with
RSS and a table, is ``benchmarks/bench_soak.py``.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterator

import anyio
import pytest

from anyio_llmreq import Client, RequestFuncInput, RequestFuncOutput, Timeouts
from anyio_llmreq.testing import MockBehaviour, MockServer, MockServerThread

from .rawserver import eventually

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc"),
]

REQUESTS = 600
CONCURRENCY = 200
# A stall shorter than the read timeout only delays its request. The read timeout is
# not 1 s: a burst of hundreds of new connections can lose packets even on loopback
# (seen on a 2-core CI box), and TCP resends them after its initial 1 s timeout.
BEHAVIOUR = MockBehaviour(output_len=8, fault_rate=0.1, seed=20250101, fault_stall=0.2)
TIMEOUTS = Timeouts(connect=5, read=5)


def open_fds() -> set[tuple[str, str]]:
    """Descriptors and their targets; libuv's reserve ``/dev/null`` is left out."""
    fds = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target != "/dev/null":
            fds.add((fd, target))
    return fds


@pytest.fixture
def server() -> Iterator[MockServer]:
    # In its own thread and loop: a server sharing the client's loop accepts a burst of
    # 200 connections so slowly that the last ones hit the 1 s read timeout.
    with MockServerThread(BEHAVIOUR, backend="asyncio", record=False) as server:
        yield server


async def test_soak_accounts_for_every_request(server: MockServer) -> None:
    fds = open_fds()
    outputs: dict[int, RequestFuncOutput] = {}
    url = server.base_url + "/v1/chat/completions"
    limiter = anyio.CapacityLimiter(CONCURRENCY)
    async with Client(timeouts=TIMEOUTS) as client:

        async def one(i: int) -> None:
            async with limiter:
                out = await client.send("openai-chat", RequestFuncInput("hi", url, 1, 8, "m"))
            assert i not in outputs
            outputs[i] = out

        with anyio.fail_after(40):
            async with anyio.create_task_group() as tg:
                for i in range(REQUESTS):
                    tg.start_soon(one, i)
    stats = server.stats
    succeeded = sum(out.success for out in outputs.values())
    failed = [out for out in outputs.values() if not out.success]
    assert len(outputs) == REQUESTS
    assert succeeded + len(failed) == REQUESTS == stats.requests
    failing_faults = sum(n for kind, n in stats.faults.items() if kind != "stall")
    assert 0 < failing_faults < REQUESTS * 0.2, stats.faults
    assert len(failed) == failing_faults, (stats.faults, Counter(o.error[:40] for o in failed))
    assert all(out.error and "\n" not in out.error for out in failed)
    assert all(out.output_tokens == 8 for out in outputs.values() if out.success)
    await eventually(lambda: stats.active_connections == 0)
    await eventually(lambda: open_fds() == fds)
