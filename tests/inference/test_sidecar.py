from __future__ import annotations

from pathlib import Path

import pytest

from stream.errors import EngineUnavailable
from stream.inference.sidecar import (
    BatchProfile,
    EngineSidecar,
    RuntimeFacts,
    check_sidecar,
    engine_file_name,
    find_engine,
    read_sidecar,
    write_sidecar,
)

H100 = RuntimeFacts(tensorrt_version="10.8.0", gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0")
A100 = RuntimeFacts(tensorrt_version="10.3.0", gpu_name="NVIDIA A100-SXM4-40GB", compute_capability="8.0")
PROFILE = BatchProfile(min=1, opt=16, max=64)


@pytest.fixture
def manifest(default_model):
    return default_model.manifest


def sidecar(manifest, runtime=H100, profile=PROFILE) -> EngineSidecar:
    return EngineSidecar.for_build(manifest, profile, runtime, strongly_typed=True, workspace_mb=1024)


def test_file_name_encodes_model_profile_and_gpu(manifest):
    assert engine_file_name(manifest, PROFILE, "9.0") == "dlib-resnet-v1-b1-16-64-sm90.engine"


def test_roundtrip(tmp_path: Path, manifest):
    engine = tmp_path / "x.engine"
    write_sidecar(engine, sidecar(manifest))
    got = read_sidecar(engine)
    assert got.model_sha256 == manifest.sha256 and got.runtime == H100 and got.profile == PROFILE
    check_sidecar(engine, got, manifest, H100, max_batch=64)


def test_other_gpu_or_tensorrt_is_refused_with_both_named(tmp_path: Path, manifest):
    with pytest.raises(EngineUnavailable) as info:
        check_sidecar(tmp_path / "x.engine", sidecar(manifest, A100), manifest, H100, max_batch=32)
    msg = str(info.value)
    assert "built for TensorRT 10.3.0 on NVIDIA A100-SXM4-40GB (sm80)" in msg
    assert "this is TensorRT 10.8.0 on NVIDIA H100 80GB HBM3 (sm90)" in msg
    assert "facestream engine build" in msg and "\n" not in msg


def test_other_model_is_refused(tmp_path: Path, manifest):
    other = manifest.model_copy(update={"sha256": "f" * 64})
    with pytest.raises(EngineUnavailable, match="built from model dlib-resnet-v1"):
        check_sidecar(tmp_path / "x.engine", sidecar(other), manifest, H100, max_batch=32)


def test_profile_smaller_than_requested_batch_is_refused(tmp_path: Path, manifest):
    with pytest.raises(EngineUnavailable, match="profile max batch 64 < engine.max_batch 128"):
        check_sidecar(tmp_path / "x.engine", sidecar(manifest), manifest, H100, max_batch=128)


def test_missing_or_corrupt_sidecar(tmp_path: Path):
    engine = tmp_path / "x.engine"
    with pytest.raises(EngineUnavailable, match="no sidecar"):
        read_sidecar(engine)
    (tmp_path / "x.engine.json").write_text("{broken")
    with pytest.raises(EngineUnavailable, match="unreadable engine sidecar"):
        read_sidecar(engine)


def built(engines_dir: Path, manifest, profile: BatchProfile, runtime=H100) -> Path:
    path = engines_dir / engine_file_name(manifest, profile, runtime.compute_capability)
    path.write_bytes(b"engine")
    write_sidecar(path, sidecar(manifest, runtime, profile))
    return path


def test_the_engine_for_the_configured_profile_is_preferred(tmp_path: Path, manifest):
    exact = built(tmp_path, manifest, BatchProfile(min=1, opt=16, max=32))
    built(tmp_path, manifest, BatchProfile(min=1, opt=32, max=128))
    assert find_engine(tmp_path, manifest, H100, BatchProfile(min=1, opt=16, max=32)) == exact


def test_another_built_profile_that_covers_the_batches_is_used(tmp_path: Path, manifest):
    built(tmp_path, manifest, BatchProfile(min=1, opt=32, max=256))
    tight = built(tmp_path, manifest, BatchProfile(min=1, opt=32, max=128))
    built(tmp_path, manifest, BatchProfile(min=8, opt=32, max=64))  # cannot take a batch of 1
    built(tmp_path, manifest, BatchProfile(min=1, opt=8, max=16))  # too small
    built(tmp_path, manifest, BatchProfile(min=1, opt=16, max=64), A100)  # another GPU: never considered
    assert find_engine(tmp_path, manifest, H100, BatchProfile(min=1, opt=16, max=32)) == tight


def test_no_usable_engine_names_the_reason(tmp_path: Path, manifest):
    with pytest.raises(EngineUnavailable, match="no engine built for dlib-resnet-v1 on this GPU"):
        find_engine(tmp_path, manifest, H100, PROFILE)
    built(tmp_path, manifest, BatchProfile(min=1, opt=8, max=16))
    with pytest.raises(EngineUnavailable, match="profile max batch 16 < engine.max_batch 64"):
        find_engine(tmp_path, manifest, H100, PROFILE)
