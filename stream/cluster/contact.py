"""Contact sheet: a grid of crops in one PNG, to see at a glance whether a cluster is one person."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from stream.cvpath import opencv_path
from stream.errors import FacestreamError
from stream.images import read_image


def contact_sheet(images: list[np.ndarray], cell: int = 112, columns: int = 8, pad: int = 2) -> np.ndarray:
    """BGR grid of ``images`` resized to ``cell`` px squares; black where the last row is short."""
    if not images:
        return np.zeros((cell, cell, 3), np.uint8)
    cols = min(columns, len(images))
    rows = math.ceil(len(images) / cols)
    step = cell + pad
    sheet = np.zeros((rows * step + pad, cols * step + pad, 3), np.uint8)
    for k, img in enumerate(images):
        r, c = divmod(k, cols)
        y, x = pad + r * step, pad + c * step
        sheet[y:y + cell, x:x + cell] = cv2.resize(img, (cell, cell), interpolation=cv2.INTER_AREA)
    return sheet


def write_contact_sheet(paths: list[Path], out: Path, **kwargs) -> None:
    images = []
    for path in paths:
        try:
            images.append(read_image(path))
        except FacestreamError:  # a crop that cannot be read leaves its cell out, as before
            continue
    if not cv2.imwrite(opencv_path(out), contact_sheet(images, **kwargs)):
        raise OSError(f"{out}: cannot write the contact sheet")
