"""Real-media test scenes built from tests/media: deterministic (seeded), numpy + cv2 only.

- ``compose_hd_frames``: 1920x1080 frames with 8-12 pasted face photos (faces 40-120 px) and their true boxes.
- ``write_hamilton_canvas`` / ``hamilton_canvas_frames``: the Hamilton clip shrunk onto a large gray canvas.
- ``write_crossing_video``: two real faces crossing (one hides the other), then a hard cut; with ground truth.
- ``compose_logo_photo``: one real person beside matplotlib's logo on a wall (exactly one face).

Face boxes of the source photos were measured once with dlib's HOG detector
(``dlib.get_frontal_face_detector()(rgb, 1)``) and are hardcoded in ``FACE_BOXES``; ground-truth boxes
are those boxes mapped into the composed frame (dlib's convention: tight, square, brow to chin).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

MEDIA = Path(__file__).resolve().parent.parent / "media"
HAMILTON = MEDIA / "short_hamilton_clip.mp4"

#: dlib HOG face boxes (x1, y1, x2, y2) in each source photo, measured with upsample=1.
FACE_BOXES: dict[str, list[tuple[int, int, int, int]]] = {
    "obama.jpg": [(349, 142, 617, 409)],
    "obama2.jpg": [(171, 290, 438, 558)],
    "biden.jpg": [(419, 241, 740, 562)],
    "two_people.jpg": [(253, 47, 408, 202), (778, 57, 964, 242)],  # Obama (left), Biden (right)
    "lin-manuel-miranda.png": [(241, 170, 562, 491)],
    "alex-lacamoire.png": [(184, 150, 339, 305)],
}

#: Margins of a head-and-shoulders patch around the face box, in face widths: left/right, top, bottom.
_SIDE, _TOP, _BOTTOM = 0.6, 0.7, 1.0


def _read(name: str) -> np.ndarray:
    image = cv2.imread(str(MEDIA / name), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(MEDIA / name)
    return image


def head_patch(name: str, face: int = 0, side: float = _SIDE, top: float = _TOP,
               bottom: float = _BOTTOM) -> tuple[np.ndarray, np.ndarray]:
    """A head-and-shoulders crop of a source photo and the face box (4,) float32 inside the crop."""
    image = _read(name)
    h, w = image.shape[:2]
    x1, y1, x2, y2 = FACE_BOXES[name][face]
    fw = x2 - x1
    cx1, cy1 = max(0, int(x1 - side * fw)), max(0, int(y1 - top * fw))
    cx2, cy2 = min(w, int(x2 + side * fw)), min(h, int(y2 + bottom * fw))
    crop = image[cy1:cy2, cx1:cx2].copy()
    return crop, np.array([x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1], np.float32)


def _scaled_patch(name: str, face: int, face_px: float, side: float = _SIDE) -> tuple[np.ndarray, np.ndarray]:
    crop, box = head_patch(name, face, side=side)
    s = face_px / float(box[2] - box[0])
    size = (max(1, round(crop.shape[1] * s)), max(1, round(crop.shape[0] * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    scaled = cv2.resize(crop, size, interpolation=interp)
    return scaled, box * np.float32(s)


def textured_background(width: int, height: int, rng: np.random.Generator, base: tuple[int, int, int] | None = None,
                        noise: float = 5.0) -> np.ndarray:
    """A non-uniform BGR background: a smooth colour field (a coarse random grid, upscaled and blurred),
    a linear gradient, and fine sensor-like noise."""
    base_c = np.array(base if base is not None else rng.integers(60, 190, 3), np.float32)
    # Mostly brightness variation (shared by the channels), a little colour variation.
    grid = (base_c + rng.normal(0, 26, (6, 10, 1)) + rng.normal(0, 7, (6, 10, 3))).astype(np.float32)
    field = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    k = (max(width, height) // 8) | 1
    field = cv2.GaussianBlur(field, (k, k), 0)
    gy = np.linspace(-18, 18, height, dtype=np.float32)[:, None, None]
    gx = np.linspace(-10, 10, width, dtype=np.float32)[None, :, None]
    field = field + gy * rng.uniform(-1, 1) + gx * rng.uniform(-1, 1)
    field = field + rng.normal(0, noise, (height, width, 3)).astype(np.float32)
    return np.clip(field, 0, 255).astype(np.uint8)


def _sources() -> list[tuple[str, int]]:
    return [(name, i) for name, boxes in FACE_BOXES.items() for i in range(len(boxes))]


def compose_hd_frames(n: int = 6, seed: int = 0, size: tuple[int, int] = (1920, 1080)
                      ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` BGR frames of ``size`` (width, height), each with 8-12 non-overlapping head-and-shoulders
    photo patches whose faces are 40-120 px wide, on a textured background.

    Returns per frame ``(image, boxes)``: boxes (K, 4) float32 xyxy true face boxes in frame pixels.
    """
    width, height = size
    rng = np.random.default_rng(seed)
    sources = _sources()
    frames: list[tuple[np.ndarray, np.ndarray]] = []
    for _ in range(n):
        image = textured_background(width, height, rng)
        wanted = int(rng.integers(8, 13))
        placed: list[tuple[int, int, int, int]] = []
        boxes: list[np.ndarray] = []
        attempts = 0
        while len(boxes) < wanted and attempts < 2000:
            attempts += 1
            name, face = sources[int(rng.integers(len(sources)))]
            face_px = float(rng.uniform(40, 120))
            patch, box = _scaled_patch(name, face, face_px)
            if rng.random() < 0.5:
                patch = patch[:, ::-1].copy()
                box = np.array([patch.shape[1] - box[2], box[1], patch.shape[1] - box[0], box[3]], np.float32)
            ph, pw = patch.shape[:2]
            if pw >= width or ph >= height:
                continue
            x, y = int(rng.integers(0, width - pw)), int(rng.integers(0, height - ph))
            gap = 8
            if any(x < bx2 + gap and bx1 < x + pw + gap and y < by2 + gap and by1 < y + ph + gap
                   for bx1, by1, bx2, by2 in placed):
                continue
            # Slight exposure change per photo so copies of one source are not identical.
            gain = float(rng.uniform(0.85, 1.15))
            image[y:y + ph, x:x + pw] = np.clip(patch.astype(np.float32) * gain, 0, 255).astype(np.uint8)
            placed.append((x, y, x + pw, y + ph))
            boxes.append(box + np.array([x, y, x, y], np.float32))
        frames.append((image, np.array(boxes, np.float32).reshape(-1, 4)))
    return frames


