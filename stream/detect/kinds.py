"""The detector kinds ``detector.kind`` names, and each model's facts, known without loading any model.

A new detector adds its facts module and one row here, and its factory in ``registry``.
"""

from __future__ import annotations

from stream.detect.base import DetectorFacts
from stream.detect.blazeface.facts import BLAZEFACE
from stream.detect.dlib.facts import DLIB_HOG

#: kind -> its models' facts; a kind with one model ignores ``detector.model`` (BlazeFace's range).
KINDS: dict[str, dict[str, DetectorFacts]] = {
    "blazeface": BLAZEFACE,
    "dlib-hog": {"hog": DLIB_HOG},
}


def facts_of(kind: str, model: str | None = None) -> DetectorFacts:
    models = KINDS[kind]
    if model in models:
        return models[model]
    return next(iter(models.values())) if len(models) == 1 else models[str(model)]
