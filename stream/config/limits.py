"""Bounds on combinations of settings that are each valid alone but together exhaust memory or compute.

A field's own range catches ``min_face_px: -1``; only the whole config knows that a small
``min_face_px`` on the largest live frame needs thousands of tiles per scan, or that many frame
slots of that frame take tens of GiB of shared memory per camera.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stream.detect.config import fitting_min_face_px, scan_tile_count

if TYPE_CHECKING:
    from stream.config.schema import AppConfig

#: Shared memory one live camera's frame ring may take: 12 slots of 8192x8192 (the largest frame
#: the schema allows) are 2.3 GiB; 256 slots of them were 48 GiB.
MAX_RING_GIB = 4.0


class SettingError(ValueError):
    """A bound broken by the setting at ``loc`` (a dotted config path), so the error can show its line."""

    def __init__(self, loc: tuple[str, ...], message: str) -> None:
        super().__init__(f"{'.'.join(loc)}: {message}")
        self.loc = loc
        self.message = message


def check_limits(config: AppConfig) -> None:
    """Raise ``SettingError`` for the first combination of settings over a bound."""
    _check_tiles(config)
    _check_ring(config)


def _check_tiles(config: AppConfig) -> None:
    det, pc = config.detector, config.pipeline
    width, height = pc.max_frame_width, pc.max_frame_height
    count = scan_tile_count(det, width, height)
    if count <= det.max_tiles:
        return
    fits = fitting_min_face_px(det, width, height)
    raise SettingError(
        ("detector", "min_face_px"),
        f"{det.min_face_px} px faces need {count} tiles to scan a {width}x{height} frame (the {det.model}-range "
        f"model; pipeline.max_frame_width x max_frame_height), over detector.max_tiles {det.max_tiles}: use at "
        f"least {fits} (got {det.min_face_px!r})",
    )


def _check_ring(config: AppConfig) -> None:
    pc = config.pipeline
    gib = pc.frame_slots * pc.max_frame_width * pc.max_frame_height * 3 / 2**30
    if gib <= MAX_RING_GIB:
        return
    raise SettingError(
        ("pipeline", "frame_slots"),
        f"{pc.frame_slots} slots of {pc.max_frame_width}x{pc.max_frame_height} frames take {gib:.1f} GiB of "
        f"shared memory per live camera, over {MAX_RING_GIB:g} GiB: fewer slots or a smaller max_frame_width/"
        f"max_frame_height (got {pc.frame_slots!r})",
    )
