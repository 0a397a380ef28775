"""The gallery changing under a running pipeline: locked edits, removal, reload into the stages."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
import pytest

from stream.errors import FacestreamError
from stream.faces import Faces
from stream.models.manifest import ModelManifest
from stream.recognize.gallery import Gallery, edit_gallery, file_id, lock_path
from stream.recognize.reload import GalleryWatcher
from stream.recognize.stage import FrameResult, RecognitionStage
from stream.recognize.voting import VotingConfig


def _face(tid: int, embedding: np.ndarray) -> Faces:
    box = np.array([[10, 10, 110, 110]], np.float32)
    kps = np.array([[[40, 40], [80, 40], [60, 60], [60, 85], [20, 50], [100, 50]]])
    return Faces(box, [0.9], kps, track_id=[tid], embeddings=embedding[None])


def _add_in_child(path: str, manifest_json: str, name: str, vector: float) -> None:
    manifest = ModelManifest.model_validate_json(manifest_json)
    with edit_gallery(Path(path), manifest) as gallery:
        gallery.add(name, np.full((1, manifest.embedding_size), vector, np.float32))


@pytest.mark.slow
def test_concurrent_edits_in_processes_lose_nothing(default_model, tmp_path):
    """Many processes add at once (the enroll race, without the model): every name lands."""
    manifest = default_model.manifest
    path = tmp_path / "g.npz"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_add_in_child, args=(str(path), manifest.model_dump_json(), f"p{i}", i / 100))
             for i in range(12)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert Gallery.load(path, manifest).identities() == sorted(f"p{i}" for i in range(12))
    assert lock_path(path).name == "g.npz.lock"
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]  # no temp file left behind


def test_a_failed_edit_saves_nothing_and_remove(default_model, tmp_path):
    manifest = default_model.manifest
    path = tmp_path / "g.npz"
    with edit_gallery(path, manifest) as g:
        g.add("ann", np.full((2, 128), 0.1, np.float32))
        g.add("bob", np.full((1, 128), 0.2, np.float32))
    before = file_id(path)
    with pytest.raises(FacestreamError), edit_gallery(path, manifest) as g:
        g.add("carl", np.full((1, 128), 0.3, np.float32))
        raise FacestreamError("boom")
    assert file_id(path) == before
    with edit_gallery(path, None, create=False) as g:
        assert g.remove("ann") == 2 and g.remove("nobody") == 0
    loaded = Gallery.load(path, manifest)
    assert loaded.names == ["bob"] and loaded.embeddings.shape == (1, 128) and len(loaded.sources) == 1


def test_watcher_sees_saves_and_refuses_another_model(default_model, tmp_path, caplog):
    manifest = default_model.manifest
    path = tmp_path / "g.npz"
    with edit_gallery(path, manifest) as g:
        g.add("ann", np.full((1, 128), 0.1, np.float32))
    watcher = GalleryWatcher(path, manifest, interval_s=0.0)
    assert watcher.poll() is None  # unchanged since start
    with edit_gallery(path, manifest) as g:
        g.add("bob", np.full((1, 128), 0.2, np.float32))
    assert watcher.poll().identities() == ["ann", "bob"]
    assert watcher.poll() is None
    other = Gallery("other", "other-space", "euclidean", 64)
    other.add("x", np.zeros((1, 64), np.float32))
    other.save(path)
    with caplog.at_level(logging.ERROR):
        assert watcher.poll() is None
        assert watcher.poll() is None
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "other" in errors[0].getMessage()  # one line, not one per poll
    os.unlink(path)
    assert watcher.poll() is None


def test_reload_re_decides_open_tracks(default_model):
    """A stranger becomes named after their enroll; a removed name is withdrawn; others keep theirs."""
    manifest = default_model.manifest
    rng = np.random.default_rng(1)
    ann, bob, carl = rng.normal(0, 0.1, (3, 128)).astype(np.float32)
    gallery = Gallery.new(manifest)
    gallery.add("ann", ann[None])
    gallery.add("carl", carl[None])
    stage = RecognitionStage(manifest, gallery, VotingConfig(min_votes=3))
    people = {1: ann, 2: bob, 3: carl}
    events = []

    def frame(i: int) -> None:
        for tid, emb in people.items():
            events.extend(stage.process(FrameResult("cam", i, i / 30, 0.0, _face(tid, emb + 0.01),
                                                    np.array([True]))).events)

    for i in range(8):
        frame(i)
    assert {s.public_id: s.votes.decided for s in stage.tracks.values()} == {1: "ann", 2: None, 3: "carl"}
    stage.take_status_updates()
    new = Gallery.new(manifest)
    new.add("ann", ann[None])
    new.add("bob", bob[None])  # enrolled while running; carl removed
    changed = stage.set_gallery(new, "cam")
    assert [(e.type, e.track_id, e.identity, e.reason) for e in changed] == [("identity", 3, None, "gallery_changed")]
    assert stage.tracks[1].votes.decided == "ann" and stage.tracks[1].appearance.count == 8  # kept
    # bob (a confident stranger) and carl go back to the full embedding rate
    assert sorted(stage.take_status_updates()) == [(2, False), (3, False)]
    events.clear()
    for i in range(8, 12):
        frame(i)
    named = [(e.track_id, e.identity) for e in events if e.type == "identity"]
    assert named == [(2, "bob")]
    other = Gallery("other", "other-space", "euclidean", 64)
    with pytest.raises(FacestreamError):
        stage.set_gallery(other, "cam")
    assert stage.gallery is new


def _save_list_header(path: Path) -> None:
    """A gallery file whose header JSON is a list: it once crashed the publisher at every restart."""
    import json

    tmp = path.with_name(".broken.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, header=np.array(json.dumps([1, 2])), embeddings=np.zeros((1, 128), np.float32),
                 names=np.array(["x"]), sources=np.array([""]))
    os.replace(tmp, path)


def test_watcher_keeps_the_last_good_gallery_for_a_file_not_as_expected(default_model, tmp_path, caplog):
    manifest = default_model.manifest
    path = tmp_path / "g.npz"
    with edit_gallery(path, manifest) as g:
        g.add("ann", np.full((1, 128), 0.1, np.float32))
    watcher = GalleryWatcher(path, manifest, interval_s=0.0)
    _save_list_header(path)
    with caplog.at_level(logging.WARNING):
        assert watcher.poll() is None
    assert any("kept the last good gallery" in r.getMessage() for r in caplog.records), caplog.text
    good = Gallery.new(manifest)
    good.add("bob", np.full((1, 128), 0.2, np.float32))
    good.save(path)
    assert watcher.poll().identities() == ["bob"]  # a good file after a bad one applies as usual


@pytest.mark.slow
def test_a_broken_gallery_during_a_run_keeps_the_run_going(cli, engines_dir, tmp_path):
    """The run started with a good gallery; a file that is not one lands mid-run: one line, the run goes on."""
    import json
    import subprocess
    import sys
    import time

    from tests.conftest import REPO, media_path
    from tests.support.events import read_events

    gallery, events_out, summary = tmp_path / "g.npz", tmp_path / "events.jsonl", tmp_path / "summary.json"
    cli("enroll", "--gallery", gallery, "--name", "lin-manuel-miranda", media_path("lin-manuel-miranda.png"),
        check=True)
    env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(engines_dir), "PYTHONUNBUFFERED": "1"}
    run = subprocess.Popen([sys.executable, "-m", "stream", "run", "--source", media_path("short_hamilton_clip.mp4"),
                            "--realtime", "--gallery", gallery, "--events-out", events_out, "--summary-json", summary,
                            "--no-progress"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        deadline = time.monotonic() + 60
        while not (events_out.exists() and read_events(events_out)):
            assert run.poll() is None, run.communicate()[1]
            assert time.monotonic() < deadline, "no events from the run"
            time.sleep(0.1)
        _save_list_header(gallery)
        _, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 0, err
    assert "Traceback" not in err, err
    assert "kept the last good gallery" in err, err
    assert json.loads(summary.read_text())["frames"] > 0
    named = [e for e in read_events(events_out) if e["type"] == "identity" and e["identity"] == "lin-manuel-miranda"]
    assert named, "the last good gallery was not kept"


def test_a_restarted_publisher_starts_from_the_last_good_gallery(default_model, tmp_path, caplog):
    """The run checked the file at start; a publisher restarted after a bad save must not fail at every restart."""
    from stream.recognize.reload import load_or_last_good

    manifest = default_model.manifest
    path, keep = tmp_path / "g.npz", tmp_path / "run" / "gallery.last-good.npz"
    keep.parent.mkdir()
    with edit_gallery(path, manifest) as g:
        g.add("ann", np.full((1, 128), 0.1, np.float32))
    assert load_or_last_good(path, manifest, keep).identities() == ["ann"] and keep.is_file()
    watcher = GalleryWatcher(path, manifest, interval_s=0.0, keep=keep)
    with edit_gallery(path, manifest) as g:
        g.add("bob", np.full((1, 128), 0.2, np.float32))
    assert watcher.poll().identities() == ["ann", "bob"]
    _save_list_header(path)
    with caplog.at_level(logging.ERROR):
        assert load_or_last_good(path, manifest, keep).identities() == ["ann", "bob"]
    assert "kept the last good gallery" in caplog.text
    with pytest.raises(FacestreamError, match="header is a JSON list"):
        load_or_last_good(path, manifest, None)
