"""End-to-end test of the demo in Debian's headless Chromium, driven by Playwright.

The app runs in this process on a free localhost port with the tiny random-weight
models. Every request to a host other than 127.0.0.1 is blocked and recorded.
"""

import socket
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path(__file__).parents[2] / "docs" / "demo-screenshot.png"
RESULT_TIMEOUT_MS = 240_000

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(),
    reason=f"{CHROMIUM} not found: install Debian's chromium package (apt-get install chromium)",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def demo_url(make_runners):
    from sam3_radio.demo.command import create_app, launch_app
    from sam3_radio.demo.config import compose_config, settings_from_config
    from sam3_radio.demo.video import VideoRunner

    settings = settings_from_config(
        compose_config(
            ["backbones=[{backbone:tiny-pe},{backbone:tiny-radio}]", "weights=random", "device=cpu"]
        )
    )
    runners = make_runners()

    def unused_model():
        raise AssertionError("the browser test does not use the video tab")

    video_runners = [VideoRunner(runner.label, unused_model) for runner in runners]
    app = create_app(settings, runners, video_runners)
    port = free_port()
    launch_app(app, settings, port=port, block=False)
    yield f"http://127.0.0.1:{port}/"
    app.close()


@pytest.fixture(scope="module")
def browser_context():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tempfile.mkdtemp(prefix="chromium-profile-"),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1400, "height": 1000},
        )
        context.blocked_urls = []

        def keep_local(route):
            if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
                route.continue_()
            else:
                context.blocked_urls.append(route.request.url)
                route.abort()

        context.route("**/*", keep_local)
        yield context
        context.close()


def draw_rectangle(page, left: float, top: float, right: float, bottom: float) -> None:
    page.mouse.move(left, top)
    page.mouse.down()
    for x, y in [(right, top), (right, bottom), (left, bottom), (left, top)]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def test_browser_compares_both_backbones(demo_url, browser_context, shared_data):
    page = browser_context.new_page()
    page.goto(demo_url)
    page.wait_for_selector("#image-editor input[type=file]", state="attached")
    assert "RANDOM WEIGHTS" in page.inner_text("#random-weights-banner")

    # A request without an image is rejected in the UI and the server stays up.
    page.click("#run-image")
    page.get_by_text("no image: upload an image or pick a sample first").wait_for()

    truck = shared_data / "images" / "truck.jpg"
    page.set_input_files("#image-editor input[type=file]", str(truck))
    page.wait_for_selector("#image-editor canvas")
    page.wait_for_timeout(1500)
    canvas = page.locator("#image-editor canvas").first.bounding_box()
    center_x = canvas["x"] + canvas["width"] / 2
    center_y = canvas["y"] + canvas["height"] / 2
    draw_rectangle(page, center_x - 120, center_y - 70, center_x + 120, center_y + 70)
    page.fill("#text-prompt textarea", "truck")
    threshold = page.locator("#threshold input[type=number]")
    threshold.fill("0.2")
    threshold.press("Enter")
    page.click("#run-image")

    for index in (0, 1):
        page.wait_for_selector(f"#overlay-{index} img", timeout=RESULT_TIMEOUT_MS)
    page.wait_for_selector("#agreement h3", timeout=RESULT_TIMEOUT_MS)
    for index in (0, 1):
        assert "encoder" in page.inner_text(f"#timing-{index}")
        source = page.get_attribute(f"#overlay-{index} img", "src")
        assert source and "127.0.0.1" in source
    assert "Agreement:" in page.inner_text("#agreement")
    history = page.inner_text("#history")
    assert "truck" in history
    page.wait_for_timeout(1000)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # A second browser page is a second session: it has no results and no history.
    other = browser_context.new_page()
    other.goto(demo_url)
    other.wait_for_selector("#history")
    assert other.locator("#overlay-0 img").count() == 0
    assert "truck" not in other.inner_text("#history")

    assert browser_context.blocked_urls == []
