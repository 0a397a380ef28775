"""How faces are detected: the detector's settings, and the tile counts they lead to."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stream.detect.kinds import facts_of


class DetectorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, defer_build=True)

    kind: Literal["blazeface", "dlib-hog"] = Field(
        default="blazeface",
        description="blazeface: MediaPipe's BlazeFace (model, runtime and closer_look_model choose how); "
                    "dlib-hog: dlib's HOG detector with 5-point landmarks, at the image's own resolution "
                    "(faces from ~40 px; CPU only; pip install 'facestream[detect-dlib]')",
    )
    model: Literal["short", "full"] = Field(
        default="full",
        description="full: BlazeFace full-range, faces near and far; short: BlazeFace short-range, faces "
                    "within ~2 m of the camera only",
    )
    runtime: Literal["onnx", "tensorrt", "mediapipe"] = Field(
        default="onnx",
        description="onnx: MediaPipe's BlazeFace weights converted to ONNX, tiles batched on ONNX Runtime "
                    "(the same faces as the graph, for less CPU); mediapipe: "
                    "MediaPipe's own face-detection graph, one call per image; tensorrt: the ONNX network "
                    "on TensorRT (an NVIDIA GPU; its engine is built once per GPU, into the engines dir)",
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
    motion_gate: bool = Field(
        default=True,
        description="video: a frame in which nothing moved since the last whole scan, while no track is open, "
                    "skips the detector and all that follows it (an idle camera costs little more than its "
                    "decode); false: every frame goes to the detector",
    )
    idle_rescan_s: float = Field(
        default=10.0, gt=0.0, le=3600.0,
        description="video, with motion_gate: seconds of stream after which a still picture is scanned anyway: "
                    "the tiles that changed at all since their own last scan (light, a slow drift) and where a "
                    "track was lost (its face, if still in view, is found again within this time)",
    )
    idle_full_rescan_s: float = Field(
        default=120.0, gt=0.0, le=86400.0,
        description="video, with motion_gate: seconds of stream after which every tile of a still picture is "
                    "scanned again, changed or not (one whole scan: ~7 tile looks at 640x360, 35 at 1080p; "
                    "the same pixels give the same answer, so this only catches a face at the edge of the "
                    "detector's threshold)",
    )
    closer_look_model: Literal["short", "full", "both"] = Field(
        default="both",
        description="model for the closer looks at tracks and candidates. both: short-range first (the "
                    "faster one), full-range for the regions where it found nothing; short or full: that "
                    "model alone",
    )
    verify: bool = Field(
        default=True,
        description="a new face from the scan must be found again on a closer look at its region (fewer "
                    "false faces for one extra detector call on frames with new candidates)",
    )

    @field_validator("min_face_px")
    @classmethod
    def _visible(cls, value: int, info) -> int:
        kind, model = info.data.get("kind"), info.data.get("model")
        if kind is None or model is None:  # their own errors are reported instead
            return value
        facts = facts_of(kind, model)
        # Tiles smaller than the network's input only magnify pixels, at a cost that grows with the
        # inverse square (1 px took a 1080p run to 18.9 GB at 0.4 fps). A detector at the image's
        # own resolution has no tiles: there min_face_px is only a size filter.
        floor = facts.smallest_face_px
        if facts.input_px is not None and 0 < value < floor:
            raise ValueError(f"the {model}-range model cannot see faces under {floor} px (its {facts.input_px}"
                             f" px input): use at least {floor}, or 0 for one whole-frame pass")
        return value


def scan_tile_count(config: DetectorConfig, width: int, height: int, min_face_px: int | None = None) -> int:
    """Tiles one full scan of a ``width`` x ``height`` frame takes under ``config``."""
    if config.tiling == "off":
        return 1
    from stream.detect.tiles import plan_tiles

    px = config.min_face_px if min_face_px is None else min_face_px
    return len(plan_tiles(width, height, px, facts_of(config.kind, config.model).min_face_share))


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
