"""`run --http --history`: the live view of a running pipeline serves its own history as it is written
(the store is read in the web view's process, never in the publisher that writes it)."""

from __future__ import annotations

import http.client
import json

import pytest

from tests.conftest import media_path
from tests.web.run_view import get_json, running_view, wait_for
from tests.web.test_run_web import looped_clip, make_gallery  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow


def test_a_running_pipeline_serves_its_history(cli, engines_dir, looped_clip, tmp_path):  # noqa: F811
    gallery = make_gallery(cli, tmp_path / "people.npz")
    db = tmp_path / "h.db"
    with running_view(looped_clip, gallery, tmp_path, engines_dir, "--history", str(db)) as (proc, port):
        assert get_json(port, "/api/status")["history"] is True

        def lin_seen():
            people = get_json(port, "/api/history/people") or []
            return next((p for p in people if p.get("key") == "lin-manuel-miranda"), None)

        card = wait_for(lin_seen, 90, "lin-manuel-miranda in the run's history", proc)
        assert card["cameras"] == ["stage"] and card["tracks"] >= 1
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", "/api/history/search", body=media_path("lin-manuel-miranda.png").read_bytes(),
                     headers={"content-type": "image/png", "x-facestream-request": "1", "x-filename": "lin.png"})
        response = conn.getresponse()
        found = json.loads(response.read())
        conn.close()
        assert response.status == 200, found
        assert found["results"] and {hit["identity"] for hit in found["results"]} == {"lin-manuel-miranda"}
        assert proc.poll() is None  # answered while the run was still writing
        proc.wait(timeout=180)
    assert proc.returncode == 0
