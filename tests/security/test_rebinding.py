"""DNS rebinding: a name the attacker controls resolves to 127.0.0.1, which makes the attacker's
page same-origin with the view. The view answers only the Host names it serves (issue 20, item 1)."""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import pytest

from tests.web.conftest import make_view
from tests.web.test_browser import _browser

PERSON_EVENT = {"type": "identity", "source": "stage", "track_id": 1, "identity": "alice"}


@pytest.fixture
def view(tmp_path) -> Iterator:
    yield from make_view(tmp_path)


def test_a_rebinding_host_header_is_refused(view):
    view.ctx.feed.add(PERSON_EVENT)
    for path in ("/", "/api/events/recent", "/api/status"):
        conn = http.client.HTTPConnection("127.0.0.1", view.port, timeout=10)
        conn.request("GET", path, headers={"Host": f"attacker.example:{view.port}"})
        response = conn.getresponse()
        body = response.read()
        conn.close()
        assert response.status == 421 and b"alice" not in body, (path, response.status, body)


@pytest.mark.slow
def test_a_browser_sent_to_a_rebound_name_gets_nothing(tmp_path):
    browser = _browser("--host-resolver-rules=MAP attacker.example 127.0.0.1")
    try:
        for view in make_view(tmp_path):
            view.ctx.feed.add(PERSON_EVENT)
            browser.get(f"http://attacker.example:{view.port}/api/events/recent")
            assert "alice" not in browser.page_source and "is not served here" in browser.page_source
            browser.get(f"http://localhost:{view.port}/api/events/recent")  # a name the view serves
            assert "alice" in browser.page_source
    finally:
        browser.quit()
