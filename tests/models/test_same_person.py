"""MediaPipe detection + our alignment + the default model on real photos: people group correctly."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from stream.detect.blazeface.graph import MediaPipeFaceDetector
from stream.detect.config import DetectorConfig
from stream.inference.onnxrt import OnnxRuntimeEngine
from stream.photos import load_face_crops
from tests.conftest import media_path


@pytest.fixture(scope="module")
def embeddings(default_model):
    """name -> embedding; two_people.jpg split into its left (Obama) and right (Biden) faces."""
    faces = {}
    with MediaPipeFaceDetector(DetectorConfig(min_face_px=0)) as det, \
            OnnxRuntimeEngine(default_model.manifest, default_model.onnx_path) as engine:
        for name, file in [("obama", "obama.jpg"), ("obama2", "obama2.jpg"), ("biden", "biden.jpg"),
                           ("lin", "lin-manuel-miranda.png"), ("alex", "alex-lacamoire.png")]:
            crops = load_face_crops([media_path(file)], default_model.manifest, det)
            assert len(crops) == 1, file
            faces[name] = engine.embed(crops)[0]
        from stream.align import FaceAligner
        from stream.images import read_image

        image = read_image(media_path("two_people.jpg"))
        both = FaceAligner.for_model(default_model.manifest).align(image, det.detect(image))
        order = np.argsort(both.xyxy[:, 0])
        emb = engine.embed(both.crops[order])
        faces["two_people_left"], faces["two_people_right"] = emb
    return faces


GROUPS = [{"obama", "obama2", "two_people_left"}, {"biden", "two_people_right"}, {"lin"}, {"alex"}]


@pytest.mark.slow
def test_same_person_closer_than_anyone_else_with_threshold_between(default_model, embeddings):
    manifest = default_model.manifest
    same, different = [], []
    for a, b in itertools.combinations(embeddings, 2):
        d = float(manifest.distances(embeddings[a][None], embeddings[b][None])[0, 0])
        (same if any({a, b} <= g for g in GROUPS) else different).append((d, a, b))
    worst_same, best_different = max(same), min(different)
    assert worst_same[0] < best_different[0], (worst_same, best_different)
    assert worst_same[0] <= manifest.threshold < best_different[0], (worst_same, manifest.threshold, best_different)
