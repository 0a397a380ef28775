"""Saved unknown tracks: top-N crops by quality, atomic folders, read back, co-occurrence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stream.cluster.saved_tracks import UnknownsRecorder, co_occurring, read_tracks
from stream.errors import FacestreamError


class _Manifest:
    name = "m"
    embedding_space = "m"
    metric = "euclidean"
    threshold = 0.6


def _crop(value: int) -> np.ndarray:
    return np.full((8, 8, 3), value, np.uint8)


def test_keeps_best_crops_and_writes_one_folder(tmp_path):
    (tmp_path / ".tmp-r1-cam-9").mkdir()  # a killed publisher's leftover
    (tmp_path / ".tmp-r0-cam-9").mkdir()  # another run's, maybe being written now
    rec = UnknownsRecorder(tmp_path, _Manifest(), keep=2, run="r1")
    assert not (tmp_path / ".tmp-r1-cam-9").exists() and (tmp_path / ".tmp-r0-cam-9").exists()
    for frame, q in enumerate([0.1, 0.9, 0.5, 0.7]):
        rec.observe("cam", 3, frame, _crop(frame), np.array([2.0, 0.0]) if frame else np.array([0.0, 2.0]), q)
    assert rec.end("cam", 3, unknown=True) == tmp_path / "cam-3"
    meta = json.loads((tmp_path / "cam-3" / "track.json").read_text())
    assert meta["frames"] == [0, 1, 2, 3] and meta["first_frame"] == 0 and meta["last_frame"] == 3
    assert meta["quality"] == [0.9, 0.7] and meta["crop_frames"] == [1, 3]
    assert np.isclose(np.linalg.norm(meta["embedding"]), 1.0)
    assert meta["model"] == "m" and meta["run"] == "r1"
    [track] = read_tracks(tmp_path)
    assert [int(p.stem.split("-")[1]) for p in track.crops] == [0, 1]
    assert [p.name for p in tmp_path.glob(".tmp-*")] == [".tmp-r0-cam-9"]


def test_named_track_is_not_saved_and_names_never_collide(tmp_path):
    rec = UnknownsRecorder(tmp_path, _Manifest(), keep=1)
    rec.observe("cam", 1, 0, _crop(1), np.ones(2), 0.5)
    assert rec.end("cam", 1, unknown=False) is None
    assert not rec.open
    for _ in range(2):
        rec.observe("cam", 1, 0, _crop(1), np.ones(2), 0.5)
        rec.end("cam", 1, unknown=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam-1", "cam-1.2"]


def test_co_occurring_tracks(tmp_path):
    rec = UnknownsRecorder(tmp_path, _Manifest(), keep=1, run="r")
    for tid, frames in ((1, [0, 1]), (2, [1, 2]), (3, [5])):
        for f in frames:
            rec.observe("cam", tid, f, _crop(0), np.ones(2), 0.5)
        rec.end("cam", tid, unknown=True)
    together = co_occurring(read_tracks(tmp_path))
    assert together.tolist() == [[False, True, False], [True, False, False], [False, False, False]]


def test_bad_track_json_is_one_line_error(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "track.json").write_text("{")
    with pytest.raises(FacestreamError, match="track.json"):
        read_tracks(tmp_path)


def test_short_or_doubtful_tracks_are_not_saved(tmp_path):
    rec = UnknownsRecorder(tmp_path, _Manifest(), keep=1, min_embeddings=3, min_score=0.7)
    for frame in range(2):  # too short
        rec.observe("cam", 1, frame, _crop(1), np.array([1.0, 0.0]), 0.5, score=0.9)
    for frame in range(5):  # long, but the detector was unsure throughout: a hand, a dark patch
        rec.observe("cam", 2, frame, _crop(2), np.array([1.0, 0.0]), 0.5, score=0.62)
    for frame, score in enumerate([0.65, 0.8, 0.9]):  # a face: mean 0.78
        rec.observe("cam", 3, frame, _crop(3), np.array([1.0, 0.0]), 0.5, score=score)
    assert rec.end("cam", 1, unknown=True) is None
    assert rec.end("cam", 2, unknown=True) is None
    assert rec.end("cam", 3, unknown=True) == tmp_path / "cam-3"
    assert json.loads((tmp_path / "cam-3" / "track.json").read_text())["detector_score"] == pytest.approx(0.7833, 1e-3)
