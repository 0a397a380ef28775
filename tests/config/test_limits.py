"""Settings that would exhaust memory or compute are refused at load, and the YAML is taken as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.config.schema import AppConfig, load_config
from stream.detect.blazeface.facts import MIN_FACE_SHARE, MODEL_INPUT_PX
from stream.detect.config import DetectorConfig, scan_tile_count
from stream.detect.tiles import plan_tiles
from stream.errors import FacestreamError


def _error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(FacestreamError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:")
    return message.removeprefix(f"{path}:")


# -- the detector's tile plan --------------------------------------------------------------------
def test_min_face_px_of_one_is_refused_with_the_line_of_the_value(tmp_path: Path):
    # The setting that took a run to 18.9 GB at 0.4 fps.
    message = _error(tmp_path, "model:\n  name: dlib-resnet-v1\ndetector:\n  model: full\n  min_face_px: 1\n")
    assert message.startswith(" line 5 detector.min_face_px:")
    assert "14" in message  # the smallest the full-range model can see from its 192 px input


@pytest.mark.parametrize("model", ["short", "full"])
def test_min_face_px_floor_is_what_blazeface_sees_in_its_input(model: str):
    floor = -(-MODEL_INPUT_PX[model] * MIN_FACE_SHARE[model] // 1)
    DetectorConfig(model=model, min_face_px=int(floor))
    DetectorConfig(model=model, min_face_px=0)  # 0: no tiles, no size filter (photos' whole-frame pass)
    with pytest.raises(ValueError, match="min_face_px"):
        DetectorConfig(model=model, min_face_px=int(floor) - 1)


def test_model_input_sizes_agree_with_the_detector():
    from stream.detect.blazeface.network import MODELS

    assert {name: m.input_px for name, m in MODELS.items()} == MODEL_INPUT_PX


def test_a_plan_over_the_tile_budget_names_setting_frame_size_and_tile_count(tmp_path: Path):
    # The short-range model at a large live frame: every setting valid alone, the plan is not.
    text = "detector:\n  model: short\n  min_face_px: 20\npipeline:\n  max_frame_width: 7680\n" \
           "  max_frame_height: 4320\n"
    message = _error(tmp_path, text)
    tiles = len(plan_tiles(7680, 4320, 20, MIN_FACE_SHARE["short"]))
    assert tiles > DetectorConfig().max_tiles
    assert "line 3 detector.min_face_px" in message
    assert "7680x4320" in message and f"{tiles} tiles" in message and "detector.max_tiles" in message


def test_the_error_says_which_min_face_px_would_fit(tmp_path: Path):
    text = "detector:\n  model: short\n  min_face_px: 20\npipeline:\n  max_frame_width: 7680\n" \
           "  max_frame_height: 4320\n"
    message = _error(tmp_path, text)
    fitting = int(message.split("at least ")[1].split()[0])
    assert scan_tile_count(DetectorConfig(model="short", min_face_px=fitting), 7680, 4320) <= 2000
    assert scan_tile_count(DetectorConfig(model="short", min_face_px=fitting - 1), 7680, 4320) > 2000


def test_a_larger_tile_budget_admits_the_plan(tmp_path: Path):
    path = tmp_path / "config.yaml"
    path.write_text("detector:\n  model: short\n  min_face_px: 20\n  max_tiles: 20000\npipeline:\n"
                    "  max_frame_width: 7680\n  max_frame_height: 4320\n")
    assert load_config(path).detector.max_tiles == 20000


def test_defaults_fit_the_budget_at_every_allowed_frame_size():
    # The default detector at the largest live frame the schema allows still passes.
    AppConfig.model_validate({"pipeline": {"max_frame_width": 8192, "max_frame_height": 8192}})


def test_tiling_off_needs_no_tile_budget(tmp_path: Path):
    path = tmp_path / "config.yaml"
    path.write_text("detector:\n  model: short\n  min_face_px: 20\n  tiling: 'off'\npipeline:\n"
                    "  max_frame_width: 8192\n  max_frame_height: 8192\n")
    assert load_config(path).detector.tiling == "off"


def test_the_detector_never_plans_more_tiles_than_its_budget():
    # A photo or file larger than the checked live frame: the scan coarsens instead of exhausting memory.
    from stream.detect.scan import FaceDetector

    detector = FaceDetector(DetectorConfig(model="short", min_face_px=20, max_tiles=300))
    tiles = detector.tiles(7680, 4320)
    assert 1 < len(tiles) <= 300
    assert tuple(tiles[0]) == (0, 0, 7680, 4320)


# -- frame memory --------------------------------------------------------------------------------
def test_frame_ring_memory_is_bounded(tmp_path: Path):
    message = _error(tmp_path, "pipeline:\n  frame_slots: 256\n  max_frame_width: 8192\n  max_frame_height: 8192\n")
    assert "line 2 pipeline.frame_slots" in message
    assert "GiB" in message


def test_default_frame_ring_fits():
    AppConfig.model_validate({"pipeline": {"frame_slots": 12, "max_frame_width": 8192, "max_frame_height": 8192}})


# -- the YAML itself -----------------------------------------------------------------------------
def test_duplicate_top_level_key_is_refused_with_its_line(tmp_path: Path):
    message = _error(tmp_path, "detector:\n  min_face_px: 24\nmodel:\n  name: dlib-resnet-v1\ndetector:\n"
                                "  scan_every: 5\n")
    assert message == " line 5 duplicate key 'detector' (first at line 1)"


def test_duplicate_nested_key_is_refused(tmp_path: Path):
    message = _error(tmp_path, "detector:\n  min_face_px: 24\n  scan_every: 5\n  min_face_px: 30\n")
    assert message == " line 4 duplicate key 'detector.min_face_px' (first at line 2)"


def test_error_points_at_the_value_not_the_key(tmp_path: Path):
    # A flow mapping written over several lines: the wrong value is on its own line.
    message = _error(tmp_path, "detector: {\n  scan_every:\n    0 }\n")
    assert message.startswith(" line 3 detector.scan_every:")


def test_error_points_at_the_section_value_when_it_is_not_a_mapping(tmp_path: Path):
    message = _error(tmp_path, "detector:\n  - 1\n  - 2\n")
    assert message.startswith(" line 2 detector:")
