"""`facestream eval` end to end on real photos and Hamilton clip crops (tests/support/eval_dataset.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, assert_one_line_error, media_path

FIELDS = {"model", "pairs", "faces_missing", "accuracy", "accuracy_se", "val", "far", "auc", "threshold"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.eval_dataset import build_eval_dataset

    media_path("short_hamilton_clip.mp4")
    root = tmp_path_factory.mktemp("eval") / "hamilton-photos"
    counts = build_eval_dataset(root, every=20)
    assert counts["lin-manuel-miranda"] >= 5 and counts["obama"] >= 3
    return root


def test_eval_json_reports_every_field_and_the_missing_faces(cli, dataset: Path, tmp_path: Path) -> None:
    plot = tmp_path / "roc.png"
    proc = cli("eval", dataset, "--json", "--pairs-per-fold", "3", "--plot", plot, check=True)
    record = json.loads(proc.stdout)
    assert set(record) >= FIELDS
    assert record["model"] == "dlib-resnet-v1"
    # Frames 20 and 40 show Alex Lacamoire but no face is found: counted, their pairs left out.
    assert record["faces_missing"] == 2
    assert sorted(Path(p).name for p in record["faces_missing_images"]) == ["clip-020.png", "clip-040.png"]
    assert record["pairs"] + record["pairs_excluded"] == 60 and record["pairs_excluded"] > 0
    assert 0.7 <= record["accuracy"] <= 1.0 and record["accuracy_se"] >= 0
    assert 0.3 < record["threshold"] < 1.0
    assert 0.7 <= record["auc"] <= 1.0
    assert plot.stat().st_size > 5000 and plot.read_bytes()[:4] == b"\x89PNG"


def test_eval_text_and_seed(cli, dataset: Path) -> None:
    a = cli("eval", dataset, "--pairs-per-fold", "2", "--seed", "1", check=True)
    assert "accuracy" in a.stdout and "+-" in a.stdout and "VAL" in a.stdout and "AUC" in a.stdout
    assert "threshold" in a.stdout and "2 of " in a.stdout  # the images with no face
    b = cli("eval", dataset, "--pairs-per-fold", "2", "--seed", "1", check=True)
    assert a.stdout == b.stdout


def test_lfw_layout_uses_pairs_txt_and_the_centred_face(cli, tmp_path: Path) -> None:
    # two_people.jpg twice: judged by the face nearest the centre; LFW names and numbering.
    root = tmp_path / "lfw"
    for name, files in {"Barack_Obama": ["obama.jpg", "obama2.jpg"], "Joe_Biden": ["biden.jpg", "two_people.jpg"],
                        "Lin": ["lin-manuel-miranda.png"], "Alex": ["alex-lacamoire.png"]}.items():
        (root / name).mkdir(parents=True)
        for i, file in enumerate(files, 1):
            shutil.copyfile(media_path(file), root / name / f"{name}_{i:04d}.jpg")
    (root / "pairs.txt").write_text("2 1\nBarack_Obama 1 2\nLin 1 Alex 1\nJoe_Biden 1 2\nBarack_Obama 1 Joe_Biden 1\n")
    record = json.loads(cli("eval", root, "--json", check=True).stdout)
    assert record["pairs"] == 4 and record["faces_missing"] == 0
    assert record["face_rule"] == "centre" and record["pairs_from"] == "pairs.txt"


@pytest.mark.slow
def test_save_threshold_round_trip(dataset: Path, tmp_path: Path, default_model) -> None:
    from stream.models.store import ModelStore
    from stream.recognize.gallery import Gallery
    from stream.recognize.stage import RecognitionStage

    engines = tmp_path / "engines"
    shutil.copytree(default_model.onnx_path.parent, engines / "models" / "dlib-resnet-v1")  # never touch the cache
    env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(engines)}
    proc = subprocess.run([sys.executable, "-m", "stream", "eval", str(dataset), "--json", "--pairs-per-fold", "3",
                           "--save-threshold"], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    model = ModelStore(engines).get("dlib-resnet-v1", verify=True)  # the ONNX sha256 still matches
    assert model.manifest.threshold == pytest.approx(record["threshold"])
    calibration = model.manifest.threshold_calibration
    assert calibration is not None and calibration.dataset == dataset.name
    assert calibration.pairs == record["pairs"] and calibration.previous_threshold == default_model.manifest.threshold
    assert not list((engines / "models" / "dlib-resnet-v1").glob(".*tmp*"))
    # run's recognition stage takes the calibrated threshold, unless model.threshold is configured
    gallery = Gallery.new(model.manifest)
    assert RecognitionStage(model.manifest, gallery).threshold == pytest.approx(record["threshold"])
    assert RecognitionStage(model.manifest, gallery, threshold=0.45).threshold == 0.45
    # the cached store is untouched
    assert ModelStore(default_model.onnx_path.parents[2]).get().manifest.threshold_calibration is None


def test_open_set_identification(cli, dataset: Path, tmp_path: Path) -> None:
    gallery = tmp_path / "g.npz"
    cli("enroll", "--gallery", gallery, "--name", "lin-manuel-miranda", media_path("lin-manuel-miranda.png"),
        check=True)
    cli("enroll", "--gallery", gallery, "--name", "alex-lacamoire", media_path("alex-lacamoire.png"), check=True)
    probes = tmp_path / "probes"
    for name in ("lin-manuel-miranda", "obama"):  # obama is a stranger to this gallery
        shutil.copytree(dataset / name, probes / name)
    record = json.loads(cli("eval", "--gallery", gallery, "--probes", probes, "--json", check=True).stdout)
    o = record["open_set"]
    assert o["threshold"] == 0.6  # no dataset calibrated: the manifest's
    assert o["known"] == len(list((dataset / "lin-manuel-miranda").iterdir())) and o["strangers"] >= 3
    assert o["top1"] == 1.0 and o["identified"] >= 0.8
    assert 0.0 <= o["strangers_named"] <= 0.5
    assert o["faces_missing"] == 0


@pytest.mark.parametrize("args, needles", [
    (("/nonexistent/dataset",), ("/nonexistent/dataset", "not found")),
    (("--probes", "x"), ("--gallery and --probes",)),
    ((), ("DATASET",)),
    (("/tmp", "--plot", "/nonexistent/dir/roc.png"), ("/nonexistent/dir/roc.png", "not found")),
    (("/tmp", "--model", "no-such-model"), ("no-such-model", "no such model")),
])
def test_bad_input_is_one_line(cli, args, needles) -> None:
    assert_one_line_error(cli("eval", *args), *needles)
    assert cli("eval", *args).returncode == 2


def test_pairs_txt_naming_a_missing_image(cli, tmp_path: Path) -> None:
    (tmp_path / "A").mkdir()
    (tmp_path / "pairs.txt").write_text("1 1\nA 1 2\nA 1 B 1\n")
    assert_one_line_error(cli("eval", tmp_path), "A_0001.jpg", "not found", "pairs.txt")
