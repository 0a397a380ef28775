"""Video pairs: YTF's splits file and layout, saved tracks and labels, and the two video scores."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from stream.errors import FacestreamError
from stream.evaluate.video_scores import pair_distances
from stream.evaluate.videos import (
    VideoPair,
    load_tracks,
    load_ytf,
    natural_key,
    parse_ytf_splits,
    read_labels,
    track_frames,
)

HEADER = "split number, first name, second name, first name = second name, is same\n"


def _splits(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "splits.txt"
    path.write_text(header + body)
    return path


def test_ytf_splits_read_the_last_column_as_the_label_and_number_folds_by_split(tmp_path):
    path = _splits(tmp_path, "1, A/0, A/1, 1, 1\n1, A/0, B/3, 0, 0\n\n2, B/3, B/4, 1, 0\n10, A/1, B/4, 0\n")
    assert parse_ytf_splits(path) == [
        VideoPair("A/0", "A/1", True, 0), VideoPair("A/0", "B/3", False, 0),
        VideoPair("B/3", "B/4", False, 1),  # corrected: the names agree, the last column says different
        VideoPair("A/1", "B/4", False, 2),
    ]
    assert parse_ytf_splits(_splits(tmp_path, "1,A/0,A/1,1,1\n", header="")) == [VideoPair("A/0", "A/1", True, 0)]


@pytest.mark.parametrize("line", ["1, A/0, A/1", "x, A/0, A/1, 1, 1", "1, A/0, A/1, 1, 2", "1, A, A/1, 1, 1"])
def test_a_malformed_splits_line_is_named_by_file_and_line(tmp_path, line):
    path = _splits(tmp_path, f"1, A/0, A/1, 1, 1\n{line}\n")
    with pytest.raises(FacestreamError, match=r"splits.txt: line 3: expected 'split, person/video"):
        parse_ytf_splits(path)


def test_empty_or_missing_splits(tmp_path):
    with pytest.raises(FacestreamError, match="no pairs"):
        parse_ytf_splits(_splits(tmp_path, ""))
    with pytest.raises(FacestreamError, match="nope.txt: not found"):
        parse_ytf_splits(tmp_path / "nope.txt")


def test_frames_are_in_numeric_order():
    names = ["10.jpg", "2.jpg", "1.jpg", "0.555.jpg", "0.56.jpg"]
    ordered = ["0.56.jpg", "0.555.jpg", "1.jpg", "2.jpg", "10.jpg"]
    assert sorted((Path(n) for n in names), key=natural_key) == [Path(n) for n in ordered]


def _frames(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i}.jpg"), np.zeros((8, 8, 3), np.uint8))


def test_ytf_layout_needs_every_named_video(tmp_path):
    _frames(tmp_path / "A" / "0", 3)
    _frames(tmp_path / "A" / "1", 2)
    path = _splits(tmp_path, "".join(f"{k}, A/0, A/1, 1, 1\n{k}, A/0, B/7, 0, 0\n" for k in (1, 2)))
    with pytest.raises(FacestreamError, match=r"B/7: not found \(video 'B/7' named in .*splits.txt\)"):
        load_ytf(tmp_path, path, 300, 0)
    (tmp_path / "B" / "7").mkdir(parents=True)
    with pytest.raises(FacestreamError, match="B/7: no frame images"):
        load_ytf(tmp_path, path, 300, 0)
    (tmp_path / "B" / "7").rmdir()
    _frames(tmp_path / "B" / "7", 12)  # frames 0..11: "10.jpg" after "9.jpg"
    videos = load_ytf(tmp_path, path, 300, 0)
    assert [p.name for p in videos.videos["B/7"][-3:]] == ["9.jpg", "10.jpg", "11.jpg"]
    assert not videos.aligned and len(videos.pairs) == 4 and videos.pairs_from == "splits.txt"


def test_ytf_layout_without_splits_generates_balanced_pairs(tmp_path):
    for person, n in (("A", 4), ("B", 4), ("C", 3)):
        for v in range(n):
            _frames(tmp_path / person / str(v), 1)
    videos = load_ytf(tmp_path, None, 1, seed=3)
    assert len(videos.pairs) == 20 and sum(p.same for p in videos.pairs) == 10
    assert {p.fold for p in videos.pairs} == set(range(10))
    assert all((p.a.split("/")[0] == p.b.split("/")[0]) == p.same for p in videos.pairs)
    assert videos.pairs == load_ytf(tmp_path, None, 1, seed=3).pairs


def test_labels_file(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("# who is who\ncam-1 Alex Lacamoire\ncam-2/  lin  # the second\n\ncam-1 Alex Lacamoire\n")
    assert read_labels(path) == {"cam-1": "Alex Lacamoire", "cam-2": "lin"}
    path.write_text("cam-1\n")
    with pytest.raises(FacestreamError, match=r"labels.txt: line 1: expected 'TRACK_FOLDER PERSON', got 'cam-1'"):
        read_labels(path)
    path.write_text("cam-1 a\ncam-1 b\n")
    with pytest.raises(FacestreamError, match="line 2: cam-1 labelled 'a' already"):
        read_labels(path)


def _track(folder: Path, crop_frames: list[int], model: str = "m") -> None:
    folder.mkdir(parents=True)
    for k in range(len(crop_frames)):
        cv2.imwrite(str(folder / f"crop-{k}.png"), np.full((8, 8, 3), k, np.uint8))
    (folder / "track.json").write_text(json.dumps({"crop_frames": crop_frames, "model": model, "frames": []}))


def test_track_crops_are_read_in_frame_order(tmp_path):
    _track(tmp_path / "cam-1", [40, 12, 30])  # crop-0 is the best, not the first
    crops, model = track_frames(tmp_path / "cam-1")
    assert [p.name for p in crops] == ["crop-1.png", "crop-2.png", "crop-0.png"] and model == "m"


def test_tracks_need_their_labelled_folders(tmp_path):
    for i in range(8):
        _track(tmp_path / "t" / f"cam-{i}", [i])
    _track(tmp_path / "t" / "cam-9", [1])  # unlabelled: left out
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"cam-{i} {'ab'[i % 2]}\n" for i in range(8)))
    videos = load_tracks(tmp_path / "t", labels, 300, 0)
    assert videos.aligned and set(videos.videos) == {f"cam-{i}" for i in range(8)}
    assert len(videos.pairs) == 20  # 6 + 6 matched pairs possible: one of each class per fold
    assert videos.model_of == {f"cam-{i}": "m" for i in range(8)}
    labels.write_text("".join(f"cam-{i} {'ab'[i % 2]}\n" for i in range(6)))  # 3 + 3: not 10 folds' worth
    with pytest.raises(FacestreamError, match="need at least 10 of each"):
        load_tracks(tmp_path / "t", labels, 300, 0)
    labels.write_text("cam-0 a\ncam-17 a\n")
    with pytest.raises(FacestreamError, match=r"cam-17: not found \(track 'cam-17' labelled in .*labels.txt\)"):
        load_tracks(tmp_path / "t", labels, 300, 0)


class _Euclidean:
    """The one thing the scores take from a manifest: its distance."""

    @staticmethod
    def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)


def test_the_two_video_scores():
    emb = {"x": np.array([[0.0, 0.0], [2.0, 0.0]]), "y": np.array([[1.0, 3.0]])}
    pair = [VideoPair("x", "y", False, 0)]
    assert pair_distances(emb, pair, _Euclidean(), "mean-embedding")[0] == pytest.approx(3.0)  # (1, 0) to (1, 3)
    assert pair_distances(emb, pair, _Euclidean(), "frame-pairs")[0] == pytest.approx(np.sqrt(10))  # both sqrt(10)
    with pytest.raises(ValueError, match="unknown video score"):
        pair_distances(emb, pair, _Euclidean(), "median")


def test_crops_saved_for_another_template_are_refused_naming_the_model(tmp_path):
    from types import SimpleNamespace

    from stream.evaluate.video_scores import check_crops_fit
    from stream.evaluate.videos import VideoSet
    from stream.models.store import ModelStore

    model = SimpleNamespace(name="m", manifest=SimpleNamespace(alignment=SimpleNamespace(width=150, height=150)))
    store = ModelStore(tmp_path / "engines")
    check_crops_fit(VideoSet({}, [], True, "", {"cam-1": "m", "cam-2": ""}), model, store)  # its own, or unknown
    with pytest.raises(FacestreamError, match="cam-1: crops aligned for model 'gone'.* with --model gone"):
        check_crops_fit(VideoSet({}, [], True, "", {"cam-1": "gone"}), model, store)
