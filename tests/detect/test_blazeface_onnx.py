"""MediaPipe's BlazeFace weights on ONNX Runtime against MediaPipe's own graph, on real photos and footage."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from stream.boxes import intersections
from stream.detect.blazeface.facts import DEFAULT_MIN_SCORE
from stream.detect.blazeface.graph import MediaPipeFaceDetector
from stream.detect.blazeface.network import MODELS, BlazeFaceOnnxDetector, onnx_path, weighted_nms
from stream.detect.config import DetectorConfig
from stream.images import read_image
from tests.conftest import media_path

PHOTOS = ["obama.jpg", "obama2.jpg", "biden.jpg", "two_people.jpg", "lin-manuel-miranda.png", "alex-lacamoire.png"]


def _images() -> list[np.ndarray]:
    """The photos, clip frames (wide), crops of them (square tiles) and tall strips: every letterbox case."""
    images = [read_image(media_path(name)) for name in PHOTOS]
    cap = cv2.VideoCapture(str(media_path("short_hamilton_clip.mp4")))
    index = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if index % 25 == 0:
            images += [frame, frame[60:300, 200:440].copy(), frame[:, 100:300].copy()]
        index += 1
    cap.release()
    return images


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    return _images()


@pytest.mark.slow
@pytest.mark.parametrize("model", ["short", "full"])
def test_same_faces_boxes_and_scores_as_mediapipes_graph(engines_dir, images, model):
    config = DetectorConfig(min_face_px=0)
    with MediaPipeFaceDetector(config, model=model) as graph, BlazeFaceOnnxDetector(config, model=model) as ours:
        compared = 0
        for image in images:
            theirs, mine = graph.detect(image), ours.detect(image)
            assert len(mine) == len(theirs), (image.shape, theirs.score, mine.score)
            if not len(theirs):
                continue
            inter, area_a, area_b = intersections(theirs.xyxy, mine.xyxy)
            iou = inter / (area_a[:, None] + area_b[None, :] - inter)
            match = iou.argmax(axis=1)
            assert (iou.max(axis=1) > 0.99).all()
            assert np.abs(theirs.score - mine.score[match]).max() < 0.01
            assert (np.abs(theirs.keypoints - mine.keypoints[match]).max(axis=(1, 2)) < 0.02 * theirs.widths).all()
            compared += len(theirs)
    assert compared >= 30  # real faces were compared, not just empty frames


def test_a_batch_gives_what_each_image_gives_alone(engines_dir, images):
    with BlazeFaceOnnxDetector(DetectorConfig(min_face_px=0)) as detector:
        batch = detector.detect_many(images[:9])
        for image, faces in zip(images[:9], batch):
            alone = detector.detect(image)
            assert len(alone) == len(faces)
            np.testing.assert_allclose(alone.xyxy, faces.xyxy, atol=1e-3)


def test_score_threshold_is_the_models_own_unless_set(engines_dir, images):
    frames = images[len(PHOTOS)::3]
    default = BlazeFaceOnnxDetector(DetectorConfig(min_face_px=0)).load()
    scores = np.concatenate([f.score for f in default.detect_many(frames)])
    assert scores.min() >= DEFAULT_MIN_SCORE["full"]
    lower = BlazeFaceOnnxDetector(DetectorConfig(min_face_px=0, min_confidence=0.4)).load()
    more = np.concatenate([f.score for f in lower.detect_many(frames)])
    assert len(more) > len(scores) and more.min() < DEFAULT_MIN_SCORE["full"]
    strict = BlazeFaceOnnxDetector(DetectorConfig(min_face_px=0, min_confidence=0.9)).load()
    assert all((f.score >= 0.9).all() for f in strict.detect_many(frames))


def test_conversion_is_cached_once_per_model_file(tmp_path):
    first = onnx_path(MODELS["short"], tmp_path)
    stamp = first.stat().st_mtime_ns
    again = onnx_path(MODELS["short"], tmp_path)
    assert again == first and again.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == [first.name]
    assert os.path.getsize(first) < 1_000_000


def test_weighted_nms_averages_overlapping_boxes_by_score():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.6, 0.7], np.float32)
    keypoints = np.zeros((3, 6, 2), np.float32)
    out_boxes, out_scores, _ = weighted_nms(boxes, scores, keypoints)
    assert out_scores.tolist() == pytest.approx([0.9, 0.7])
    np.testing.assert_allclose(out_boxes[0], (boxes[0] * 0.9 + boxes[1] * 0.6) / 1.5, atol=1e-5)


def test_blank_image_and_bad_input(engines_dir):
    with BlazeFaceOnnxDetector(DetectorConfig()) as detector:
        assert len(detector.detect(np.zeros((240, 320, 3), np.uint8))) == 0
        with pytest.raises(ValueError, match="BGR uint8"):
            detector.detect(np.zeros((10, 10), np.uint8))
