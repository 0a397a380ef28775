"""The History page in headless chromium over a store filled by a real run of the Hamilton clip: a
person's card, the day's timeline, the who filter, a search by an uploaded photo (Lin-Manuel Miranda's
photo finds his tracks), and a stranger named from the page with a name that is HTML (shown as text).
A screenshot is saved (FACESTREAM_TEST_ARTIFACTS, else the test's tmp folder): docs/images/history-page.png
is one of these."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stream.history.store import HistoryStore
from tests.conftest import media_path
from tests.web.history_store import ALEX, CLIP, LIN, copy_store, recorded, serve_history  # noqa: F401
from tests.web.run_view import wait_for
from tests.web.test_browser import _browser

pytestmark = pytest.mark.slow

XSS = "<img src=x onerror=window.pwned=1>"


def test_the_history_page(recorded, default_model, tmp_path) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    artifacts = Path(os.environ.get("FACESTREAM_TEST_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    db = copy_store(recorded.db, tmp_path / "h.db")
    lin = {r.id for r in recorded.of(LIN)}
    browser = _browser()
    try:
        for web, _ in serve_history(db, default_model.name):
            browser.get(web.url)  # a view of the history alone opens on the History tab

            def script(js: str):
                return browser.execute_script(js)

            card = wait_for(lambda: next(iter(browser.find_elements(By.CSS_SELECTOR, f'.hperson[data-key="{LIN}"]')),
                                         None), 30, "Lin-Manuel Miranda's card")
            assert f"{len(lin)} tracks" in card.text and CLIP in card.text
            assert "first 5/1/2026" in card.text and "last 5/1/2026" in card.text
            assert script(f'return document.querySelector(\'.hperson[data-key="{LIN}"] img\').naturalWidth') > 0
            assert browser.find_element(By.ID, "h-day").get_attribute("value") == "2026-05-01"
            # the timeline: one lane for the clip, one interval per track, Lin's coloured as his card's swatch
            spans = script("return [...document.querySelectorAll('#h-timeline .lane[data-camera] .span')]"
                           ".map(s => [Number(s.dataset.track), s.dataset.who, s.style.background])")
            assert {s[0] for s in spans} == {r.id for r in recorded.rows}
            assert {s[0] for s in spans if s[1] == LIN} == lin and len({s[2] for s in spans if s[1] == LIN}) == 1
            # the who filter narrows the timeline and the cards to one person
            Select(browser.find_element(By.ID, "h-who")).select_by_value(LIN)
            assert {s for s in script("return [...document.querySelectorAll('#h-timeline .span')]"
                                      ".map(s => s.dataset.who)")} == {LIN}
            assert script("return [...document.querySelectorAll('.hperson')].map(c => c.dataset.key)") == [LIN]
            Select(browser.find_element(By.ID, "h-who")).select_by_value("")
            # search by an uploaded photo
            browser.find_element(By.ID, "h-photo").send_keys(str(media_path("lin-manuel-miranda.png")))
            browser.find_element(By.CSS_SELECTOR, "#h-search button").click()
            wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".hresult"), 60, "search results")
            results = script("return [...document.querySelectorAll('.hresult')]"
                             ".map(r => [Number(r.dataset.track), r.dataset.who, r.textContent])")
            assert results and {r[1] for r in results} == {LIN} and {r[0] for r in results} <= lin
            assert all(f"{CLIP}.mp4 at" in r[2] for r in results)  # where to look: the file and its pts
            assert "within 0.39 of lin-manuel-miranda.png" in browser.find_element(By.ID, "h-search-state").text
            browser.save_screenshot(str(artifacts / "history-page.png"))
            # a stranger named from the page, with a name that is HTML: shown as text, never run
            field = next(iter(browser.find_elements(By.CSS_SELECTOR, ".hperson.stranger input")), None)
            assert (field is not None) == any(r.stranger_id and not r.identity for r in recorded.rows)
            if field is not None:  # the run remembered strangers (history.strangers, on for the default model)
                field.send_keys(XSS)
                browser.find_element(By.CSS_SELECTOR, ".hperson.stranger button").click()
                named = wait_for(lambda: [c for c in browser.find_elements(By.CSS_SELECTOR, ".hperson.person")
                                          if c.get_attribute("data-key") == XSS], 30, "the named stranger's card")
                assert XSS in named[0].find_element(By.CSS_SELECTOR, ".who").text
                assert script("return window.pwned === undefined && !document.querySelector('.hperson img[src=x]')")
            # forget from the page: Alex's card's button, confirmed, and nothing of him left in the store
            browser.find_element(By.CSS_SELECTOR, f'.hperson[data-key="{ALEX}"] button[data-forget]').click()
            browser.switch_to.alert.accept()
            wait_for(lambda: not browser.find_elements(By.CSS_SELECTOR, f'.hperson[data-key="{ALEX}"]'), 30,
                     "Alex Lacamoire's card to go")
            with HistoryStore.open(db, create=False) as store:
                assert store.tracks(identity=ALEX) == [] and store.tracks(identity=LIN)
    finally:
        browser.quit()
