"""What the mock server remembers about the requests it served."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["RecordedRequest", "ServerStats", "UploadedFile"]


@attrs.frozen
class UploadedFile:
    """A file part of a multipart form (its bytes stay in the raw body)."""

    filename: str | None
    content_type: str | None
    size: int


@attrs.define(eq=False)
class RecordedRequest:
    """One request as received, plus when each response event left the server.

    Times are ``time.perf_counter()`` readings (CLOCK_MONOTONIC on Linux), so a
    client in another process on the same machine can compare its own clock readings.
    """

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    received_at: float
    json: Any = None
    form: dict[str, str] | None = None
    files: dict[str, UploadedFile] = attrs.Factory(dict)
    status: int = 0
    fault: str | None = None
    completed: bool = False
    sent_times: list[float] = attrs.Factory(list)
    event_tokens: list[tuple[str, ...]] = attrs.Factory(list)

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.partition("?")[0]

    def header(self, name: str) -> str | None:
        """The last value of header ``name`` (case-insensitive), or None."""
        lowered = name.lower()
        for key, value in reversed(self.headers):
            if key.lower() == lowered:
                return value
        return None

    @property
    def tokens(self) -> list[str]:
        """All streamed tokens, in order."""
        return [tok for event in self.event_tokens for tok in event]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the body as UTF-8 text, undecodable bytes replaced)."""
        return {
            "method": self.method,
            "target": self.target,
            "path": self.path,
            "headers": [list(pair) for pair in self.headers],
            "body": self.body.decode("utf-8", "replace"),
            "body_size": len(self.body),
            "json": self.json,
            "form": self.form,
            "files": {name: attrs.asdict(f) for name, f in self.files.items()},
            "received_at": self.received_at,
            "status": self.status,
            "fault": self.fault,
            "completed": self.completed,
            "sent_times": self.sent_times,
            "event_tokens": [list(t) for t in self.event_tokens],
        }


@attrs.define
class ServerStats:
    """Counters kept even when ``record=False``."""

    connections: int = 0
    active_connections: int = 0
    requests: int = 0
    responses_completed: int = 0
    events: int = 0
    tokens: int = 0
    client_disconnects: int = 0
    internal_errors: int = 0
    faults: dict[str, int] = attrs.Factory(dict)
    paths: dict[str, int] = attrs.Factory(dict)

    def count_fault(self, name: str) -> None:
        self.faults[name] = self.faults.get(name, 0) + 1

    def count_path(self, path: str) -> None:
        self.paths[path] = self.paths.get(path, 0) + 1

    def clear(self) -> None:
        """Zero every counter except the live connection count."""
        active = self.active_connections
        fresh = ServerStats(active_connections=active)
        for field in attrs.fields(ServerStats):
            setattr(self, field.name, getattr(fresh, field.name))

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)
