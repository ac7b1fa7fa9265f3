"""Hypothesis strategies for SSE transcripts and the ways a network splits them."""

from __future__ import annotations

from hypothesis import strategies as st

# Text that exercises multi-byte UTF-8 (2, 3 and 4 bytes) but no line breaks.
_text = st.text(
    alphabet=st.sampled_from(list("abc xyz{}:\"'ä中文🙂\t")),
    max_size=12,
)

_field_line = st.one_of(
    _text.map(lambda t: f"data: {t}"),
    _text.map(lambda t: f"data:{t}"),
    st.just("data"),
    _text.map(lambda t: f"event: {t}"),
    _text.map(lambda t: f"id: {t}"),
    st.integers(min_value=0, max_value=5000).map(lambda n: f"retry: {n}"),
    st.just("retry: soon"),
    _text.map(lambda t: f": {t}"),
    st.just(":"),
    _text.map(lambda t: f"unknown: {t}"),
    st.just(""),
)

line_endings = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def sse_streams(draw: st.DrawFn) -> str:
    """An event stream as text: random fields, blank lines and line endings."""
    lines = draw(st.lists(_field_line, max_size=25))
    parts = [line + draw(line_endings) for line in lines]
    return "".join(parts)


@st.composite
def splits(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """*data* cut at random offsets (anywhere, inside UTF-8 characters and CRLF too)."""
    if len(data) < 2:
        return [data] if data else []
    cuts = sorted(draw(st.sets(st.integers(min_value=1, max_value=len(data) - 1), max_size=20)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def split_at(data: bytes, size: int) -> list[bytes]:
    """*data* in pieces of *size* bytes."""
    return [data[i : i + size] for i in range(0, len(data), size)]


# Mostly the token-stream shape ("data: ..." then a blank line), now and then a line the
# shape does not allow: what the decoders' whole-read fast paths must tell apart.
_mostly_plain_block = st.one_of(
    _text.map(lambda t: f"data: {t}\n\n"),
    _text.map(lambda t: f"data: {t}\n\n"),
    _text.map(lambda t: f"data: {t}\n\n"),
    _field_line.map(lambda line: f"{line}\n"),
    st.just("\n"),
    _text.map(lambda t: f"data: {t}\r\n\r\n"),
)


@st.composite
def mostly_plain_streams(draw: st.DrawFn) -> list[bytes]:
    """An event stream as reads that end on a block boundary (or not, now and then)."""
    blocks = [b.encode() for b in draw(st.lists(_mostly_plain_block, max_size=30))]
    reads: list[bytes] = []
    i = 0
    while i < len(blocks):
        n = draw(st.integers(min_value=1, max_value=5))
        reads.append(b"".join(blocks[i : i + n]))
        i += n
    return reads
