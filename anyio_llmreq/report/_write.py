"""``write_report``: inputs -> charts -> the page (and image files), in one call."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import attrs

from ..bench._config import UsageError
from ._charts import Chart, build_charts
from ._export import ImageFormat, export_charts, javascript_bundle
from ._html import render_html
from ._load import InputItem, ReportData, load_inputs

__all__ = ["Report", "write_report"]


@attrs.frozen
class Report:
    """What ``write_report`` wrote: the page, what it shows, and the image files."""

    path: str
    data: ReportData
    charts: tuple[Chart, ...]
    images: tuple[str, ...] = ()


def write_report(
    paths_or_results: Iterable[InputItem] | InputItem,
    out_path: str | os.PathLike[str] = "report.html",
    *,
    title: str | None = None,
    svg_dir: str | os.PathLike[str] | None = None,
    png_dir: str | os.PathLike[str] | None = None,
) -> Report:
    """Write the HTML report of *paths_or_results* to *out_path*.

    Args:
        paths_or_results: result files (``--save-result``, ``--append-result``, vLLM's),
            ``--output-jsonl`` logs, ``sweep.json`` files (or their directories), result
            dicts or ``BenchmarkResult`` objects; several are overlaid. One alone needs no
            list.
        title: the page title (default: names the runs and sweeps).
        svg_dir: also write each chart as ``<svg_dir>/<chart id>.svg``.
        png_dir: also write each chart as ``<png_dir>/<chart id>.png``.

    Raises:
        UsageError: an input that can't be read (the message names it), a missing
            ``report`` extra, or an output that can't be written.
    """
    if isinstance(paths_or_results, (str, os.PathLike, Mapping)) or hasattr(
        paths_or_results, "result"
    ):
        paths_or_results = [paths_or_results]  # one input, not an iterable of them
    data = load_inputs(paths_or_results)
    charts = tuple(build_charts(data))
    page = render_html(data, charts, bundle=javascript_bundle(), title=title)
    path = os.fspath(out_path)
    _write_text(path, page)
    images: list[str] = []
    exports: list[tuple[str | os.PathLike[str], ImageFormat]] = []
    if svg_dir is not None:
        exports.append((svg_dir, "svg"))
    if png_dir is not None:
        exports.append((png_dir, "png"))
    for directory, fmt in exports:
        images += export_charts(charts, directory, fmt)
    return Report(path=path, data=data, charts=charts, images=tuple(images))


def _write_text(path: str, text: str) -> None:
    """Write atomically (a failed write leaves no half page), a failure as a usage error."""
    from ..bench._records import write_atomic

    try:
        write_atomic(path, lambda f: f.write(text))
    except OSError as exc:
        raise UsageError(
            "can't write the report", where=path, why=exc.strerror or str(exc)
        ) from None
