"""The Vega JavaScript the page embeds, and charts written as SVG or PNG files: both from
``vl-convert-python``, which runs Vega in-process (no browser, no network)."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any, Literal

from ..bench._config import UsageError
from ._charts import Chart, _alt

__all__ = ["export_charts", "javascript_bundle", "vega_lite_version"]

ImageFormat = Literal["svg", "png"]


def _vlc() -> Any:
    try:
        import vl_convert
    except ImportError:
        raise UsageError(
            "missing package",
            where="vl-convert-python",
            why="anyio-llmreq report needs the report extra",
            hint="Install it with: pip install 'anyio-llmreq[report]'",
        ) from None
    return vl_convert


@functools.cache
def vega_lite_version() -> str | None:
    """The Vega-Lite version altair writes specs for (``"6.4"``), when vl-convert has
    it; ``None`` lets vl-convert use its newest."""
    major_minor = ".".join(_alt().SCHEMA_VERSION.lstrip("v").split(".")[:2])
    versions = [v.lstrip("v") for v in _vlc().get_vegalite_versions()]
    return major_minor if major_minor in versions else None


@functools.cache
def javascript_bundle() -> str:
    """Vega, Vega-Lite and vega-embed as one script that sets ``window.vegaEmbed``: the
    page inlines it so it opens with no network.

    Building it takes seconds (~1 MB), so it is kept in the user's cache directory
    (``$ANYIO_LLMREQ_CACHE_DIR``, else ``$XDG_CACHE_HOME/anyio_llmreq``), keyed by the
    vl-convert and Vega-Lite versions; a cache that can't be read or written is skipped.
    """
    vlc = _vlc()
    version = vega_lite_version()
    name = f"vega-bundle-{_vlc_version()}-vl{version or 'default'}.js"
    path = os.path.join(_cache_dir(), name)
    try:
        with open(path, encoding="utf-8") as f:
            cached = f.read()
        if len(cached) > _MIN_BUNDLE:
            return cached
    except OSError:
        pass
    bundle: str = vlc.javascript_bundle(vl_version=version)
    # Inside <script>, only "</script" could end the element early.
    bundle = bundle.replace("</script", "<\\/script")
    _store(path, bundle)
    return bundle


def _vlc_version() -> str:
    found = getattr(_vlc(), "__version__", None)
    if found is None:
        from importlib import metadata

        found = metadata.version("vl-convert-python")
    return str(found)


# A bundle is ~900 kB: anything much smaller is a truncated file, not a cache hit.
_MIN_BUNDLE = 100_000


def _cache_dir() -> str:
    base = os.environ.get("ANYIO_LLMREQ_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "anyio_llmreq",
    )
    return os.path.join(base, "report")


def _store(path: str, text: str) -> None:
    """Write *path* through a temporary file and rename (readers never see half of it);
    give up quietly: the cache only saves time."""
    from ..bench._records import write_atomic

    try:
        write_atomic(path, lambda f: f.write(text))
    except OSError:
        pass


def export_charts(
    charts: Sequence[Chart],
    directory: str | os.PathLike[str],
    fmt: ImageFormat,
    *,
    scale: float = 2.0,
) -> list[str]:
    """Write each chart to ``<directory>/<chart.id>.<fmt>``; return the paths.

    Args:
        scale: PNG pixels per chart pixel (ignored for SVG).

    Raises:
        UsageError: *directory* can't be created or written.
    """
    vlc = _vlc()
    version = vega_lite_version()
    directory = os.fspath(directory)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            "can't create directory", where=directory, why=exc.strerror or str(exc)
        ) from None
    paths = []
    for chart in charts:
        path = os.path.join(directory, f"{chart.id}.{fmt}")
        if fmt == "svg":
            data: bytes = vlc.vegalite_to_svg(chart.spec, vl_version=version).encode("utf-8")
        else:
            data = vlc.vegalite_to_png(chart.spec, vl_version=version, scale=scale)
        try:
            with open(path, "wb") as f:
                f.write(data)
        except OSError as exc:
            raise UsageError("can't write file", where=path, why=exc.strerror or str(exc)) from None
        paths.append(path)
    return paths
