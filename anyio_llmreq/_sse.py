"""An incremental server-sent-events decoder over bytes (sans-IO).

It follows the WHATWG event-stream interpretation exactly as httpx-sse 0.4.3 does (the
tests check the two against each other on random streams), but works on bytes, per
network read, so the per-chunk cost stays small:

* lines end in LF, CRLF or CR, and a CRLF may be split across two reads;
* only complete lines are decoded, so a UTF-8 character split across reads is whole
  by the time it is decoded;
* a line still incomplete at the end of a read is kept as a list of pieces and joined
  once, so a 4 MiB event arriving in 4 KiB reads costs linear, not quadratic, time;
* the last event id is kept across events (as the spec says), which is why a comment
  line followed by a blank line after an ``id:`` field dispatches an event with empty
  ``data``; consumers skip those.

An event still incomplete when the stream ends is dropped, as the spec requires.
"""

from __future__ import annotations

from ._exceptions import StreamProtocolError
from ._models import SSEEvent

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "DEFAULT_MAX_STREAM_BYTES", "SSEDecoder"]

#: The largest event (or line) a decoder buffers before it gives up: a server that
#: never ends a line must not exhaust the client's memory.
DEFAULT_MAX_EVENT_BYTES = 64 * 1024 * 1024
#: The most bytes one response stream may carry: about two million tokens of a typical
#: OpenAI-style stream, and a bound on the text and timings a request accumulates.
DEFAULT_MAX_STREAM_BYTES = 512 * 1024 * 1024

_LF = b"\n"
_CR = b"\r"
# ``b"\r" in data`` first tries to read b"\r" as an integer and builds the TypeError
# that fails: ten times the cost of the search. An int operand is searched at once.
_CR_ORD = ord("\r")
_BLANK = b"\n\n"


class SSEDecoder:
    """Turn a byte stream into ``SSEEvent`` objects, one read at a time."""

    __slots__ = (
        "_data",
        "_data_bytes",
        "_event",
        "_id",
        "_max_event_bytes",
        "_pending_cr",
        "_retry",
        "_tail",
        "_tail_bytes",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._max_event_bytes = max_event_bytes
        self._tail_bytes = 0
        self._data_bytes = 0
        self._tail: list[bytes] = []
        self._pending_cr = False
        self._event = b""
        self._data: list[bytes] = []
        self._id = ""
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume one read's bytes; return the events completed by it."""
        return self._feed(chunk, False)[0]  # type: ignore[return-value]

    def feed_data(self, chunk: bytes) -> tuple[list[SSEEvent | str], bool]:
        """Like ``feed``, but a data event (one ``data:`` line, type ``message``, no
        ``id`` seen on the stream) comes back as its data string, without building an
        ``SSEEvent``. The flag is True when the read held data events only (it may be
        False for some such reads): then every item is a string."""
        return self._feed(chunk, True)

    def _feed(self, chunk: bytes, plain: bool) -> tuple[list[SSEEvent | str], bool]:
        if self._pending_cr:
            # The previous read ended in CR; an LF opening this read belongs to it.
            self._pending_cr = False
            if chunk[:1] == _LF:
                chunk = chunk[1:]
        if _CR_ORD in chunk:
            self._pending_cr = chunk[-1:] == _CR
            chunk = chunk.replace(b"\r\n", _LF).replace(_CR, _LF)
        if (
            chunk[-2:] == _BLANK
            and not self._tail
            and not self._data
            and not self._event
            and self._retry is None
            and len(chunk) <= self._max_event_bytes
        ):
            try:
                # A read of whole events is whole UTF-8 too: decode it once.
                text = chunk.decode()
            except UnicodeDecodeError:
                pass  # invalid UTF-8: the line path decodes with replacement
            else:
                if plain and not self._id and text.startswith("data: "):
                    # Only "data: ..." lines, each followed by a blank line? The split
                    # accounts for two LFs per piece; any other LF (a second line, an
                    # empty block) is one more, so one count checks every event at once.
                    datas = text[6:-2].split("\n\ndata: ")
                    if text.count("\n") == 2 * len(datas):
                        # The split's own list, flagged: no copy on the hottest path.
                        return datas, True  # type: ignore[return-value]
                blocks = text.split("\n\n")
                if not blocks[-1]:  # not so after an odd run of LFs
                    return self._whole_events(blocks, plain), False
        end = chunk.rfind(_LF)
        if end < 0:
            if chunk:
                self._keep(chunk)
            return [], False
        if self._tail:
            self._tail.append(chunk[:end])
            block = b"".join(self._tail)
            self._tail.clear()
            self._tail_bytes = 0
        else:
            block = chunk[:end]
        if end + 1 < len(chunk):
            self._keep(chunk[end + 1 :])
        return self._lines(block.split(_LF)), False  # type: ignore[return-value]

    def _keep(self, piece: bytes) -> None:
        """Hold the start of an unfinished line, within the size limit."""
        self._tail_bytes += len(piece)
        if self._tail_bytes > self._max_event_bytes:
            self._too_large()
        self._tail.append(piece)

    def _too_large(self) -> None:
        self._tail.clear()
        self._data = []
        raise StreamProtocolError(
            f"stream event larger than {self._max_event_bytes} bytes; refusing to buffer more"
        )

    def _whole_events(self, blocks: list[str], plain: bool) -> list[SSEEvent | str]:
        """The common case: a read of complete events (*blocks* ends with ``""``)."""
        events: list[SSEEvent | str] = []
        append = events.append
        bare = plain and not self._id
        for block in blocks[:-1]:
            if block.startswith("data:") and "\n" not in block:
                data = block[6:] if block[5:6] == " " else block[5:]
                append(data if bare else SSEEvent(data, "message", self._id))
            else:
                events.extend(self._lines([*block.encode().split(_LF), b""]))
                bare = plain and not self._id
        return events

    def _lines(self, lines: list[bytes]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        data = self._data
        for line in lines:
            if not line:
                if data or self._event or self._id or self._retry is not None:
                    events.append(self._dispatch())
                    data = self._data
                continue
            if line[:5] == b"data:":
                # The hot case: one `data:` line per event.
                value = line[5:]
                data.append(value[1:] if value[:1] == b" " else value)
                self._data_bytes += len(value)
                if self._data_bytes > self._max_event_bytes:
                    self._too_large()
                continue
            if line[:1] == b":":
                continue
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                data.append(value)
                self._data_bytes += len(value)
            elif name == b"event":
                self._event = value
            elif name == b"id":
                if 0 not in value:
                    self._id = value.decode("utf-8", "replace")
            elif name == b"retry":
                try:
                    self._retry = int(value)
                except ValueError:
                    pass
        return events

    def _dispatch(self) -> SSEEvent:
        data = self._data
        raw = data[0] if len(data) == 1 else b"\n".join(data)
        event = SSEEvent(
            raw.decode("utf-8", "replace"),
            self._event.decode("utf-8", "replace") if self._event else "message",
            self._id,
            self._retry,
        )
        self._data = []
        self._data_bytes = 0
        self._event = b""
        self._retry = None
        return event
