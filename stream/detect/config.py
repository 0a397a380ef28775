"""How faces are detected: the detector's settings and the per-model facts they rest on."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Smallest face each BlazeFace model finds reliably, as a share of the image's long side (it
#: letterboxes to 128 or 192 px). Measured on tests/media photos shrunk onto gray canvases: the
#: full-range model finds faces down to ~0.05, the short-range one down to ~0.12; with margin:
MIN_FACE_SHARE = {"short": 0.15, "full": 0.07}

#: Each model's square input (``blazeface.MODELS``; tested to agree). A tile smaller than this is
#: only magnified, so a face under ``MIN_FACE_SHARE`` of it is below what the model can see at all.
MODEL_INPUT_PX = {"short": 128, "full": 192}


def min_face_floor(model: Literal["short", "full"]) -> int:
    """The smallest ``min_face_px`` worth tiling for: smaller tiles only magnify pixels, at a cost
    that grows with the inverse square (1 px took a 1080p run to 18.9 GB at 0.4 fps)."""
    return math.ceil(MODEL_INPUT_PX[model] * MIN_FACE_SHARE[model])


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
                    "found (smaller = more tiles per scan); at least 14 (full) or 20 (short), what the model "
                    "sees in its input; 0: no tiles and no size filter",
    )
    max_tiles: int = Field(
        default=2000, ge=1, le=100_000,
        description="most tiles one scan of a frame may need (the plan for the largest live frame is checked "
                    "at start; larger photos and files are scanned in coarser tiles)",
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

    @field_validator("min_face_px")
    @classmethod
    def _visible(cls, value: int, info) -> int:
        model = info.data.get("model")
        if model is None:  # the model's own error is reported instead
            return value
        floor = min_face_floor(model)
        if 0 < value < floor:
            raise ValueError(f"the {model}-range model cannot see faces under {floor} px (its {MODEL_INPUT_PX[model]}"
                             f" px input): use at least {floor}, or 0 for one whole-frame pass")
        return value


def scan_tile_count(config: DetectorConfig, width: int, height: int, min_face_px: int | None = None) -> int:
    """Tiles one full scan of a ``width`` x ``height`` frame takes under ``config``."""
    if config.tiling == "off":
        return 1
    from stream.detect.tiles import plan_tiles

    px = config.min_face_px if min_face_px is None else min_face_px
    return len(plan_tiles(width, height, px, MIN_FACE_SHARE[config.model]))


def fitting_min_face_px(config: DetectorConfig, width: int, height: int) -> int:
    """The smallest ``min_face_px`` (not below the configured one) whose plan fits ``max_tiles``."""
    low, high = max(1, config.min_face_px), max(1, config.min_face_px)
    while scan_tile_count(config, width, height, high) > config.max_tiles:
        low, high = high, high * 2
    # The count falls as min_face_px grows (larger tiles): bisect for the first that fits.
    while low < high:
        mid = (low + high) // 2
        if scan_tile_count(config, width, height, mid) > config.max_tiles:
            low = mid + 1
        else:
            high = mid
    return high


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
