"""The demo in a real headless Chromium: pick an example, Pixelate, Enhance, take a screenshot.

Uses Debian's /usr/bin/chromium through Playwright's Python package (no browser download). The
screenshot lands in pytest's tmp dir and, if SR_SCREENSHOT_DIR is set, there too.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("SR_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync",
]

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (install Debian's chromium package)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (test-only) is not installed")

from demo_server import start_server  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("browser-demo"))
    yield server
    server.stop()


@pytest.fixture
def page(server):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


def _save_screenshot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    extra = os.environ.get("SR_SCREENSHOT_DIR")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / name)
    return path


def test_pixelate_and_enhance_an_example(server, page, tmp_path):
    expect = sync_api.expect
    page.goto(server.url)
    expect(page.get_by_role("heading", name="Pixelate, then enhance")).to_be_visible()
    page.get_by_text("About the model and the API").click()
    expect(page.get_by_text("Serving:")).to_be_visible()

    page.locator("button.gallery-item").first.click()  # astronaut.jpg (examples are sorted by name)
    expect(page.locator("#original img").first).to_be_visible()

    page.get_by_role("button", name="Pixelate", exact=True).click()
    expect(page.get_by_text("Compared with the original")).to_be_visible(timeout=120_000)
    expect(page.get_by_text("Now press Enhance")).to_be_visible()

    page.get_by_role("button", name="Enhance", exact=True).click()
    download = page.get_by_role("button", name="Download result (PNG)")
    expect(download).to_be_visible(timeout=180_000)
    expect(page.get_by_role("cell", name="Enhanced", exact=True)).to_be_visible()
    expect(page.locator("#enhanced img[src*='astronaut_enhanced.png']")).to_be_visible()
    expect(page.locator("#slider img")).to_have_count(2)
    page.wait_for_timeout(1000)  # let the slider's images finish painting
    shot = _save_screenshot(page, tmp_path, "demo_result.png")
    assert shot.stat().st_size > 10_000

    # Ticking the self-ensemble box runs the 8-view mean and says so beside the scores.
    page.get_by_label("Self-ensemble").check()
    page.get_by_role("button", name="Enhance", exact=True).click()
    expect(page.get_by_role("cell", name="Enhanced (self-ensemble ×8)", exact=True)).to_be_visible(timeout=180_000)
    assert server.alive()


def test_a_broken_upload_shows_a_clear_error(server, page, tmp_path):
    expect = sync_api.expect
    broken = tmp_path / "holiday.png"
    broken.write_bytes(b"definitely not a PNG")
    page.goto(server.url)
    page.locator("#original input[type=file]").set_input_files(str(broken))
    # Named as soon as it is uploaded, not only at the first button press.
    expect(page.get_by_text("holiday.png: not an image file")).to_be_visible(timeout=60_000)
    page.wait_for_timeout(500)  # the toast slides in
    _save_screenshot(page, tmp_path, "demo_error.png")

    # The page and the server keep working: the RGBA example still enhances.
    page.locator("button.gallery-item").nth(2).click()  # chelsea_rgba.png
    expect(page.locator("#original img").first).to_be_visible()
    page.get_by_role("button", name="Enhance", exact=True).click()
    expect(page.get_by_text("No original to compare with")).to_be_visible(timeout=120_000)
    expect(page.locator("#enhanced img[src*='chelsea_rgba_enhanced.png']")).to_be_visible()
    _save_screenshot(page, tmp_path, "demo_rgba.png")
