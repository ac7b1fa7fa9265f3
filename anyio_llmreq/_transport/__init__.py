"""An HTTP/1.1 streaming transport for httpx, written directly on anyio and the event loop.

httpx's default transport (httpcore) spends most of its CPU at high concurrency on pool
bookkeeping and on per-read layers around h11. This transport keeps httpx's client API
(redirects, cookies, auth, ``Response``) and replaces only the wire layer:

* one connection per in-flight request; idle connections wait in a LIFO deque per
  (scheme, host, port), so checkout and checkin are O(1) and never scan the pool;
* the response body is decoded in one pass per socket read: a chunked read yields one
  ``bytes`` object holding every complete chunk payload of that read;
* the time of every socket read is taken before any decoding and published through
  ``response.extensions["anyio_llmreq.arrival"]`` (:class:`Arrival`);
* read timeouts of the body cost nothing per read: one watchdog timer per event loop.

Modules: ``_pool`` (``AnyioTransport``: pool, request, response head), ``_body`` (the
response body), ``_http11`` (the sans-IO wire format), ``_asyncio_protocol`` and
``_trio_reactor`` (the connection streams of each event loop), ``_timers`` (read
timeouts), ``_tls`` (trust store), ``_errors`` (naming OS errors) and ``_interface``
(what the engine relies on: :class:`TimedBody`, :class:`Arrival`).
"""

from ._interface import ARRIVAL_EXTENSION, Arrival, Consume, TimedBody
from ._pool import AnyioTransport

__all__ = ["ARRIVAL_EXTENSION", "AnyioTransport", "Arrival", "Consume", "TimedBody"]
