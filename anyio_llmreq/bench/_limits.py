"""The open-file limit: every concurrent stream holds a socket, so a run of 10,000
streams needs 10,000 file descriptors in the process that sends them.

``raise_fd_limit`` lifts the soft ``RLIMIT_NOFILE`` to the hard limit, as servers and
load generators do at start (the soft limit is often 1024 while the hard one is far
higher); ``check_fd_budget`` turns a run that would still need more into a clear error
before any request, instead of a burst of "Too many open files" failures mid-run.
"""

from __future__ import annotations

import math
import sys

__all__ = ["FD_RESERVE", "check_fd_budget", "fd_limit", "peak_streams", "raise_fd_limit"]

#: Descriptors a run needs besides its streams: stdio, the JSONL and result files, the
#: event loop's own (epoll, self-pipe), the tokenizer's files, worker pipes.
FD_RESERVE = 64


def fd_limit() -> int | None:
    """The soft ``RLIMIT_NOFILE``; ``None`` where there is none (Windows) or unlimited."""
    if sys.platform == "win32":  # pragma: no cover
        return None
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def raise_fd_limit() -> int | None:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; return the soft limit now.

    Worker processes inherit it. Never fails: where it can't be raised (a hard limit of
    "unlimited" the kernel refuses as a soft one, as on macOS), the soft limit stays.
    """
    if sys.platform == "win32":  # pragma: no cover
        return None
    import resource

    infinity = resource.RLIM_INFINITY
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == infinity or soft == hard:
        return fd_limit()
    for target in (hard, 1 << 20, 10240) if hard == infinity else (hard,):
        if target != infinity and target <= soft:
            continue
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            break
        except (ValueError, OSError):
            continue
    return fd_limit()


def peak_streams(
    requests: int, max_concurrency: int | None, request_rate: float, burst: bool
) -> int | None:
    """The most requests in flight at once that the flags guarantee: ``--max-concurrency``
    (capped by the request count), or every request of a ``--request-rate inf`` burst;
    ``None`` for a finite rate without a cap (it depends on the server's latency)."""
    if max_concurrency:
        return min(max_concurrency, requests)
    if burst and math.isinf(request_rate):
        return requests
    return None


def check_fd_budget(
    streams: int | None, workers: int = 1, *, per_stream: int = 1, limit: int | None = None
) -> None:
    """Raise ``UsageError`` when *streams* concurrent requests, split over *workers*
    processes, need more descriptors than the open-file limit (*limit*: the current
    soft limit) allows. *per_stream* is 2 where the process also serves them (the
    embedded mock server)."""
    if streams is None:
        return
    limit = fd_limit() if limit is None else limit
    if limit is None:
        return
    per_process = math.ceil(streams / max(workers, 1)) * per_stream
    needed = per_process + FD_RESERVE
    if needed <= limit:
        return
    from ._config import UsageError

    fits = max((limit - FD_RESERVE) // per_stream, 1) * max(workers, 1)
    raise UsageError(
        f"{streams} concurrent requests need about {needed} open files per process",
        where="--max-concurrency / --request-rate inf / --num-prompts",
        why=f"the open-file limit (RLIMIT_NOFILE, 'ulimit -n') is {limit}, and the bench "
        "can raise it only up to the hard limit ('ulimit -Hn')",
        hint=f"Raise it before the run (e.g. 'ulimit -n {needed}' in the shell, 'ulimit "
        f"-Hn' first as root if the hard limit is lower; LimitNOFILE= for a systemd "
        f"service), or run at most {fits} at once (--max-concurrency {fits}).",
    )
