"""A folder-per-identity verification set from tests/media: the photos plus Hamilton track crops.

Who is where in the clip was labelled by looking at the frames (see tests/media/README.md):
Alex Lacamoire is the close-up profile of frames ~24-36 and the profile at x > 230 px of frames
~76-84; Lin-Manuel Miranda the only face of frames 90-210; Barack Obama the audience face at
x 300-345 px, y < 75 px of frames 215-274. Each clip sample is the whole frame when the detector's
largest face in it is that face, else a head patch around the face when that works, else left out.
Two frames where Alex is on screen but no face is found (20 and 40) go in whole: eval must report
them as ``faces_missing``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

from tests.support.scenes import MEDIA, clip_frames

PHOTOS = {
    "lin-manuel-miranda": ["lin-manuel-miranda.png"],
    "alex-lacamoire": ["alex-lacamoire.png"],
    "obama": ["obama.jpg", "obama2.jpg"],
    "biden": ["biden.jpg", "two_people.jpg"],  # two_people: Biden's is the larger face
}
NO_FACE_FRAMES = {20: "alex-lacamoire", 40: "alex-lacamoire"}


def _who(frame: int, box: np.ndarray) -> str | None:
    x1, y1 = float(box[0]), float(box[1])
    if 24 <= frame <= 36:
        return "alex-lacamoire"
    if 76 <= frame <= 84 and x1 > 230:
        return "alex-lacamoire"
    if 90 <= frame <= 210:
        return "lin-manuel-miranda"
    if 215 <= frame <= 274 and 300 <= x1 <= 345 and y1 < 75:
        return "obama"
    return None


def _patch(frame: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = frame.shape[:2]
    x1, y1, x2, y2 = box
    fw = x2 - x1
    cx1, cy1 = int(max(0, x1 - 1.0 * fw)), int(max(0, y1 - 1.0 * fw))
    cx2, cy2 = int(min(w, x2 + 1.0 * fw)), int(min(h, y2 + 1.2 * fw))
    return frame[cy1:cy2, cx1:cx2].copy(), np.array([x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def build_eval_dataset(root: Path, every: int = 10, frames: tuple[int, int] = (0, 275)) -> dict[str, int]:
    """Write ``root/<identity>/*`` and return images per identity (clip samples every ``every`` frames)."""
    from stream.detect import FaceDetector
    from stream.photos import choose_face

    root = Path(root)
    counts: dict[str, int] = {}
    for name, files in PHOTOS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for file in files:
            shutil.copyfile(MEDIA / file, root / name / file)
            counts[name] = counts.get(name, 0) + 1
    with FaceDetector() as detector:
        for index, frame in clip_frames(1):
            if not frames[0] <= index < frames[1]:
                continue
            if index in NO_FACE_FRAMES:
                cv2.imwrite(str(root / NO_FACE_FRAMES[index] / f"clip-{index:03d}.png"), frame)
                counts[NO_FACE_FRAMES[index]] += 1
                continue
            if index % every:
                continue
            faces = detector.detect(frame)
            for box in faces.xyxy:
                name = _who(index, box)
                if name is None:
                    continue
                # The whole frame when it is judged by this face, else a head patch around it.
                for image, expected in ((frame, box), _patch(frame, box)):
                    found = detector.detect(image)
                    chosen = choose_face(found, image.shape, "largest")
                    if chosen is not None and _iou(found.xyxy[chosen], expected) >= 0.5:
                        cv2.imwrite(str(root / name / f"clip-{index:03d}.png"), image)
                        counts[name] += 1
                        break
    return counts
