"""JSON with one behaviour, whether or not orjson (the ``fast`` extra) is installed.

The standard library is the definition::

    loads(data) == json.loads(data)
    dumps(obj) == json.dumps(obj, ensure_ascii=False, separators=(",", ":"),
                            allow_nan=False).encode()

save that nesting too deep for the stack raises ``ValueError`` (``JSONDecodeError`` from
``loads``) instead of ``RecursionError``. orjson is only a fast path, taken where it
gives the same result: the same values, the same bytes, the same exceptions (type and
message) in both modes.

``loads`` tries orjson and, on any orjson error, calls the stdlib, so what only the
stdlib accepts (``NaN``, ``-Infinity``, ``1e400``, lone surrogates, a BOM or UTF-16/32
in bytes) parses as the stdlib parses it, and what neither accepts raises the stdlib's
error (``json.JSONDecodeError``, or ``UnicodeDecodeError`` for bytes that are not text:
``ValueError`` either way). orjson reads integers outside the 64-bit range as floats, so
a text with a run of 19 digits goes to the stdlib too, which keeps them exact: one scan
of the text, about half the cost of orjson's parse. One difference is left: orjson nests
1024 deep; on Python 3.10/3.11 the stdlib stops near 1000 less the caller's stack depth,
so a text nested between the two parses only with orjson.

``dumps`` first walks the containers (not the text): orjson writes only objects made of
exact ``dict`` (``str`` keys), ``list``, ``tuple``, ``str``, ``int``, ``bool``, ``None``
and floats with ``1e-4 <= abs(x) < 1e16`` or zero, where its output is the stdlib's byte
for byte (outside that range they write exponents differently: ``1e-05`` against
``0.00001`` or ``1e-5``, and older orjson ``1e16`` against ``1e+16``). Everything else
goes to the stdlib: non-``str`` keys (``{50256: -100}`` is written ``{"50256":-100}``),
subclasses, integers beyond 64 bits, and what the stdlib refuses with ``TypeError`` but
orjson would write (dataclasses, datetimes, UUIDs, enums, numpy values).

``NaN`` and the infinities are not JSON, and ``dumps`` refuses them with the stdlib's
``ValueError`` before any I/O, as httpx's own ``json=`` does. Sending ``NaN`` (vLLM's
aiohttp client, the stdlib's default) gets an error from strict servers and a NaN
sampling parameter from lenient ones; orjson's ``null`` silently becomes the server's
default. ``loads`` accepts them, as ``json.loads`` does: servers send them.

``record_dumps`` writes our own files (``--output-jsonl`` lines), where nothing compares
bytes: ``json.loads`` of its output gives back the same values, but floats may be written
in orjson's shortest form (``0.00001`` for ``1e-05``), which saves the stdlib's
encoder on every record that holds a small float. ``NaN`` and the infinities are written
as the stdlib writes them (``NaN``, not orjson's ``null``), so a record loses nothing.

``raw_dumps`` is orjson's own ``dumps`` (``None`` without orjson), for a caller that
checks what it wrote itself (``RequestRecord.to_jsonl``).

``std_loads``/``std_dumps`` are the definitions, ``fast_loads``/``fast_dumps`` the orjson
paths (``None`` without orjson), ``loads``/``dumps`` the pair in use; ``token_loads`` the
raw parser for the backends' token fast paths (see there). Modules import
``loads``/``dumps`` by name (no indirection per call); a test that forces one pair binds
it in every module that imported them (``json_impl`` in ``tests/conftest.py``).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["dumps", "loads", "raw_dumps", "record_dumps", "token_loads"]

Loads = Callable[[str | bytes], Any]
Dumps = Callable[[Any], bytes]

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def std_loads(data: str | bytes) -> Any:
    """``json.loads``, with nesting too deep for the stack a ``JSONDecodeError``."""
    try:
        return json.loads(data)
    except RecursionError:
        doc = data if isinstance(data, str) else ""
        raise json.JSONDecodeError("JSON nested too deeply", doc, 0) from None


def std_dumps(obj: Any) -> bytes:
    """Encode compactly to UTF-8 bytes: strict JSON (no ``NaN``), non-ASCII kept.

    Nesting too deep for the stack is a ``ValueError``, like a circular reference.
    """
    try:
        return _encode(obj).encode()
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


_record_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_record_encode_ascii = json.JSONEncoder(separators=(",", ":")).encode


def std_record_dumps(obj: Any) -> bytes:
    """``record_dumps`` without orjson: compact UTF-8, ``NaN`` written as ``NaN``; a
    string with a lone surrogate (a server may send ``"\\ud800"``) makes the line
    ASCII with escapes, which reads back the same."""
    text = _record_encode(obj)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return _record_encode_ascii(obj).encode()


fast_loads: Loads | None = None
fast_dumps: Dumps | None = None
fast_record_dumps: Dumps | None = None
raw_dumps: Dumps | None = None

try:
    import orjson
except ImportError:  # pragma: no cover - exercised when the extra is absent
    pass
else:
    _orjson_loads = orjson.loads
    _orjson_dumps = orjson.dumps
    _OrjsonDecodeError = orjson.JSONDecodeError
    _OrjsonEncodeError = orjson.JSONEncodeError
    # Digits to "0", so that a run of 19 digits (an integer orjson may read as a float)
    # is one substring search.
    _ZEROED = bytes.maketrans(b"123456789", b"000000000")
    _LONG_RUN = b"0" * 19
    _LEAVES = frozenset((str, int, bool, type(None)))
    _NO_KEYS = itertools.repeat("")  # a list's items, as pairs with a str key
    # orjson nests about 250 deep; the walk gives up sooner (cycles too) for the stdlib.
    _MAX_DEPTH = 200
    _isfinite = math.isfinite

    def _orjson_loads_as_stdlib(data: str | bytes) -> Any:
        """``std_loads(data)``, through orjson when that gives the same result."""
        try:
            obj = _orjson_loads(data)
        except _OrjsonDecodeError:
            return std_loads(data)
        if type(data) is str:
            raw = data.encode()  # orjson accepted it: no lone surrogates
        elif type(data) is bytes:
            raw = data
        else:  # bytearray, memoryview: what the stdlib makes of them
            return std_loads(data)
        if raw.translate(_ZEROED).find(_LONG_RUN) >= 0:
            return std_loads(data)
        return obj

    def _plain(items: Any, depth: int) -> bool:
        """Whether orjson writes the container *items* byte for byte as the stdlib does."""
        pairs: Iterable[tuple[Any, Any]]
        if type(items) is dict:
            pairs = items.items()  # keys and values in one pass: no set of key types
        elif len(items) > 16 and set(map(type, items)) <= _LEAVES:
            return True  # a long list of scalars (token ids): one pass in C
        else:
            pairs = zip(_NO_KEYS, items, strict=False)  # _NO_KEYS never ends
        for key, value in pairs:
            if type(key) is not str:
                return False
            kind = type(value)
            # The usual leaves first, by identity: cheaper than a set lookup.
            if kind is str or kind is int or kind is bool or value is None:
                continue
            if kind is float:
                if not (1e-4 <= abs(value) < 1e16 or value == 0.0):  # NaN fails both
                    return False
            elif kind is dict or kind is list or kind is tuple:
                if depth >= _MAX_DEPTH or not _plain(value, depth + 1):
                    return False
            else:
                return False
        return True

    def _orjson_dumps_as_stdlib(obj: Any) -> bytes:
        """``std_dumps(obj)``, through orjson when that gives the same bytes."""
        kind = type(obj)
        if kind is dict or kind is list or kind is tuple:
            plain = _plain(obj, 1)  # the depth the walk gives it under a wrapper
        else:
            plain = _plain((obj,), 0)
        if plain:
            try:
                return _orjson_dumps(obj)
            except _OrjsonEncodeError:  # integers beyond 64 bits, lone surrogates
                pass
        return std_dumps(obj)

    def _finite(value: Any, depth: int) -> bool:
        """Whether every float in *value* is finite: orjson writes ``NaN`` and the
        infinities as ``null``."""
        kind = type(value)
        if kind is dict:
            values = value.values()
        elif kind is list or kind is tuple:
            try:  # a list of numbers (inter-token latencies): one pass in C
                return _isfinite(sum(value, 0.0))
            except (TypeError, OverflowError):
                values = value
        else:
            return kind is not float or _isfinite(value)
        for item in values:
            kind = type(item)
            if kind is float:
                if not _isfinite(item):
                    return False
            elif kind is dict or kind is list or kind is tuple:
                if depth >= _MAX_DEPTH or not _finite(item, depth + 1):
                    return False
        return True

    # Subclasses, dataclasses and datetimes to the stdlib, as it writes (or refuses) them:
    # the walk for NaN below looks into exact containers only.
    _RECORD_OPTIONS = (
        orjson.OPT_PASSTHROUGH_SUBCLASS
        | orjson.OPT_PASSTHROUGH_DATACLASS
        | orjson.OPT_PASSTHROUGH_DATETIME
    )

    def _orjson_record_dumps(obj: Any) -> bytes:
        """``record_dumps`` through orjson, save for what it would write as ``null``
        or refuses (non-``str`` keys, integers beyond 64 bits, lone surrogates)."""
        try:
            line = _orjson_dumps(obj, option=_RECORD_OPTIONS)
        except _OrjsonEncodeError:
            return std_record_dumps(obj)
        # orjson writes NaN as null: without a null there is nothing to check.
        if line.find(b"null") < 0 or _finite(obj, 0):
            return line
        return std_record_dumps(obj)

    fast_loads = _orjson_loads_as_stdlib
    fast_dumps = _orjson_dumps_as_stdlib
    fast_record_dumps = _orjson_record_dumps
    raw_dumps = _orjson_dumps

loads: Loads = fast_loads or std_loads
dumps: Dumps = fast_dumps or std_dumps
record_dumps: Dumps = fast_record_dumps or std_record_dumps
#: The parser as it is (orjson's, else the stdlib's), for the per-event fast paths that
#: take only strings, and whether keys are set, from the result: every parser agrees on
#: those, so the check ``loads`` makes for long integers would be wasted there. What it
#: rejects (``NaN``, say) the caller hands to the full path, which uses ``loads``.
token_loads: Loads = _orjson_loads if fast_loads is not None else std_loads
