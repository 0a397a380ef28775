"""Face detection: MediaPipe BlazeFace, offline from the installed package, tiled for large frames."""

from stream.detect.config import DetectorConfig
from stream.detect.scan import FaceDetector

__all__ = ["DetectorConfig", "FaceDetector"]