# -- the Hamilton clip on a large canvas --------------------------------------------------------------

def _canvas_base(size: tuple[int, int]) -> np.ndarray:
    width, height = size
    rng = np.random.default_rng(12345)
    return textured_background(width, height, rng, base=(118, 122, 120), noise=3.0)


def _place_on_canvas(frame: np.ndarray, scale: float, canvas: np.ndarray) -> np.ndarray:
    height, width = canvas.shape[:2]
    small = cv2.resize(frame, (round(frame.shape[1] * scale), round(frame.shape[0] * scale)),
                       interpolation=cv2.INTER_AREA)
    sh, sw = small.shape[:2]
    # Fixed, off-centre: 70% across the free width, 30% down the free height.
    x, y = int(0.7 * (width - sw)), int(0.3 * (height - sh))
    out = canvas.copy()
    out[y:y + sh, x:x + sw] = small
    return out


def canvas_offset(scale: float, size: tuple[int, int] = (1920, 1080), clip: tuple[int, int] = (640, 360)
                  ) -> tuple[int, int]:
    """(x, y) of the shrunk clip's top-left corner on the canvas."""
    sw, sh = round(clip[0] * scale), round(clip[1] * scale)
    return int(0.7 * (size[0] - sw)), int(0.3 * (size[1] - sh))


def clip_frames(every: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, frame)`` for every ``every``-th frame of the Hamilton clip."""
    cap = cv2.VideoCapture(str(HAMILTON))
    try:
        index = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if index % every == 0:
                yield index, frame
            index += 1
    finally:
        cap.release()


def hamilton_canvas_frames(scale: float, every: int = 10, size: tuple[int, int] = (1920, 1080)
                           ) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, frame)`` for every ``every``-th clip frame, shrunk by ``scale`` onto the canvas."""
    canvas = _canvas_base(size)
    for index, frame in clip_frames(every):
        yield index, _place_on_canvas(frame, scale, canvas)


