#!/usr/bin/env python
"""Measure the default model's alignment template: where MediaPipe's keypoints fall on dlib's chips.

dlib's face ResNet expects the 150x150 chip made by ``dlib.get_face_chip(img, shape5, size=150,
padding=0.25)``. Our aligner warps MediaPipe's keypoints (eye centres, nose tip, mouth centre) to
the manifest's template, so the template must say where those keypoints land on dlib's own chips.
For each face in tests/media this makes dlib's chip with padding 1.0 at 300 px (the same scale
and centre, with context around the face for MediaPipe), runs MediaPipe on it, and shifts the
keypoints into the 150 px chip. Prints the mean and spread; the constants in
``stream/models/dlib_resnet.py`` are these means made left-right symmetric.

Needs dlib (``pip install dlib-bin``, in the test extra).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MEDIA = Path(os.environ.get("FACESTREAM_MEDIA", REPO / "tests" / "media"))
PHOTOS = ["obama.jpg", "obama2.jpg", "biden.jpg", "two_people.jpg", "lin-manuel-miranda.png", "alex-lacamoire.png"]


def main() -> int:
    import dlib

    from stream.detect.blazeface.graph import MediaPipeFaceDetector
    from stream.detect.config import DetectorConfig
    from stream.models.dlib_resnet import package_weights

    models = package_weights().parent
    detector = dlib.get_frontal_face_detector()
    shape5 = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    points = []
    with MediaPipeFaceDetector(DetectorConfig(min_face_px=0, min_confidence=0.3)) as mp:
        for name in PHOTOS:
            image = dlib.load_rgb_image(str(MEDIA / name))
            for rect in detector(image, 1):
                shape = shape5(image, rect)
                # padding 1.0 at 300 px has the same 100 px per face unit as padding 0.25 at 150 px,
                # and the same centre: the 150 px chip is its central crop [75:225, 75:225].
                wide = dlib.get_face_chip(image, shape, size=300, padding=1.0)
                faces = mp.detect(cv2.cvtColor(wide, cv2.COLOR_RGB2BGR))
                if len(faces) != 1:
                    print(f"{name}: MediaPipe found {len(faces)} faces on the chip; skipped")
                    continue
                points.append(faces.keypoints[0, :4] - 75.0)
    pts = np.array(points)
    names = ["left_eye (image left)", "right_eye", "nose_tip", "mouth_centre"]
    print(f"{len(pts)} faces; keypoints in dlib's 150x150 chip (x, y) mean +- std:")
    for i, n in enumerate(names):
        m, s = pts[:, i].mean(0), pts[:, i].std(0)
        print(f"  {n:22} ({m[0]:6.1f}, {m[1]:6.1f})  +- ({s[0]:.1f}, {s[1]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
