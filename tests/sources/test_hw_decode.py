"""sources.hw_decode: what asking for hardware decode does on a machine without any (this one)."""

from __future__ import annotations

import cv2
import pytest

from stream.config.schema import AppConfig
from stream.errors import FacestreamError
from stream.sources import capture
from stream.sources.open import open_source
from stream.sources.spec import SourceSpec
from tests.conftest import media_path


@pytest.fixture(autouse=True)
def _cpu_afterwards():
    yield
    capture.use_hw_decode("cpu")


def _clip_spec() -> SourceSpec:
    return SourceSpec(name="clip", uri=str(media_path("short_hamilton_clip.mp4")), kind="file")


def test_cpu_passes_no_parameters_so_opens_are_as_before():
    capture.use_hw_decode("cpu")
    assert capture.decode_params() == []


def test_any_falls_back_to_the_cpu_and_decodes_the_same_frame():
    spec = _clip_spec()
    plain = open_source(spec)
    plain.open()
    first = plain.read().image.copy()
    plain.close()
    source = open_source(spec, hw_decode="any")
    assert capture.decode_params() == [cv2.CAP_PROP_HW_ACCELERATION, cv2.VIDEO_ACCELERATION_ANY]
    source.open()
    frame = source.read()
    source.close()
    assert frame.image.shape == first.shape
    # a hardware decoder may round differently; on the CPU fallback it is the same decoder
    assert abs(frame.image.astype(int) - first.astype(int)).mean() < 2.0


def test_a_named_decoder_that_is_missing_is_one_line_naming_the_setting():
    source = open_source(_clip_spec(), hw_decode="vaapi")
    probe = cv2.VideoCapture(str(media_path("short_hamilton_clip.mp4")), cv2.CAP_FFMPEG,
                             [cv2.CAP_PROP_HW_ACCELERATION, cv2.VIDEO_ACCELERATION_VAAPI])
    if probe.isOpened():
        probe.release()
        pytest.skip("this machine has VAAPI decode")
    with pytest.raises(FacestreamError, match=r"sources.hw_decode: vaapi is not available here"):
        source.open()


def test_a_missing_file_is_still_not_found_with_hardware_decode_asked():
    spec = SourceSpec(name="x", uri="/nonexistent/clip.mp4", kind="file")
    with pytest.raises(FacestreamError, match="not found"):
        open_source(spec, hw_decode="vaapi").open()


def test_yaml_off_is_the_cpu():
    assert AppConfig.model_validate({"sources": {"hw_decode": False}}).sources.hw_decode == "cpu"


@pytest.mark.parametrize("value", ["off", "nvdec", "", True])
def test_the_setting_accepts_only_its_names(value):
    with pytest.raises(ValueError, match="hw_decode"):
        AppConfig.model_validate({"sources": {"hw_decode": value}})
