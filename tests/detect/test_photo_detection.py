"""Every detector kind on the same real photos, through the registry: what any detector must do.

Each test runs for BlazeFace on its ONNX network, BlazeFace in MediaPipe's own graph, and dlib's
HOG (skipped where dlib, the ``detect-dlib`` extra, is absent). Landmarks are read by name, so the
checks hold for MediaPipe's six keypoints and dlib's five alike.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from stream.align import FaceAligner
from stream.detect import DetectorConfig, FaceDetector
from stream.detect.merge import overlap_of_smaller
from stream.detect.registry import single_pass_detector
from stream.images import read_image
from tests.conftest import media_path

PHOTOS = ["obama.jpg", "obama2.jpg", "biden.jpg", "two_people.jpg", "lin-manuel-miranda.png", "alex-lacamoire.png"]
_NO_DLIB = importlib.util.find_spec("dlib") is None

KINDS = [
    pytest.param({"kind": "blazeface", "runtime": "onnx"}, id="blazeface-onnx"),
    pytest.param({"kind": "blazeface", "runtime": "mediapipe"}, id="blazeface-mediapipe"),
    pytest.param({"kind": "dlib-hog"}, id="dlib-hog",  # slow: HOG over whole upsampled photos, seconds each
                 marks=[pytest.mark.slow,
                        pytest.mark.skipif(_NO_DLIB, reason="dlib is not installed (pip install "
                                                            "'facestream[detect-dlib]')")]),
]


@pytest.fixture(scope="module", params=KINDS)
def kind(request, engines_dir) -> dict:
    return request.param


@pytest.fixture(scope="module")
def detector(kind):
    with single_pass_detector(DetectorConfig(**kind)) as det:
        yield det


@pytest.fixture(scope="module")
def reference(engines_dir):
    """BlazeFace's faces of each photo, what the other kinds are compared with."""
    with single_pass_detector(DetectorConfig()) as det:
        return {name: det.detect(read_image(media_path(name))) for name in PHOTOS}


def test_two_people_gives_two_faces_with_named_landmarks_inside_boxes(detector):
    faces = detector.detect(read_image(media_path("two_people.jpg")))
    assert len(faces) == 2
    assert faces.layout == detector.layout
    for box, kps, score in zip(faces.xyxy, faces.keypoints, faces.score):
        assert score > 0.6
        right_eye, left_eye = faces.layout.point(kps, "right_eye"), faces.layout.point(kps, "left_eye")
        for x, y in (right_eye, left_eye):
            assert box[0] <= x <= box[2] and box[1] <= y <= box[3]
        # the subject's right eye is on the image's left
        assert right_eye[0] < left_eye[0]


@pytest.mark.parametrize("name", PHOTOS)
def test_finds_the_faces_blazeface_finds(detector, reference, name):
    faces = detector.detect(read_image(media_path(name)))
    truth = reference[name]
    assert len(faces) == len(truth) >= 1
    assert (overlap_of_smaller(truth.xyxy, faces.xyxy).max(axis=1) > 0.7).all()


def test_the_tiled_scan_runs_on_it(kind, reference):
    """``FaceDetector`` builds its scan and closer looks from the detector's facts, whatever the kind."""
    with FaceDetector(DetectorConfig(**kind)) as det:
        for name in ("two_people.jpg", "alex-lacamoire.png"):
            faces = det.detect(read_image(media_path(name)))
            assert len(faces) == len(reference[name])
            assert (overlap_of_smaller(reference[name].xyxy, faces.xyxy).max(axis=1) > 0.7).all()


def test_its_landmarks_align_a_face(detector, default_model):
    """The aligner reads the landmarks by name: the eyes land where the model's template has them."""
    image = read_image(media_path("obama.jpg"))
    faces = detector.detect(image)
    aligner = FaceAligner.for_model(default_model.manifest)
    crops = aligner.align(image, faces).crops
    assert crops.shape == (1, aligner.size[1], aligner.size[0], 3) and crops.std() > 20
    matrix = aligner.matrices(faces)[0]
    eyes = faces.layout.points(faces.keypoints[0], ["right_eye", "left_eye"])
    warped = eyes @ matrix[:, :2].T + matrix[:, 2]
    template = default_model.manifest.alignment.points
    want = np.array([template["left_eye"], template["right_eye"]], np.float64)  # the image's left eye first
    assert np.abs(warped - want).max() < 0.08 * aligner.size[0]


def test_min_face_px_filters_small_faces(kind):
    image = read_image(media_path("two_people.jpg"))
    with single_pass_detector(DetectorConfig(**kind, min_face_px=4000)) as det:
        assert len(det.detect(image)) == 0


def test_blank_image_has_no_faces(detector):
    faces = detector.detect(np.zeros((240, 320, 3), np.uint8))
    assert len(faces) == 0 and faces.layout == detector.layout


def test_rejects_non_bgr_input(detector):
    with pytest.raises(ValueError, match="BGR uint8"):
        detector.detect(np.zeros((10, 10), np.uint8))
