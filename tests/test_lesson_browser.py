"""The lesson's report in a real browser: headless Chromium, driven by Playwright.

What a student sees: every figure decodes, the six sections come in the order of the argument, no
console error, nothing wider than a 1280-pixel window. A screenshot of each section goes into the
test's folder for a person to look at. Needs Debian's ``chromium`` (``$RESNETLAB_CHROMIUM``, else
``/usr/bin/chromium``) and the ``playwright`` package (the dev extras); skips with the reason
where either is missing (``.ci/run`` installs the browser).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from lesson_support import build_toy_lesson
from resnetlab.experiments import lesson_sections

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # slow: it builds the toy lesson

WIDTH = 1280
# How Chromium runs on these machines: no sandbox (as root), no GPU, and nothing that reaches
# for the network (a closed network refuses those connections, many at a time).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    """The browser to drive, or a skip with the reason."""
    path = os.environ.get("RESNETLAB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        pytest.skip(f"no Chromium at {path} (apt-get install chromium, or set RESNETLAB_CHROMIUM)")
    return path


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory):
    """The toy lesson's report open in headless Chromium: (page, console errors)."""
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="the playwright package cannot be imported (it is in the dev extras)",
        exc_type=ImportError,  # a broken install (its greenlet) skips too, with the reason
    )
    executable = chromium()
    out, _ = build_toy_lesson(tmp_path_factory)
    errors: list[str] = []
    with tempfile.TemporaryDirectory() as profile, sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,  # a fresh, empty --user-data-dir
            executable_path=executable,
            args=FLAGS,
            headless=True,
            viewport={"width": WIDTH, "height": 900},
        )
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((out / "report.html").resolve().as_uri(), wait_until="load")
        yield page, errors
        context.close()


def test_every_figure_decodes(browser_page):
    page, _ = browser_page
    sizes = page.evaluate(
        "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
    )
    assert len(sizes) >= 10
    for complete, width, height in sizes:
        assert complete and width > 0 and height > 0


def test_the_sections_come_in_order(browser_page):
    page, _ = browser_page
    headings = page.evaluate("Array.from(document.querySelectorAll('h2')).map(h => h.innerText)")
    assert headings[:6] == lesson_sections.HEADINGS
    tops = page.evaluate(
        "Array.from(document.querySelectorAll('section')).map(s => s.getBoundingClientRect().top)"
    )
    assert tops == sorted(tops)  # drawn top to bottom in that order, too


def test_no_console_error(browser_page):
    page, errors = browser_page
    page.reload(wait_until="load")
    assert errors == []


def test_nothing_overflows_the_window(browser_page):
    page, _ = browser_page
    assert page.evaluate("window.innerWidth") == WIDTH
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
    wide = page.evaluate(
        """() => Array.from(document.querySelectorAll('body *'))
            .filter(e => !e.parentElement.closest('.table, pre'))  // those scroll inside
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
            .map(e => e.tagName + ' ' + (e.id || e.className))"""
    )
    assert wide == []


def test_a_screenshot_of_each_section(browser_page, tmp_path):
    page, _ = browser_page
    sections = page.query_selector_all("section")
    assert len(sections) >= 6
    for i, section in enumerate(sections):
        path = tmp_path / f"section-{i + 1}.png"
        section.screenshot(path=str(path))
        assert path.read_bytes().startswith(b"\x89PNG") and path.stat().st_size > 2000
