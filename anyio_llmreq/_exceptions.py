"""The exception tree of anyio_llmreq.

```
LLMReqError                     root; never raised itself
├── ConfigError (ValueError)    a request or option that can't work; raised before any I/O
└── RequestError                something went wrong while one request ran
    ├── TransportError          connect / read / write / protocol failure below HTTP
    │   └── RequestTimeout      a connect, read or total deadline passed
    ├── HTTPStatusError         the server answered with a non-2xx status
    ├── StreamProtocolError     the body is not what the backend's protocol says it is
    ├── ServerReportedError     the server sent an error object or event in the stream
    └── EmptyResponseError      the stream ended without any output
```

Request errors are not raised out of the engine: they become a failed
``RequestFuncOutput`` whose ``error`` is the exception's one-line text.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "EmptyResponseError",
    "HTTPStatusError",
    "LLMReqError",
    "RequestError",
    "RequestTimeout",
    "ServerReportedError",
    "StreamProtocolError",
    "TransportError",
]


class LLMReqError(Exception):
    """Root of every exception this library raises."""


class ConfigError(LLMReqError, ValueError):
    """A request or option can't work; raised before any network I/O."""


class RequestError(LLMReqError):
    """One request failed; the engine turns it into a failed output."""


class TransportError(RequestError):
    """The connection failed below HTTP (connect, read, write, framing)."""


class RequestTimeout(TransportError):
    """A connect, read-between-chunks or total deadline passed."""


class HTTPStatusError(RequestError):
    """The server answered with a status outside 2xx."""

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class StreamProtocolError(RequestError):
    """The response body does not follow the backend's protocol."""


class ServerReportedError(RequestError):
    """The server reported an error inside a successful (2xx) response."""


class EmptyResponseError(RequestError):
    """The response ended without a single output-bearing event."""
