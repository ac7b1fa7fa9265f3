"""An embedded HTTP/1.1 mock LLM server for tests and client-overhead benchmarks.

It speaks the OpenAI completions/chat/audio/embeddings, TGI, Triton TensorRT-LLM and
DeepSpeed-MII dialects, on asyncio, uvloop and trio, with scripted timing and faults.
"""

from __future__ import annotations

from ._behaviour import MockBehaviour as MockBehaviour
from ._records import RecordedRequest as RecordedRequest
from ._records import ServerStats as ServerStats
from ._records import UploadedFile as UploadedFile
from ._server import MockServer as MockServer
from ._server import open_mock_server as open_mock_server
from ._thread import MockServerThread as MockServerThread

__all__ = (
    "MockBehaviour",
    "MockServer",
    "MockServerThread",
    "RecordedRequest",
    "ServerStats",
    "UploadedFile",
    "open_mock_server",
)
