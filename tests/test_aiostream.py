"""The asyncio stream's read batch: stamps at the socket, consumption right after, in order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from anyio_llmreq._transport._asyncio_protocol import ReadBatch, _Protocol

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.parametrize(
        "anyio_backend",
        [("asyncio", {}), ("asyncio", {"use_uvloop": True})],
        ids=["asyncio", "uvloop"],  # the asyncio path; trio has its reactor
    ),
]


async def test_reads_of_a_turn_are_stamped_then_consumed_in_order() -> None:
    batch = ReadBatch(asyncio.get_running_loop())
    first, second = _Protocol(batch), _Protocol(batch)
    got: list[tuple[str, bytes, float]] = []

    def sink(name: str) -> Callable[[bytes, float], bool]:
        def consume(data: bytes, now: float) -> bool:
            got.append((name, data, now))
            return data == b"end"

        return consume

    first.sink, second.sink = sink("first"), sink("second")
    first.data_received(b"a")
    second.data_received(b"b")
    first.data_received(b"c")
    second.data_received(b"end")
    assert got == []  # stamped, not yet consumed
    await asyncio.sleep(0)
    assert [(who, data) for who, data, _ in got] == [
        ("first", b"a"),
        ("second", b"b"),
        ("first", b"c"),
        ("second", b"end"),
    ]
    stamps = [now for _, _, now in got]
    assert stamps == sorted(stamps)
    assert second.sink is None and second.sink_done  # its sink said the body ended
    assert first.sink is not None and not first.sink_done


async def test_reads_queued_before_the_sink_went_keep_their_order() -> None:
    batch = ReadBatch(asyncio.get_running_loop())
    protocol = _Protocol(batch)
    protocol.sink = lambda data, now: False
    protocol.data_received(b"x")  # batched for the sink
    protocol.sink = None  # the push ended (cancelled) before the batch ran
    protocol.data_received(b"y")  # still behind "x": batched too, not buffered first
    await asyncio.sleep(0)
    assert [data for data, _ in protocol.chunks] == [b"x", b"y"]
    assert protocol.pending == 0
    protocol.data_received(b"z")  # nothing pending: straight to the buffer
    assert [data for data, _ in protocol.chunks] == [b"x", b"y", b"z"]
