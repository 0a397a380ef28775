from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from stream.errors import ModelError
from stream.models.manifest import ModelManifest
from stream.models.store import DEFAULT_MODEL, ModelStore


@pytest.fixture
def store_copy(tmp_path: Path, default_model) -> ModelStore:
    """A private store holding a copy of the default model, safe to damage."""
    root = tmp_path / "engines"
    shutil.copytree(default_model.onnx_path.parent, root / "models" / DEFAULT_MODEL)
    return ModelStore(root)


def test_default_is_listed_and_available(default_model, engines_dir):
    store = ModelStore(engines_dir)
    assert DEFAULT_MODEL in store.installed_names()
    assert store.get().manifest == default_model.manifest


def test_built_in_is_built_on_first_use(tmp_path: Path):
    store = ModelStore(tmp_path / "fresh")
    assert store.installed_names() == []
    assert DEFAULT_MODEL in store.available_names()
    model = store.get(DEFAULT_MODEL)
    assert model.onnx_path.is_file()
    assert store.installed_names() == [DEFAULT_MODEL]


def test_corrupt_onnx_is_refused(store_copy: ModelStore):
    path = store_copy.model_dir(DEFAULT_MODEL) / "model.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match its manifest"):
        store_copy.get(DEFAULT_MODEL)


def test_truncated_onnx_is_refused(store_copy: ModelStore):
    path = store_copy.model_dir(DEFAULT_MODEL) / "model.onnx"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelError, match="corrupt or was replaced"):
        store_copy.get(DEFAULT_MODEL)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda m: m.update(embedding_size=0), "embedding_size"),
        (lambda m: m["input"].update(channel_order="YUV"), "input.channel_order"),
        (lambda m: m["alignment"]["points"].pop("nose"), "alignment.points"),
        (lambda m: m.update(extra_field=1), "extra_field"),
        (lambda m: m["alignment"].update(width=112), "alignment template is 112x150"),
    ],
)
def test_bad_manifest_fields_are_named(store_copy: ModelStore, change, needle):
    path = store_copy.model_dir(DEFAULT_MODEL) / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match=needle):
        store_copy.get(DEFAULT_MODEL)


def test_unknown_model_lists_what_exists(store_copy: ModelStore):
    with pytest.raises(ModelError, match=f"nosuch: no such model .*{DEFAULT_MODEL}"):
        store_copy.get("nosuch")


@pytest.mark.parametrize("name", ["../evil", "UPPER", "", "a" * 70])
def test_bad_names_are_refused(store_copy: ModelStore, name: str):
    with pytest.raises(ModelError, match="not a valid model name"):
        store_copy.get(name)


def test_manifest_roundtrip(default_model):
    again = ModelManifest.model_validate_json(default_model.manifest.dump())
    assert again == default_model.manifest
