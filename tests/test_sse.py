from __future__ import annotations

import pytest
from httpx_sse._decoders import SSEDecoder as ReferenceDecoder
from httpx_sse._decoders import SSELineDecoder
from hypothesis import given
from hypothesis import strategies as st

from anyio_llmreq import SSEDecoder, SSEEvent, StreamProtocolError

from .strategies import mostly_plain_streams, split_at, splits, sse_streams


def reference_events(text: str) -> list[SSEEvent]:
    """What httpx-sse 0.4.3 yields for *text* (the semantics we promise)."""
    lines = SSELineDecoder()
    decoder = ReferenceDecoder()
    out = []
    for line in [*lines.decode(text), *lines.flush()]:
        sse = decoder.decode(line)
        if sse is not None:
            out.append(SSEEvent(sse.data, sse.event, sse.id, sse.retry))
    return out


def our_events(pieces: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    out: list[SSEEvent] = []
    for piece in pieces:
        out.extend(decoder.feed(piece))
    return out


@given(st.data())
def test_matches_httpx_sse_at_any_split(data: st.DataObject) -> None:
    text = data.draw(sse_streams())
    raw = text.encode()
    pieces = data.draw(splits(raw))
    assert our_events(pieces) == reference_events(text)


@given(sse_streams())
def test_byte_at_a_time_equals_whole(text: str) -> None:
    raw = text.encode()
    assert our_events(split_at(raw, 1)) == our_events([raw])


def test_line_endings_are_equivalent() -> None:
    lf = b"data: a\n\ndata: b\ndata: c\n\n"
    expected = [SSEEvent("a"), SSEEvent("b\nc")]
    assert our_events([lf]) == expected
    assert our_events([lf.replace(b"\n", b"\r\n")]) == expected
    assert our_events([lf.replace(b"\n", b"\r")]) == expected


def test_crlf_split_between_cr_and_lf_is_one_line_end() -> None:
    assert our_events([b"data: a\r", b"\n\r", b"\n"]) == [SSEEvent("a")]


def test_fields_comments_and_data_without_space() -> None:
    raw = b": ping\nevent: error\nid: 7\nretry: 30\ndata:{}\n\n"
    assert our_events([raw]) == [SSEEvent("{}", "error", "7", 30)]


def test_id_survives_and_comment_dispatches_empty_event() -> None:
    # httpx-sse's documented quirk: after `id:`, a keep-alive yields an empty-data event.
    raw = b"id: 1\ndata: x\n\n: keep-alive\n\n"
    assert our_events([raw]) == [SSEEvent("x", id="1"), SSEEvent("", id="1")]


def test_incomplete_event_at_end_is_dropped() -> None:
    assert our_events([b"data: a\n\ndata: b\n"]) == [SSEEvent("a")]


def test_utf8_split_inside_a_character() -> None:
    raw = "data: 中文🙂\n\n".encode()
    for cut in range(1, len(raw)):
        assert our_events([raw[:cut], raw[cut:]]) == [SSEEvent("中文🙂")]


def test_large_event_in_small_reads() -> None:
    # 4 MiB in 4 KiB reads: the incomplete line is kept as pieces and joined once (a
    # quadratic buffer would copy ~2 GiB here and run into the test timeout).
    payload = b"x" * (4 * 1024 * 1024)
    events = our_events(split_at(b"data: " + payload + b"\n\n", 4096))
    assert len(events) == 1
    assert len(events[0].data) == len(payload)


@given(sse_streams(), st.data())
def test_reads_cut_at_event_boundaries(text: str, data: st.DataObject) -> None:
    # Reads that end exactly on a blank line take the decoder's whole-event fast path.
    raw = text.encode().replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    blocks = [block + b"\n\n" for block in raw.split(b"\n\n")]
    groups = data.draw(st.integers(min_value=1, max_value=4))
    pieces = [b"".join(blocks[i : i + groups]) for i in range(0, len(blocks), groups)]
    assert our_events(pieces) == reference_events(b"".join(pieces).decode())


def test_an_endless_line_is_refused_at_the_limit() -> None:
    decoder = SSEDecoder(max_event_bytes=1000)
    decoder.feed(b"data: " + b"x" * 900)
    with pytest.raises(StreamProtocolError, match="larger than 1000 bytes"):
        decoder.feed(b"x" * 200)


def test_many_data_lines_are_refused_at_the_limit() -> None:
    decoder = SSEDecoder(max_event_bytes=1000)
    with pytest.raises(StreamProtocolError, match="larger than 1000 bytes"):
        decoder.feed((b"data: " + b"y" * 100 + b"\n") * 11)


@given(st.data())
def test_feed_data_is_feed_with_plain_events_as_strings(data: st.DataObject) -> None:
    text = data.draw(sse_streams())
    pieces = data.draw(splits(text.encode()))
    decoder = SSEDecoder()
    got: list[SSEEvent] = []
    for piece in pieces:
        got.extend(SSEEvent(e) if isinstance(e, str) else e for e in decoder.feed_data(piece)[0])
    assert got == our_events(pieces)


@given(mostly_plain_streams())
def test_plain_reads_fast_path_matches_httpx_sse(reads: list[bytes]) -> None:
    decoder = SSEDecoder()
    got: list[SSEEvent] = []
    for read in reads:
        events, only_data = decoder.feed_data(read)
        if only_data:
            # Claimed plain: data strings only, one per "data: " line of the read.
            assert all(isinstance(e, str) for e in events)
            assert len(events) == read.count(b"data: ")
        got.extend(SSEEvent(e) if isinstance(e, str) else e for e in events)
    assert got == reference_events(b"".join(reads).decode())


def test_plain_reads_take_the_fast_path_only_when_plain() -> None:
    decoder = SSEDecoder()
    events, only_data = decoder.feed_data(b'data: {"a":1}\n\ndata: b\n\n')
    assert events == ['{"a":1}', "b"]
    assert only_data
    for read in [
        b"data: a\n\n\n\ndata: b\n\n",  # an empty block
        b"data: a\ndata: b\n\n",  # two data lines, one event
        b"data: a\n\n: ping\n\n",  # a comment
        b"data:a\n\n",  # no space: still plain, but not the split's shape
        b"data: a\n\n\n",  # an odd run of LFs
    ]:
        fresh = SSEDecoder()
        events, only_data = fresh.feed_data(read)
        assert not only_data, read
        assert [SSEEvent(e) if isinstance(e, str) else e for e in events] == reference_events(
            read.decode()
        )
    with_id = SSEDecoder()
    with_id.feed_data(b"id: 7\ndata: a\n\n")
    events, only_data = with_id.feed_data(b"data: b\n\n")
    assert events == [SSEEvent("b", "message", "7")]
    assert not only_data
