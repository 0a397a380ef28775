"""Builds the single-pass detector ``detector.kind`` names (``kinds`` holds what each one is).

Each factory imports its detector on first use, so a process that only reads the config never
loads OpenCV, ONNX Runtime or dlib.
"""

from __future__ import annotations

from collections.abc import Callable

from stream.detect.base import SinglePassDetector
from stream.detect.config import DetectorConfig


def _blazeface(config: DetectorConfig, model: str | None) -> SinglePassDetector:
    if config.runtime == "mediapipe":
        from stream.detect.blazeface.graph import MediaPipeFaceDetector

        return MediaPipeFaceDetector(config, model=model)  # type: ignore[arg-type]
    from stream.detect.blazeface.network import BlazeFaceOnnxDetector

    return BlazeFaceOnnxDetector(config, model=model)  # type: ignore[arg-type]


def _dlib_hog(config: DetectorConfig, model: str | None) -> SinglePassDetector:
    from stream.detect.dlib.hog import DlibHogDetector

    return DlibHogDetector(config)


FACTORIES: dict[str, Callable[[DetectorConfig, str | None], SinglePassDetector]] = {
    "blazeface": _blazeface,
    "dlib-hog": _dlib_hog,
}


def single_pass_detector(config: DetectorConfig, model: str | None = None) -> SinglePassDetector:
    """One pass of the configured detector over whole images (``detect``/``detect_many``);
    ``model``: another of the kind's models than the configured one (BlazeFace's other range)."""
    return FACTORIES[config.kind](config, model)


def look_models(config: DetectorConfig) -> list[str]:
    """The models of the closer looks, in order: the first one's misses get a look by the next."""
    if config.kind != "blazeface":
        return [config.model]  # one model: the scan's own
    return {"short": ["short"], "full": ["full"], "both": ["short", "full"]}[config.closer_look_model]
