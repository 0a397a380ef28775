#!/usr/bin/env python
"""What the motion gate sees: changed pixels of the reduced gray copy under noise, light and a real face.

For each still picture (a Hamilton clip frame, a textured 640x360 background, the 1080p canvas)
and each disturbance, the frame's reduced gray copy (the scene-cut test's) is compared with a
reference of the same picture, as ``stream.detect.motion.moved`` does: the pixels that moved by
more than ``CHANGE_LEVEL`` on average over their 3x3 neighbourhood (raw, and after the change of
light is taken out), and the largest single-pixel move. Compression is real: the still picture
(with fresh sensor noise each frame) is written with OpenCV's mp4v encoder at its default
quality, read back, and every decoded frame compared with the first; and JPEG at several qualities.

    python tools/measure_motion_noise.py
"""

from __future__ import annotations

import sys
import tempfile
from itertools import islice
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stream.detect.motion import CHANGE_LEVEL, MIN_CHANGED, changed_pixels, relit  # noqa: E402
from stream.pipeline.still import gray_copy  # noqa: E402
from stream.track.scene import SceneCutDetector  # noqa: E402
from tests.support.scenes import clip_frames, hamilton_canvas_frames, head_patch, textured_background  # noqa: E402


def gate_gray(image: np.ndarray) -> np.ndarray:
    """The detect worker's copy (the scene-cut test's), which its motion gate compares."""
    scenes = SceneCutDetector()
    scenes.is_cut(image)
    return scenes.gray


#: the copies compared: the detect worker's gate, and the reader's still-frame test (stream/pipeline/still.py)
COPIES = {"gate": gate_gray, "reader": gray_copy}


def noisy(image: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


def lit(image: np.ndarray, gain: float, offset: float) -> np.ndarray:
    return np.clip(image.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


def with_face(image: np.ndarray, face_px: int) -> np.ndarray:
    crop, box = head_patch("obama.jpg")
    s = face_px / float(box[2] - box[0])
    patch = cv2.resize(crop, (round(crop.shape[1] * s), round(crop.shape[0] * s)), interpolation=cv2.INTER_AREA)
    out = image.copy()
    h, w = image.shape[:2]
    y, x = h // 3, w // 2
    out[y:y + patch.shape[0], x:x + patch.shape[1]] = patch[: h - y, : w - x]
    return out


def mp4v_frames(image: np.ndarray, rng: np.random.Generator, count: int = 40) -> list[np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "still.mp4")
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 30, (image.shape[1], image.shape[0]))
        for _ in range(count):
            writer.write(noisy(image, rng, 2.0))
        writer.release()
        cap = cv2.VideoCapture(path)
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
        cap.release()
    return frames


def figures(current: np.ndarray, reference: np.ndarray) -> tuple[int, int, int]:
    fixed = relit(reference, current)
    return changed_pixels(current, reference), changed_pixels(current, fixed), int(np.abs(current - fixed).max())


def main() -> int:
    rng = np.random.default_rng(0)
    pictures = {
        "clip frame 0 (640x360)": next(islice(clip_frames(), 0, None))[1],
        "background (640x360)": textured_background(640, 360, np.random.default_rng(3), noise=3.0),
        "canvas (1920x1080)": next(iter(hamilton_canvas_frames(0.5, every=1)))[1],
    }
    print(f"changed = reduced gray pixels whose 3x3 mean moved by more than {CHANGE_LEVEL} levels "
          f"(motion: >= {MIN_CHANGED}); raw / light taken out / largest move after; for each copy: "
          + ", ".join(COPIES))
    for name, image in pictures.items():
        print(f"\n{name}:")
        rows: dict[str, list[str]] = {}
        for copy, gray in COPIES.items():
            for label, found in disturbances(image, gray, rng):
                raw = max(f[0] for f in found)
                fixed = max(f[1] for f in found)
                top = max(f[2] for f in found)
                if "face" in label:
                    raw, fixed, top = min(f[0] for f in found), min(f[1] for f in found), min(f[2] for f in found)
                rows.setdefault(label, []).append(f"{copy} {raw:>5} / {fixed:>5} / {top:>3}")
        for label, cells in rows.items():
            print(f"  {label:<38} " + "   ".join(cells))
    return 0


def disturbances(image: np.ndarray, gray, rng: np.random.Generator) -> list[tuple[str, list[tuple[int, int, int]]]]:
    """(label, figures of each try) of every disturbance of ``image``, on the copy ``gray`` makes."""
    ref = gray(noisy(image, rng, 2.0))
    rows: list[tuple[str, list[tuple[int, int, int]]]] = []
    for sigma in (2.0, 5.0, 8.0, 12.0):
        rows.append((f"sensor noise sigma {sigma:g}", [figures(gray(noisy(image, rng, sigma)), ref)
                                                      for _ in range(10)]))
    for quality in (30, 50, 70, 90):
        found = []
        for _ in range(5):
            _, jpeg = cv2.imencode(".jpg", noisy(image, rng, 2.0), [cv2.IMWRITE_JPEG_QUALITY, quality])
            found.append(figures(gray(cv2.imdecode(jpeg, cv2.IMREAD_COLOR)), ref))
        rows.append((f"JPEG quality {quality}", found))
    decoded = mp4v_frames(image, rng)
    first = gray(decoded[0])
    rows.append((f"mp4v still, {len(decoded)} frames vs the first", [figures(gray(f), first) for f in decoded[1:]]))
    for gain, offset in ((0.85, 0), (1.15, 0), (1, -20), (1, 20), (1.1, 10)):
        changed = lit(noisy(image, rng, 2.0), gain, offset)
        rows.append((f"light x{gain:g} {offset:+g}", [figures(gray(changed), ref)]))
    for px in (24, 40, 70):
        rows.append((f"a {px} px face appears", [figures(gray(noisy(with_face(image, px), rng, 2.0)), ref)]))
    return rows


if __name__ == "__main__":
    sys.exit(main())
