"""dlib's serialization: primitive decoders and refusal of broken files."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from stream.errors import ModelError
from stream.models.dlib_format import _Reader, parse_dlib_resnet
from stream.models.dlib_resnet import package_weights


def reader(hexbytes: str) -> _Reader:
    return _Reader(bytes.fromhex(hexbytes), Path("x.dat"))


@pytest.mark.parametrize(("hexbytes", "value"), [("01 00", 0), ("01 02", 2), ("01 96", 150), ("02 80 12", 4736),
                                                  ("81 05", -5), ("00", 0)])
def test_integers(hexbytes, value):
    assert reader(hexbytes).integer() == value


@pytest.mark.parametrize(("hexbytes", "value"), [("03 0A D7 A3 81 1C", 0.04), ("01 10 81 04", 1.0),
                                                  ("01 00 01 0B", 0.0), ("03 62 90 F5 81 11", 122.782)])
def test_floats_are_mantissa_then_exponent(hexbytes, value):
    assert math.isclose(reader(hexbytes).real(), value, rel_tol=1e-6)


def test_string_and_empty_tensor():
    r = reader("01 05 63 6F 6E 5F 34" + " 01 02 01 00 01 00 01 00 01 00")
    assert r.string() == "con_4"
    assert r.tensor().shape == (0, 0, 0, 0)


def test_bad_control_byte_is_refused():
    with pytest.raises(ModelError, match="invalid integer control byte"):
        reader("7f 00").integer()


def test_real_file_parses_to_the_last_byte():
    net = parse_dlib_resnet(package_weights())
    assert net.num_parameters == 5_614_592
    assert net.input_size == (150, 150)
    np.testing.assert_allclose(net.mean_rgb, (122.782, 117.001, 104.298), atol=1e-3)
    assert net.loss == "loss_metric_2"


@pytest.fixture
def dat_copy(tmp_path: Path) -> Path:
    target = tmp_path / "model.dat"
    shutil.copyfile(package_weights(), target)
    return target


def test_truncated_file_names_file_and_place(dat_copy: Path):
    data = dat_copy.read_bytes()
    dat_copy.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"model\.dat: truncated at byte \d+ \(while reading layer"):
        parse_dlib_resnet(dat_copy)


def test_trailing_bytes_are_refused(dat_copy: Path):
    dat_copy.write_bytes(dat_copy.read_bytes() + b"\x00\x00")
    with pytest.raises(ModelError, match="2 unexpected trailing bytes"):
        parse_dlib_resnet(dat_copy)


def test_corrupted_layer_type_is_refused(dat_copy: Path):
    data = bytearray(dat_copy.read_bytes())
    at = data.index(b"con_4")
    data[at : at + 5] = b"cxn_4"
    dat_copy.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="unexpected layer type 'cxn_4'"):
        parse_dlib_resnet(dat_copy)


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, b"", b"hello world"])
def test_other_files_are_refused(tmp_path: Path, content: bytes):
    path = tmp_path / "not-a-model.dat"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=r"not-a-model\.dat"):
        parse_dlib_resnet(path)


def test_missing_file(tmp_path: Path):
    with pytest.raises(ModelError, match="not found"):
        parse_dlib_resnet(tmp_path / "nope.dat")
