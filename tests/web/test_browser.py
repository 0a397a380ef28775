"""The web view in a real headless browser (Debian's chromium and chromedriver, driven by Selenium).

The page of a running pipeline on the Hamilton clip shows a picture with lin-manuel-miranda named,
its timeline gains identity events, and a stranger named from the page is named by the run's second
pass of the clip. A screenshot is saved (FACESTREAM_TEST_ARTIFACTS, else the test's tmp folder).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.web.run_view import LOOPS, read_events, running_view, wait_for
from tests.web.test_run_web import looped_clip, make_gallery  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _browser(*flags: str):
    webdriver = pytest.importorskip("selenium.webdriver")
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # the closed network: no background connections, no sandbox as root, a fresh profile
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1400,1000", *flags):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def test_the_page_of_a_running_pipeline(cli, engines_dir, looped_clip, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By

    gallery = make_gallery(cli, tmp_path / "people.npz")
    artifacts = Path(os.environ.get("FACESTREAM_TEST_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    browser = _browser()
    try:
        with running_view(looped_clip, gallery, tmp_path, engines_dir) as (proc, port):
            browser.get(f"http://127.0.0.1:{port}/")

            def in_view() -> list[str]:  # replaced with every picture: read in one script, not element by element
                return browser.execute_script(
                    "return [...document.querySelectorAll('#camera-stage .inview li')].map(li => li.textContent)")

            wait_for(lambda: any("lin-manuel-miranda" in text for text in in_view()), 60,
                     "lin-manuel-miranda in the page's picture", proc)
            browser.save_screenshot(str(artifacts / "web-view-named.png"))
            assert browser.execute_script("return window.facestream.shown.stage") > 0
            wait_for(lambda: "lin-manuel-miranda" in browser.find_element(By.ID, "timeline").text, 30,
                     "an identity event on the timeline", proc)
            # name a stranger from the page: type a name into the first one and press its button
            field = wait_for(lambda: (browser.find_elements(By.CSS_SELECTOR, "#strangers input") or [None])[0],
                             60, "a stranger listed on the page", proc)
            field.send_keys("stranger-two")
            browser.find_element(By.CSS_SELECTOR, "#strangers button").click()
            wait_for(lambda: "stranger-two" in browser.find_element(By.ID, "people").text, 20,
                     "the named stranger in the page's gallery", proc)
            wait_for(lambda: "stranger-two" in browser.find_element(By.ID, "timeline").text, 30,
                     "the run naming the stranger", proc)
            browser.save_screenshot(str(artifacts / "web-view-stranger-named.png"))
            latencies = browser.execute_script("return window.facestream.latencies.stage")
            proc.wait(timeout=120)
    finally:
        browser.quit()
    assert proc.returncode == 0
    assert latencies and sorted(latencies)[len(latencies) // 2] < 1.0  # the picture is live, not queued
    events = read_events(tmp_path / "events.jsonl")
    assert any(e["type"] == "identity" and e["identity"] == "stranger-two" and e["frame"] >= 275 for e in events)
    assert LOOPS == 2
