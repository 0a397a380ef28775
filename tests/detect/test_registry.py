"""``detector.kind`` picks the detector; the config checks and tile counts come from its facts."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from stream.detect.base import SinglePassDetector
from stream.detect.blazeface.facts import BLAZEFACE
from stream.detect.config import DetectorConfig, scan_tile_count
from stream.detect.dlib.facts import DLIB_5, DLIB_HOG
from stream.detect.kinds import KINDS, facts_of
from stream.detect.registry import FACTORIES, look_models, single_pass_detector
from stream.faces import MEDIAPIPE_FACE


def test_every_kind_has_facts_a_factory_and_a_config_value():
    assert set(KINDS) == set(FACTORIES) == set(DetectorConfig.model_fields["kind"].annotation.__args__)


@pytest.mark.parametrize(("config", "cls", "layout"), [
    (DetectorConfig(), "BlazeFaceOnnxDetector", MEDIAPIPE_FACE),
    (DetectorConfig(runtime="tensorrt"), "BlazeFaceOnnxDetector", MEDIAPIPE_FACE),
    (DetectorConfig(runtime="mediapipe"), "MediaPipeFaceDetector", MEDIAPIPE_FACE),
    (DetectorConfig(kind="dlib-hog"), "DlibHogDetector", DLIB_5),
])
def test_the_registry_builds_the_configured_detector_without_loading_it(config, cls, layout):
    detector = single_pass_detector(config)
    assert isinstance(detector, SinglePassDetector) and type(detector).__name__ == cls
    assert detector.layout is layout and detector.facts is facts_of(config.kind, config.model)


def test_facts_of_each_kind():
    assert facts_of("blazeface", "short") is BLAZEFACE["short"] and facts_of("dlib-hog", "full") is DLIB_HOG
    assert (BLAZEFACE["full"].input_px, BLAZEFACE["full"].smallest_face_px) == (192, 14)
    assert (DLIB_HOG.input_px, DLIB_HOG.min_face_share, DLIB_HOG.smallest_face_px) == (None, 0.0, 40)


def test_min_face_px_floor_holds_for_blazeface_only():
    with pytest.raises(ValidationError, match="cannot see faces under 14 px"):
        DetectorConfig(min_face_px=10)
    # dlib works at the image's own resolution: no tiles, min_face_px is only a size filter
    assert DetectorConfig(kind="dlib-hog", min_face_px=10).min_face_px == 10
    assert scan_tile_count(DetectorConfig(kind="dlib-hog"), 7680, 4320) == 1
    assert scan_tile_count(DetectorConfig(), 1920, 1080) > 1


def test_closer_looks_use_the_kinds_models():
    assert look_models(DetectorConfig()) == ["short", "full"]
    assert look_models(DetectorConfig(closer_look_model="full")) == ["full"]
    assert look_models(DetectorConfig(kind="dlib-hog")) == [DetectorConfig().model]  # its one model: the scan's


def test_reading_the_config_loads_no_detector():
    """Every process reads the config; only the detect worker may pay for OpenCV, ONNX Runtime or dlib."""
    code = ("import sys; from stream.detect.config import DetectorConfig; DetectorConfig(kind='dlib-hog'); "
            "print(sorted(m for m in ('cv2', 'onnxruntime', 'dlib', 'mediapipe') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