def write_hamilton_canvas(path: str | Path, scale: float, size: tuple[int, int] = (1920, 1080)) -> Path:
    """Write the whole clip, each frame shrunk by ``scale`` onto a ``size`` gray canvas, as mp4v at its fps."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cap = cv2.VideoCapture(str(HAMILTON))
    fps = cap.get(cv2.CAP_PROP_FPS) or 29.97
    cap.release()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise OSError(f"cannot write {path}")
    try:
        for _, frame in hamilton_canvas_frames(scale, every=1, size=size):
            writer.write(frame)
    finally:
        writer.release()
    return path


# -- two faces crossing, then a hard cut ------------------------------------------------------------

LIN, OBAMA = "lin-manuel-miranda", "obama"


def _paste(image: np.ndarray, patch: np.ndarray, x: int, y: int) -> tuple[int, int, int, int]:
    """Paste ``patch`` with its top-left at (x, y), clipped to the image; returns the pasted rect."""
    h, w = image.shape[:2]
    ph, pw = patch.shape[:2]
    x1, y1, x2, y2 = max(0, x), max(0, y), min(w, x + pw), min(h, y + ph)
    if x2 > x1 and y2 > y1:
        image[y1:y2, x1:x2] = patch[y1 - y:y2 - y, x1 - x:x2 - x]
    return x1, y1, x2, y2


def _visible_fraction(box: np.ndarray, cover: tuple[int, int, int, int] | None, size: tuple[int, int]) -> float:
    x1, y1 = max(box[0], 0.0), max(box[1], 0.0)
    x2, y2 = min(box[2], float(size[0])), min(box[3], float(size[1]))
    area = float((box[2] - box[0]) * (box[3] - box[1]))
    inside = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    if cover is not None:
        ix = max(0.0, min(x2, cover[2]) - max(x1, cover[0]))
        iy = max(0.0, min(y2, cover[3]) - max(y1, cover[1]))
        inside -= ix * iy
    return max(0.0, inside) / area if area > 0 else 0.0


def write_crossing_video(path: str | Path, size: tuple[int, int] = (1280, 720), fps: float = 25) -> dict[str, Any]:
    """Write a 120-frame mp4v clip: Lin-Manuel Miranda (from the left) and Obama (from the right) walk toward
    each other; Obama passes in front (drawn last; faces overlap for ~15 frames, Lin's face fully hidden for a
    few), both go on past each other; at ``cut_frame`` = 80 a hard cut to a new background with both at new
    sizes and swapped sides (Lin, who ended on the right, starts on the left again), drifting for 40 frames.

    Returns ``{"fps", "frames", "cut_frame", "size", "boxes": {i: {"lin-manuel-miranda": xyxy | None,
    "obama": xyxy | None}}, "visible": {i: {name: fraction of the face box visible}}}``; a box is a list
    of 4 floats, None when the face is fully hidden (or out of frame).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    frames, cut = 120, 80
    rng = np.random.default_rng(7)
    bg1 = textured_background(width, height, rng, base=(150, 140, 120))
    bg2 = textured_background(width, height, rng, base=(70, 95, 130))
    lin1, lin1_box = _scaled_patch("lin-manuel-miranda.png", 0, 126)
    oba1, oba1_box = _scaled_patch("obama.jpg", 0, 122)
    lin2, lin2_box = _scaled_patch("lin-manuel-miranda.png", 0, 140)
    oba2, oba2_box = _scaled_patch("obama.jpg", 0, 112)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), size)
    if not writer.isOpened():
        raise OSError(f"cannot write {path}")
    boxes: dict[int, dict[str, list[float] | None]] = {}
    visible: dict[int, dict[str, float]] = {}
    face_y = 0.28 * height  # top of the face boxes
    try:
        for i in range(frames):
            if i < cut:
                image = bg1.copy()
                t = i
                # Face centres: Lin 300 -> ~960, Obama 980 -> ~320 (8.3 px/frame each): they meet near frame 41.
                lin_cx, oba_cx = 300 + 8.3 * t, 980 - 8.3 * t
                back, back_box, back_cx = lin1, lin1_box, lin_cx
                front, front_box, front_cx = oba1, oba1_box, oba_cx
            else:
                image = bg2.copy()
                t = i - cut
                lin_cx, oba_cx = 330 + 2.5 * t, 930 - 2.5 * t
                back, back_box, back_cx = lin2, lin2_box, lin_cx
                front, front_box, front_cx = oba2, oba2_box, oba_cx
            bob = 4.0 * np.sin(i / 6.0)
            placed = []
            for patch, box, cx in ((back, back_box, back_cx), (front, front_box, front_cx)):
                x = round(cx - (box[0] + box[2]) / 2)
                y = round(face_y + bob - box[1])
                rect = _paste(image, patch, x, y)
                placed.append((box + np.array([x, y, x, y], np.float32), rect))
            (lin_box, _), (oba_box, oba_rect) = placed
            lin_vis = _visible_fraction(lin_box, oba_rect, size)
            oba_vis = _visible_fraction(oba_box, None, size)
            boxes[i] = {LIN: [float(v) for v in lin_box] if lin_vis > 0 else None,
                        OBAMA: [float(v) for v in oba_box] if oba_vis > 0 else None}
            visible[i] = {LIN: round(lin_vis, 3), OBAMA: round(oba_vis, 3)}
            writer.write(image)
    finally:
        writer.release()
    return {"fps": float(fps), "frames": frames, "cut_frame": cut, "size": [width, height],
            "boxes": boxes, "visible": visible}


