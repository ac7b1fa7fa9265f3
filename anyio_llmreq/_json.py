"""JSON through orjson when it is installed (the ``fast`` extra), else the stdlib."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["dumps", "loads"]

from collections.abc import Callable

loads: Callable[[str | bytes], Any]

try:
    import orjson
except ImportError:  # pragma: no cover - exercised when the extra is absent
    loads = json.loads

    def dumps(obj: Any) -> bytes:
        """Encode compactly to UTF-8 bytes."""
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()

else:
    loads = orjson.loads

    def dumps(obj: Any) -> bytes:
        """Encode compactly to UTF-8 bytes."""
        return orjson.dumps(obj)
