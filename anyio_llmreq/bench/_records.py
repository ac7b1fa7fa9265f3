"""Records stage: where measurements are written.

``RecordSink`` takes each request as it finishes (scrubs a server-echoed secret from
its error, writes its ``--output-jsonl`` line, advances the progress bar); it is closed
however the run ends, so an interrupted run keeps every line it wrote.
``write_result`` writes the result JSON atomically (temp file + ``os.replace``), with
the mode the umask gives, as the JSONL file has.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import IO, Any

from .._json import record_dumps
from ._config import BenchConfig
from ._execute import Execution, RequestRecord
from ._plan import WorkloadPlan
from ._redact import Scrubber

__all__ = [
    "JsonlWriter",
    "ProgressBar",
    "RecordSink",
    "result_filename",
    "save_result",
    "write_atomic",
    "write_result",
]


class JsonlWriter:
    """``--output-jsonl``: one line per finished request, flushed as it finishes."""

    def __init__(self, path: str | None, scrub: Scrubber) -> None:
        self._file: IO[bytes] | None = None
        self._scrub = scrub
        if path:
            directory = os.path.dirname(os.path.abspath(path))
            os.makedirs(directory, exist_ok=True)
            self._file = open(path, "wb")

    def write(self, record: RequestRecord) -> None:
        if self._file is not None:
            if self._scrub:
                line = record_dumps(self._scrub.data(record.to_json()))
            else:
                line = record.to_jsonl()
            self._file.write(line + b"\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class ProgressBar:
    """The tqdm bar: requests done, failures and output tokens/s in the postfix."""

    def __init__(self, total: int, disable: bool) -> None:
        self._bar: Any = None
        if not disable:
            import importlib

            tqdm = importlib.import_module("tqdm").tqdm
            self._bar = tqdm(total=total, unit="req", dynamic_ncols=True)
        self._failed = 0
        self._tokens = 0
        self._t0 = time.perf_counter()
        self._last = 0.0

    def update(self, record: RequestRecord) -> None:
        out = record.output
        if not out.success:
            self._failed += 1
        else:
            self._tokens += out.output_tokens or (len(out.itl) + 1)
        if self._bar is None:
            return
        self._bar.update(1)
        now = time.perf_counter()
        if now - self._last >= 0.5:
            self._last = now
            rate = self._tokens / max(now - self._t0, 1e-9)
            self._bar.set_postfix(failed=self._failed, tok_s=f"{rate:.0f}", refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            rate = self._tokens / max(time.perf_counter() - self._t0, 1e-9)
            self._bar.set_postfix(failed=self._failed, tok_s=f"{rate:.0f}", refresh=False)
            self._bar.close()


class RecordSink:
    """Each finished request, as it finishes: scrubbed, written, counted.

    The JSONL file opens with the sink (a bad path fails before any request); the
    progress bar starts with ``start_progress``, once the warmup is over.
    """

    def __init__(self, config: BenchConfig, scrub: Scrubber, total: int) -> None:
        self._scrub = scrub
        self._jsonl = JsonlWriter(config.output_jsonl, scrub)
        self._total = total
        self._quiet = config.disable_tqdm or config.quiet
        self._progress: ProgressBar | None = None

    def start_progress(self) -> None:
        self._progress = ProgressBar(self._total, self._quiet)

    def __call__(self, record: RequestRecord) -> None:
        if self._scrub:
            # Once, here, so the report, the files and the records all hold the clean
            # text. The generated text is left as it came (output tokens may be counted
            # from it); the files get it scrubbed.
            record.output.error = self._scrub.text(record.output.error)
        self._jsonl.write(record)
        if self._progress is not None:
            self._progress.update(record)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        self._jsonl.close()

    def __enter__(self) -> RecordSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def result_filename(
    *,
    backend: str,
    label: str | None,
    request_rate: float,
    max_concurrency: int | None,
    model_id: str,
    date: str,
    ramp_up: tuple[str, float, float] | None = None,
) -> str:
    """vLLM's default result file name."""
    prefix = label or backend
    concurrency = f"-concurrency{max_concurrency}" if max_concurrency is not None else ""
    base_model = model_id.split("/")[-1]
    if ramp_up is not None:
        strategy, start, end = ramp_up
        return (
            f"{prefix}-ramp-up-{strategy}-{start}qps-{end}qps{concurrency}-{base_model}-{date}.json"
        )
    return f"{prefix}-{request_rate}qps{concurrency}-{base_model}-{date}.json"


def write_result(
    config: BenchConfig, plan: WorkloadPlan, execution: Execution, result: Mapping[str, Any]
) -> str | None:
    """Save *result* where ``--save-result``/``--append-result`` say; return the path,
    or ``None`` when neither was given."""
    if not (config.save_result or config.append_result):
        return None
    name = config.result_filename or result_filename(
        backend=config.backend,
        label=config.label,
        request_rate=plan.request_rate,
        max_concurrency=config.max_concurrency,
        model_id=plan.target.model_id,
        date=execution.date,
        ramp_up=plan.ramp_up,
    )
    path = os.path.join(config.result_dir, name) if config.result_dir else name
    save_result(path, result, append=config.append_result)
    return path


def save_result(path: str, result: Mapping[str, Any], *, append: bool = False) -> None:
    """Write *result* as JSON to *path* atomically (temp file + ``os.replace``): a run
    that fails while writing leaves the previous file, or none, never half of one.

    With *append*, the file's current content is kept and the JSON is added after a
    newline when the file is non-empty, as vLLM's ``--append-result`` does.
    """
    previous = ""
    if append and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            previous = f.read()

    def write(f: IO[str]) -> None:
        if previous:
            f.write(previous)
            f.write("\n")
        json.dump(result, f, default=_json_default)

    write_atomic(path, write)


def write_atomic(path: str, write: Callable[[IO[str]], object]) -> None:
    """Write *path* with *write* through a new temporary file beside it and a rename:
    readers and a failure see the previous file, or none, never half of one. An
    existing file keeps its mode, as writing it in place would; a new one gets what the
    umask gives. The directory is made if needed."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = _create_temp(directory)
    try:
        if os.path.exists(path):
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


_TEMP_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def _create_temp(directory: str) -> tuple[int, str]:
    """A new temp file in *directory*, created with mode 0o666 for the kernel to apply
    the umask to, as for any file the user creates (``mkstemp`` makes it 0o600). No
    umask is read: ``os.umask`` can only read it by setting it, which races with other
    threads creating files. ``O_EXCL`` with a random name: never someone else's file."""
    for _ in range(100):
        tmp = os.path.join(directory, f".tmp-{secrets.token_hex(8)}")
        try:
            return os.open(tmp, _TEMP_FLAGS, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name in {directory}")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
