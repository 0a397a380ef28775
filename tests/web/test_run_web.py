"""`facestream run --http`: the web view of a real run (processes, MediaPipe, ONNX Runtime, real video)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.conftest import media_path
from tests.support.scenes import write_looped_clip
from tests.web.conftest import decode_jpeg, decode_ws
from tests.web.run_view import LOOPS, get_json, read_events, running_view, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def looped_clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "hamilton-x2.mp4"
    write_looped_clip(path, LOOPS)
    return path


def make_gallery(cli, path: Path) -> Path:
    for name in ("lin-manuel-miranda", "alex-lacamoire"):
        cli("enroll", "--gallery", path, "--name", name, media_path(f"{name}.png"), check=True)
    return path


def test_a_run_shows_named_faces_and_a_stranger_named_on_the_page_is_named_by_the_same_run(
        cli, engines_dir, looped_clip, tmp_path):
    gallery = make_gallery(cli, tmp_path / "people.npz")
    with running_view(looped_clip, gallery, tmp_path, engines_dir) as (proc, port):
        # the picture: frames of the run, with the faces in view and their names
        named = None
        with connect(f"ws://127.0.0.1:{port}/api/cameras/stage/ws", open_timeout=10) as ws:
            for _ in range(300):
                header, jpeg = decode_ws(ws.recv(timeout=30))
                if any(f["identity"] == "lin-manuel-miranda" for f in header["faces"]):
                    named = (header, decode_jpeg(jpeg))
                    break
        assert named is not None, "no frame showed lin-manuel-miranda"
        assert named[1].shape == (360, 640, 3)
        cams = get_json(port, "/api/cameras")
        assert cams[0]["name"] == "stage" and cams[0]["frames"] > 0
        # a stranger of the first pass (an audience member, saved when the cut ends the track)
        stranger = wait_for(lambda: (get_json(port, "/api/unknowns") or [None])[0], 60, "a saved unknown track", proc)
        named_at = time.time()
        answer = get_json(port, f"/api/unknowns/{stranger['name']}/name", "POST", {"name": "stranger-one"})
        assert answer and answer["ok"], answer
        proc.wait(timeout=120)
    assert proc.returncode == 0, proc.stderr.read()
    events = read_events(tmp_path / "events.jsonl")
    named_later = [e for e in events if e["type"] == "identity" and e["identity"] == "stranger-one"]
    assert named_later, "the stranger named on the page was never named"
    # named by the same run, from the moment the page named them: an open track of theirs at once
    # (the gallery reload re-decides open tracks), the second pass of the clip again
    assert all(e["ts"] >= named_at for e in named_later)
    assert any(e["frame"] >= 275 for e in named_later)
    assert any(e["type"] == "identity" and e["identity"] == "lin-manuel-miranda" for e in events)
