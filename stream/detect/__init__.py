"""Face detection: a detector interface (``base``), the kinds ``detector.kind`` names (``kinds``,
``registry``), BlazeFace (the default) and dlib's HOG behind it, and the tiled scan over any of them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stream.detect.config import DetectorConfig
    from stream.detect.scan import FaceDetector

__all__ = ["DetectorConfig", "FaceDetector"]

# Resolved on first use: the config schema needs DetectorConfig in every process, and importing the
# detector with it would load OpenCV and the scan code into processes that never detect.
_HOMES = {"DetectorConfig": "stream.detect.config", "FaceDetector": "stream.detect.scan"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
