"""The report in a real browser: headless Chromium (Debian's ``chromium``, driven by
playwright) opens the page with every request routed, so any that is not the page's own
file fails the test; every chart must draw (one SVG per chart) with its axis titles, and
the console must stay clean.

The screenshots are written to the test's temporary directory; with
``ANYIO_LLMREQ_UPDATE_SCREENSHOTS=1`` also to docs/report-run.png and
docs/report-sweep.png (the README shows them).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anyio_llmreq.report import Report, write_report
from tests.test_report import make_result, make_sweep, write_json

CHROMIUM = "/usr/bin/chromium"
DOCS = Path(__file__).resolve().parent.parent / "docs"
MAX_PNG_BYTES = 400_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One browser for the module: a launch is most of the cost."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Report]:
    directory = tmp_path_factory.mktemp("browser")
    a = make_result("baseline", seed=1, fail_every=9, server=True, n=200, rate=25.0)
    b = make_result("candidate", seed=2, ttft_ms=25.0, itl_ms=9.0, server=True, n=200, rate=25.0)
    run = write_report(
        [write_json(directory / "a.json", a), write_json(directory / "b.json", b)],
        directory / "run.html",
    )
    sweeps = [
        make_sweep(directory / "concurrency"),
        make_sweep(
            directory / "grid", concurrency=(2, 8, 32), input_lens=(256, 2048), repeats=1, sla=None
        ),
    ]
    sweep = write_report(sweeps, directory / "sweep.html")
    return {"run": run, "sweep": sweep}


class Opened:
    """A report page, drawn, with what it logged and asked for."""

    def __init__(self, browser: Any, report: Report) -> None:
        self.page_url = Path(report.path).resolve().as_uri()
        self.messages: list[str] = []
        self.requests: list[str] = []
        self.context = browser.new_context(viewport={"width": 1200, "height": 900})
        page = self.page = self.context.new_page()
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.messages.append(f"pageerror: {error}"))
        page.route("**/*", self._route)
        page.goto(self.page_url)

    def wait_drawn(self) -> None:
        """Until every chart has drawn (or said why it could not)."""
        self.page.wait_for_function(
            "() => [...document.querySelectorAll('figure.chart')]"
            ".every(f => f.querySelector('svg.marks') || f.textContent)",
            timeout=30_000,
        )

    def _console(self, message: Any) -> None:
        if message.type in ("error", "warning"):
            self.messages.append(f"{message.type}: {message.text}")

    def _route(self, route: Any) -> None:
        url = route.request.url
        self.requests.append(url)
        if url.startswith("file://"):
            route.continue_()
        else:
            route.abort()

    def texts(self, selector: str) -> list[str]:
        found: list[str] = self.page.eval_on_selector_all(
            selector, "els => els.map(e => e.textContent)"
        )
        return found

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def opened(browser: Any, reports: dict[str, Report]) -> Iterator[dict[str, Opened]]:
    pages = {name: Opened(browser, report) for name, report in reports.items()}
    for page in pages.values():  # both draw meanwhile, in their own processes
        page.wait_drawn()
    yield pages
    for page in pages.values():
        page.close()


@pytest.mark.parametrize("name", ["run", "sweep"])
def test_page_loads_offline_and_clean(opened, name):
    page = opened[name]
    assert page.messages == []
    assert page.requests == [page.page_url]  # the page itself, nothing else


@pytest.mark.parametrize("name", ["run", "sweep"])
def test_every_chart_is_drawn(opened, reports, name):
    page = opened[name]
    ids = [f"chart-{chart.id}" for chart in reports[name].charts]
    drawn = page.page.eval_on_selector_all(
        "figure.chart", "els => els.map(e => [e.id, e.querySelectorAll('svg.marks').length])"
    )
    assert drawn == [[id, 1] for id in ids]
    titles = set(page.texts("svg.marks text"))
    for chart in reports[name].charts:
        assert chart.title in titles


def test_run_axis_titles(opened):
    titles = set(opened["run"].texts("svg.marks .role-axis-title text"))
    expected = {
        "TTFT (ms)", "TPOT (ms)", "ITL (ms)", "E2EL (ms)", "fraction of requests",
        "share of token gaps", "time since the run's first request (s)",
        "mean ITL of the request (ms)", "requests in flight (mean per interval)",
        "output tokens/s", "failed requests (count)", "send lag (ms)", "event-loop lag (ms)",
        "requests/s", "tokens/s", "latency (ms)", "fraction", "requests", "mean (ms)",
    }  # fmt: skip
    assert expected <= titles
    legends = set(opened["run"].texts("svg.marks .role-legend-label text"))
    assert {"baseline", "candidate", "HTTP 503: Service Unavailable"} <= legends


def test_sweep_axis_titles_and_marks(opened):
    page = opened["sweep"]
    titles = set(page.texts("svg.marks .role-axis-title text"))
    expected = {
        "output throughput (tok/s)", "TTFT (ms)", "TPOT (ms)", "E2EL (ms)", "requests/s",
        "max concurrency (requests)", "p99 TTFT (ms)", "fraction of requests",
    }  # fmt: skip
    assert expected <= titles
    marks = page.texts("svg.marks text")
    assert "SLO: p99 TTFT ≤ 250 ms" in marks
    assert "SLA: max_concurrency=8" in marks


def test_screenshots(opened, tmp_path):
    """A grid of charts per page, as a small palette PNG."""
    shots = {
        "run": [
            ["ttft-cdf", "ttft-histogram"],
            ["ttft-over-time", "itl-over-time"],
            ["in-flight-over-time", "tokens-over-time"],
        ],
        "sweep": [["sweep-ttft"], ["sweep-goodput"]],
    }
    for name, grid in shots.items():
        data = _grid_png(opened[name], grid)
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(data) < MAX_PNG_BYTES, len(data)
        (tmp_path / f"report-{name}.png").write_bytes(data)
        if os.environ.get("ANYIO_LLMREQ_UPDATE_SCREENSHOTS") == "1":
            DOCS.mkdir(exist_ok=True)
            (DOCS / f"report-{name}.png").write_bytes(data)


def _grid_png(page: Opened, grid: list[list[str]]) -> bytes:
    from PIL import Image

    # The pictures show the charts, not vega-embed's "..." menu.
    page.page.add_style_tag(content=".vega-embed details { display: none !important; }")
    rows = []
    for ids in grid:
        images = [
            Image.open(io.BytesIO(page.page.locator(f"#chart-{id}").screenshot())) for id in ids
        ]
        rows.append(images)
    gap = 16
    width = max(sum(i.width for i in row) + gap * (len(row) - 1) for row in rows)
    height = sum(max(i.height for i in row) for row in rows) + gap * (len(rows) - 1)
    sheet = Image.new("RGB", (width + 2 * gap, height + 2 * gap), "white")
    y = gap
    for row in rows:
        x = gap
        for image in row:
            sheet.paste(image.convert("RGB"), (x, y))
            x += image.width + gap
        y += max(i.height for i in row) + gap
    out = io.BytesIO()
    palette = sheet.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette.save(out, format="PNG", optimize=True)
    return out.getvalue()
