"""Write a calibrated threshold into a model's manifest in the store (``eval --save-threshold``).

Only ``manifest.json`` is rewritten, atomically and under the store's lock; the ONNX file (and so
its sha256 and every TensorRT engine built from it) is untouched. ``run`` then uses the new
threshold unless ``model.threshold`` is set in its config.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from stream.errors import FacestreamError
from stream.models.manifest import ModelManifest, ThresholdCalibration
from stream.models.store import ModelStore, _atomic_write

log = logging.getLogger(__name__)


def save_threshold(store: ModelStore, name: str, threshold: float, dataset: str, pairs: int,
                   accuracy: float) -> ModelManifest:
    if not threshold > 0:
        raise FacestreamError(f"{name}: calibrated threshold {threshold:.4g} is not positive; not saved "
                              "(the dataset's pairs do not separate)")
    with store._lock():
        path = store.model_dir(name) / "manifest.json"
        current = ModelManifest.load(path)
        calibration = ThresholdCalibration(
            dataset=dataset, pairs=pairs, accuracy=accuracy, previous_threshold=current.threshold,
            date=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        # Validate through the strict model (not model_copy, which skips validation).
        updated = ModelManifest.model_validate(
            {**current.model_dump(), "threshold": float(threshold), "threshold_calibration": calibration.model_dump()})
        _atomic_write(path, updated.dump())
    log.info("%s: threshold %.4f -> %.4f (%s, %d pairs)", name, current.threshold, threshold, dataset, pairs)
    return updated
