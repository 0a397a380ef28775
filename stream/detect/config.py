"""How faces are detected: the detector's settings and the per-model facts they rest on."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: Smallest face each BlazeFace model finds reliably, as a share of the image's long side (it
#: letterboxes to 128 or 192 px). Measured on tests/media photos shrunk onto gray canvases: the
#: full-range model finds faces down to ~0.05, the short-range one down to ~0.12; with margin:
MIN_FACE_SHARE = {"short": 0.15, "full": 0.07}


class DetectorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, defer_build=True)

    model: Literal["short", "full"] = Field(
        default="full",
        description="full: BlazeFace full-range, faces near and far; short: faces within ~2 m only, and on "
                    "large frames it misses most faces and finds some that are not",
    )
    runtime: Literal["onnx", "mediapipe"] = Field(
        default="onnx",
        description="onnx: MediaPipe's BlazeFace weights converted to ONNX, tiles batched on ONNX Runtime "
                    "(the graph's faces, box IoU > 0.99; 22-29% less detector CPU per frame); mediapipe: "
                    "MediaPipe's own face-detection graph, one call per image",
    )
    min_confidence: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="detector score threshold; default: the model's own (short 0.5, full 0.6, the values "
                    "MediaPipe's graphs fix). The mediapipe runtime can only raise it",
    )
    min_face_px: int = Field(
        default=24, ge=0, le=4096,
        description="faces narrower than this (pixels) are ignored; tiles are sized so faces this small are "
                    "found (smaller = more tiles per scan)",
    )
    tiling: Literal["auto", "off"] = Field(
        default="auto",
        description="auto: scan frames too large for min_face_px in overlapping tiles; off: one whole-frame pass",
    )
    scan_every: int = Field(
        default=10, ge=1, le=1000,
        description="video: frames over which the full tiled scan is spread (tracked faces are refined every "
                    "frame; a scene cut or an empty frame scans at once)",
    )
    skip_still_tiles: bool = Field(
        default=True,
        description="video: a tile of the scan is skipped while nothing in it changed since its last scan "
                    "(rescanned anyway after 4 x scan_every frames); a fixed camera's still background "
                    "then costs nothing",
    )
    closer_look_model: Literal["short", "full", "both"] = Field(
        default="both",
        description="model for the closer looks at tracks and candidates. both: short-range first (1.6x "
                    "faster, best on the Hamilton clip), full-range for the regions where it found nothing "
                    "(short alone refinds 23 of 31 true faces of composed 1080p frames, full all 31)",
    )
    verify: bool = Field(
        default=True,
        description="a new face from the scan must be found again on a closer look at its region (fewer "
                    "false faces for one extra detector call on frames with new candidates)",
    )


#: MediaPipe's score threshold per model: its face-detection graphs fix these (they ignore the
#: solution's ``min_detection_confidence``; measured: no full-range face below 0.60 at any setting).
DEFAULT_MIN_SCORE = {"short": 0.5, "full": 0.6}


def min_score(config: DetectorConfig, model: Literal["short", "full"]) -> float:
    """The score a detection of ``model`` needs under ``config``."""
    return DEFAULT_MIN_SCORE[model] if config.min_confidence is None else config.min_confidence


def single_pass_detector(config: DetectorConfig, model: Literal["short", "full"] | None = None):
    """One BlazeFace pass (``detect``/``detect_many``) on the configured runtime."""
    if config.runtime == "mediapipe":
        from stream.detect.mediapipe_detector import MediaPipeFaceDetector

        return MediaPipeFaceDetector(config, model=model)
    from stream.detect.blazeface import BlazeFaceOnnxDetector

    return BlazeFaceOnnxDetector(config, model=model)
