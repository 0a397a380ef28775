"""`facestream eval --videos` end to end with the real model on a video-pair set cut from the Hamilton clip
(tests/evaluate/video_set.py): YouTube Faces' layout with a splits.txt, and the same videos as saved tracks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error, media_path

FIELDS = {"model", "video_score", "frames_per_video", "videos", "pairs", "pairs_excluded", "faces_missing",
          "accuracy", "accuracy_se", "val", "val_se", "far", "auc", "threshold", "fold_accuracies"}


@pytest.fixture(scope="module")
def ytf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.evaluate.video_set import build_video_set, write_splits

    media_path("short_hamilton_clip.mp4")
    root = tmp_path_factory.mktemp("videos") / "hamilton-ytf"
    counts = build_video_set(root)
    assert len(counts) == 11 and sum(counts.values()) >= 50
    write_splits(root, counts)
    return root


def _sane(record: dict, pairs: int) -> None:
    assert set(record) >= FIELDS
    assert record["model"] == "dlib-resnet-v1" and record["pairs"] == pairs and record["pairs_excluded"] == 0
    assert len(record["fold_accuracies"]) == 10
    assert 0.8 <= record["accuracy"] <= 1.0 and 0 <= record["accuracy_se"] <= 0.1
    assert 0.9 <= record["auc"] <= 1.0
    assert 0.3 < record["threshold"] < 0.8  # dlib's video distances sit around its 0.6 face threshold


def test_ytf_layout_with_splits_both_scores_side_by_side(cli, ytf: Path, tmp_path: Path) -> None:
    plot = tmp_path / "roc.png"
    records = json.loads(cli("eval", "--videos", ytf, "--json", "--plot", plot, check=True).stdout)
    assert [r["video_score"] for r in records] == ["mean-embedding", "frame-pairs"]
    for record in records:
        _sane(record, pairs=20)
        assert record["pairs_from"] == "splits.txt" and record["face_rule"] == "largest"
        assert record["frames_per_video"] == 100 and record["videos"] == 11 and record["videos_without_face"] == 0
        assert record["frames_embedded"] + record["faces_missing"] == record["images"]
        assert record["frames_embedded"] >= 50
    assert plot.read_bytes()[:4] == b"\x89PNG"
    # --frames: only the first N frames of each video
    text = cli("eval", "--videos", ytf, "--frames", "2", "--video-score", "frame-pairs", check=True).stdout
    assert "frame-pairs (mean distance of all frame pairs of the first 2 frames; 11 videos" in text
    assert "accuracy" in text and "+-" in text and "VAL" in text and "AUC" in text and "mean-embedding" not in text


def test_saved_tracks_with_labels(cli, ytf: Path, tmp_path: Path, default_model) -> None:
    from tests.evaluate.video_set import write_tracks

    labels = write_tracks(tmp_path / "unknowns", ytf, default_model)
    assert len(labels) == 11
    (tmp_path / "labels.txt").write_text("".join(f"{track} {person}\n" for track, person in labels.items()))
    record = json.loads(cli("eval", "--videos", tmp_path / "unknowns", "--labels", tmp_path / "labels.txt",
                            "--pairs-per-fold", "1", "--video-score", "mean-embedding", "--json", check=True).stdout)
    _sane(record, pairs=20)
    # aligned crops embedded as saved: no detection, no face lost; a track keeps its 5 best crops
    assert record["face_rule"] == "aligned crops" and record["faces_missing"] == 0
    assert record["frames_embedded"] == record["images"] <= 5 * 11


def test_bad_video_input_is_one_line(cli, ytf: Path, tmp_path: Path) -> None:
    bad = tmp_path / "splits.txt"
    bad.write_text((ytf / "splits.txt").read_text() + "11, obama/0\n")
    assert_one_line_error(cli("eval", "--videos", ytf, "--pairs", bad), f"{bad}: line 22: expected")
    assert_one_line_error(cli("eval", ytf, "--videos", ytf), "--videos: not with DATASET")
    assert_one_line_error(cli("eval", "--videos", ytf, "--save-threshold"), "--save-threshold: not with --videos")
    assert_one_line_error(cli("eval", "--videos", ytf, "--labels", tmp_path / "none.txt"), "none.txt: not found")
