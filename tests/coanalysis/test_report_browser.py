"""The report as a user sees it: opened in headless Chromium, every figure loads, the console stays
clean, nothing is fetched from the network, it prints, and a screenshot is saved.

Skipped only where Chromium is absent (`.ci/run` installs Debian's `chromium`). The driver is
`tests/browser.py` (DevTools protocol over `--remote-debugging-pipe`, standard library only).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from coanalysis.report import render_report
from tests.browser import Chromium, find_chromium
from tests.resultfiles import write_results

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
EXAMPLE = Path(__file__).resolve().parents[2] / "reports" / "example" / "report.html"


@pytest.fixture(scope="module")
def browser():
    with Chromium(CHROMIUM) as b:
        yield b


def _assert_clean(page, n_figures: int, titles: list[str]) -> None:
    assert len(page.images) == n_figures and not page.broken_images, page.images
    assert page.errors == [], page.errors
    assert page.external_requests == []
    assert page.overflow_px == 0, f"the page is {page.overflow_px} px wider than the window"
    assert page.section_titles == titles
    assert page.pdf.startswith(b"%PDF") and page.pdf.count(b"/Type /Page") >= 2


def test_report_renders_in_chromium(browser, tmp_path):
    noise = {name: {0.0: 0.9, 0.1: 0.6 + 0.02 * i, 0.5: 0.2} for i, name in
             enumerate(["byol", "co-byol", "co-byol-w1", "simclr", "vicreg"])}
    noise["vicreg"] = None  # a model without noise results
    html = render_report([write_results(tmp_path / "res", noise)], tmp_path / "report.html", baseline="byol")
    shot = tmp_path / "screenshot.png"
    page = browser.inspect(html, screenshot=shot)
    _assert_clean(page, 1, ["Models", "Clean accuracy", "Gaussian noise", "Protocol appendix"])
    assert page.images[0]["width"] > 300 and page.images[0]["alt"].startswith("Figure 1:")
    assert shot.read_bytes().startswith(b"\x89PNG")
    print(f"screenshot: {shot}")


def test_the_browser_check_can_fail(browser, tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><main><section><h2>X</h2></section></main>"
                    "<img alt='gone' src='data:image/png;base64,AAAA'><img alt='missing' src='missing.png'>"
                    "<script>console.error('boom'); undefined_function();</script></body></html>")
    report = browser.inspect(page)
    assert [i["alt"] for i in report.broken_images] == ["gone", "missing"]
    assert report.console_errors == ["boom"]
    assert any("undefined_function" in e for e in report.exceptions)
    assert any("missing.png" in e for e in report.log_errors)


@pytest.mark.skipif(not EXAMPLE.is_file(), reason="no committed example report")
def test_committed_example_report_renders(browser):
    html = EXAMPLE.read_text()
    page = browser.inspect(EXAMPLE)
    _assert_clean(page, html.count("<figure id="), re.findall(r'<section id="[^"]+">\s*<h2>([^<]+)</h2>', html))
    assert page.section_titles[0] == "Models" and page.section_titles[-1] == "Protocol appendix"
    assert len(page.images) >= 1