# -- one person and a logo ------------------------------------------------------------------------

def _matplotlib_logo() -> np.ndarray:
    import importlib.util

    spec = importlib.util.find_spec("matplotlib")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("matplotlib is not installed (it comes with mediapipe)")
    logo_path = Path(spec.origin).parent / "mpl-data" / "sample_data" / "logo2.png"
    logo = cv2.imread(str(logo_path), cv2.IMREAD_UNCHANGED)
    if logo is None:
        raise FileNotFoundError(logo_path)
    return logo


def compose_logo_photo(path: str | Path | None = None) -> np.ndarray:
    """A 1480x832 BGR photo: Obama (obama2.jpg, face ~250 px) on the right in front of a wall on which
    matplotlib's logo hangs large on the left. Exactly one face. Written as PNG when ``path`` is given."""
    width, height = 1480, 832
    rng = np.random.default_rng(3)
    wall = textured_background(width, height, rng, base=(196, 206, 214), noise=3.0)
    # Faint plaster texture: low-contrast blotches.
    blotch = cv2.GaussianBlur(rng.normal(0, 10, (height, width)).astype(np.float32), (0, 0), 6)
    wall = np.clip(wall.astype(np.float32) + blotch[:, :, None], 0, 255).astype(np.uint8)
    logo = _matplotlib_logo()  # (130, 542, 4) BGRA
    s = 780 / logo.shape[1]
    logo = cv2.resize(logo, (780, round(logo.shape[0] * s)), interpolation=cv2.INTER_CUBIC)
    lh, lw = logo.shape[:2]
    lx, ly = 60, 170
    alpha = logo[:, :, 3:4].astype(np.float32) / 255.0
    region = wall[ly:ly + lh, lx:lx + lw].astype(np.float32)
    wall[ly:ly + lh, lx:lx + lw] = (alpha * logo[:, :, :3] + (1 - alpha) * region).astype(np.uint8)
    person, _ = _scaled_patch("obama2.jpg", 0, 250, side=0.45)
    person = person[: height - 120]
    ph, pw = person.shape[:2]
    px, py = width - pw - 90, height - ph
    wall[py:py + ph, px:px + pw] = person
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), wall)
    return wall


def write_looped_clip(path: str | Path, loops: int) -> int:
    """The Hamilton clip ``loops`` times over as one file (a longer real video); returns its frame count."""
    frames = [image for _, image in clip_frames()]
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (w, h))
    for _ in range(loops):
        for image in frames:
            writer.write(image)
    writer.release()
    return loops * len(frames)
