"""Photos whose pixels are out of proportion to their files, made without holding their pixels.

``flat_png`` writes a PNG of ``width`` x ``height`` pixels of one colour in pure Python: a 1-bit
greyscale image, its rows of zeros streamed through zlib one at a time, so 30000x30000 pixels take
3.75 KB per row while being written and ~110 KB on disk (``cv2.imwrite`` of the same image would
first need its 2.7 GB array). Decoded by OpenCV as colour it is 2.7 GB: what the pixel budget is for.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def flat_png(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit greyscale PNG of ``width`` x ``height`` black pixels."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte 0 (none), then the packed bits
    deflate = zlib.compressobj(9)
    parts = [deflate.compress(row) for _ in range(height)]
    parts.append(deflate.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, greyscale, deflate, no interlace
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(parts))
                     + _chunk(b"IEND", b""))
    return path


def large_jpeg(path: Path, photo: Path, side: int = 8000) -> Path:
    """A valid ``side`` x ``side`` JPEG: ``photo`` scaled up to the full height (aspect kept) on a grey canvas."""
    image = cv2.imread(str(photo))
    scale = side / image.shape[0]
    width = min(side, round(image.shape[1] * scale))
    canvas = np.full((side, side, 3), 128, np.uint8)
    left = (side - width) // 2
    canvas[:, left:left + width] = cv2.resize(image, (width, side), interpolation=cv2.INTER_CUBIC)
    ok, data = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    path.write_bytes(data.tobytes())
    return path
