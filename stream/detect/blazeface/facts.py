"""BlazeFace's per-model facts: measured or fixed by MediaPipe, read by the config without loading a model."""

from __future__ import annotations

import math

from stream.detect.base import DetectorFacts
from stream.faces import MEDIAPIPE_FACE

#: Smallest face each BlazeFace model finds reliably, as a share of the image's long side (it
#: letterboxes to 128 or 192 px). Measured on tests/media photos shrunk onto gray canvases: the
#: full-range model finds faces down to ~0.05, the short-range one down to ~0.12; with margin:
MIN_FACE_SHARE = {"short": 0.15, "full": 0.07}

#: Each model's square input (``network.MODELS``; tested to agree). A tile smaller than this is
#: only magnified, so a face under ``MIN_FACE_SHARE`` of it is below what the model can see at all.
MODEL_INPUT_PX = {"short": 128, "full": 192}

#: MediaPipe's score threshold per model: its face-detection graphs fix these (they ignore the
#: solution's ``min_detection_confidence``; measured: no full-range face below 0.60 at any setting).
DEFAULT_MIN_SCORE = {"short": 0.5, "full": 0.6}

#: A closer look's cell: a 40 px face is upscaled to ~64 px, a quarter of a 2x2 mosaic's side,
#: where the model is surest.
LOOK_CELL_PX = 128

BLAZEFACE = {
    model: DetectorFacts(
        name=f"blazeface-{model}", input_px=MODEL_INPUT_PX[model], min_face_share=MIN_FACE_SHARE[model],
        smallest_face_px=math.ceil(MODEL_INPUT_PX[model] * MIN_FACE_SHARE[model]),
        default_min_score=DEFAULT_MIN_SCORE[model], look_cell_px=LOOK_CELL_PX, layout=MEDIAPIPE_FACE)
    for model in ("short", "full")
}
