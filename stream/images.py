"""The one way facestream reads a photo: size checked from the header first, large photos decoded reduced.

A photo's header can promise far more than its file weighs: an 875 KB PNG of one flat colour
declares 30000x30000 pixels, 2.7 GB once decoded, and the detector then asks for many times that.
So the dimensions are read from the header (Pillow's lazy ``Image.open`` parses the header and
nothing else) and an image over the pixel budget (``photos.max_megapixels``, 40 MP by default,
above any camera's photo) is refused in one line before a byte of it is decoded.

Below the budget a photo is brought to the working size: a long side of at most ``WORK_PX`` = 2560
pixels (5 MP at 4:3). Why that size: alignment warps each face to the embedding model's input (150
px for the dlib ResNet, 112 px for ArcFace-style models), so pixels beyond a ~150 px face add
nothing, and the detector finds faces down to ``detector.min_face_px`` (24 px) with tiles. At 2560
px a face that is 6% of a group photo's width keeps its 150 px, and one of 1% is still found; the
live pipeline itself works on frames of at most 1920x1080. Every photo in tests/media (the largest
is 2204 px) is used exactly as it is. The detector scans a 2560x2560 photo in 110 tiles (~200 MB
at the peak, measured in a live run), where a 12 MP phone photo at full size took 212 tiles and an
8000x8000 one 1203, the 6.7 GB the issue saw. JPEGs above the working size are decoded at 1/2, 1/4 or 1/8 by
libjpeg itself (``IMREAD_REDUCED_COLOR_N``: the full image never exists in memory), the smallest
reduction that fits, then scaled down the rest of the way; other formats are decoded whole (at
most the budget: 120 MB, freed at once) and scaled down.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from stream.cvpath import shown
from stream.errors import FacestreamError

MAX_MEGAPIXELS = 40.0
WORK_PX = 2560
_JPEG_FORMATS = {"JPEG", "MPO"}  # MPO: phone cameras' JPEG with a second picture; its first is a JPEG
_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}


class PhotosConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, defer_build=True)

    max_megapixels: float = Field(
        default=MAX_MEGAPIXELS, gt=0, le=200,
        description="most pixels a photo (web page, enroll, embed, eval, train) may decode to, checked from its "
                    "header before decoding: a baseline JPEG counts at the 1/2-1/8 size it is decoded at (8000x8000: "
                    "4 MP), a PNG or progressive JPEG at full size (a 110 KB PNG can declare 30000x30000 pixels, "
                    "2.7 GB decoded)",
    )


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header says, and what decoding it to the working size will cost."""

    width: int
    height: int
    format: str
    progressive: bool = False

    def reduction(self, work_px: int = WORK_PX) -> int:
        """1, 2, 4 or 8: the smallest factor libjpeg decodes at that brings the long side within ``work_px``
        (8 at most). A progressive JPEG keeps every coefficient of the full image in memory whatever the
        output size, so only a baseline JPEG is reduced."""
        if self.format not in _JPEG_FORMATS or self.progressive:
            return 1
        long_side = max(self.width, self.height)
        return next((f for f in _REDUCED if long_side / f <= work_px), 8)

    def decoded_megapixels(self, work_px: int = WORK_PX) -> float:
        f = self.reduction(work_px)
        return math.ceil(self.width / f) * math.ceil(self.height / f) / 1e6


def _pillow():
    from PIL import Image

    # Our own budget, checked on every header, replaces Pillow's decompression-bomb guard, which
    # raises on open above 179 MP without saying the size; Pillow never decodes a photo here.
    Image.MAX_IMAGE_PIXELS = None
    return Image


def image_size(source: Path | bytes, name: str | Path | None = None) -> ImageHeader:
    """The image's header, parsed without decoding; a one-line error when it is not an image."""
    label = shown(name if name is not None else source if isinstance(source, Path) else "image")
    image_module = _pillow()
    try:
        # A damaged EXIF block is Pillow's warning to print, not the user's: the photo may still decode.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with image_module.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
                width, height = image.size
                header = ImageHeader(int(width), int(height), image.format or "",
                                     bool(image.info.get("progressive")))
    except FileNotFoundError:
        raise FacestreamError(f"{label}: not found") from None
    except Exception:  # any failure to parse an untrusted header (a fuzzed one raises anything) means the same
        raise FacestreamError(f"{label}: not an image OpenCV can decode") from None
    if header.width <= 0 or header.height <= 0:
        raise FacestreamError(f"{label}: not an image OpenCV can decode ({header.width}x{header.height} pixels)")
    return header


def _mp(megapixels: float) -> str:
    return f"{megapixels:.0f}" if megapixels >= 10 else f"{megapixels:.1f}"


def check_pixels(name: str | Path, header: ImageHeader, max_megapixels: float = MAX_MEGAPIXELS,
                 work_px: int = WORK_PX) -> None:
    decoded = header.decoded_megapixels(work_px)
    if decoded > max_megapixels:
        full = header.width * header.height / 1e6
        factor = header.reduction(work_px)
        reduced = f"; {_mp(decoded)} MP even decoded at 1/{factor}" if factor > 1 else ""
        raise FacestreamError(f"{shown(name)}: {header.width}x{header.height} pixels ({_mp(full)} MP{reduced}) "
                              f"is over the {max_megapixels:g} MP limit (photos.max_megapixels)")


def decode_image(data: bytes | np.ndarray, name: str | Path, *, max_megapixels: float = MAX_MEGAPIXELS,
                 work_px: int = WORK_PX) -> np.ndarray:
    """BGR uint8 of an encoded image, its long side at most ``work_px``; one-line errors naming ``name``."""
    raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    if not raw:
        raise FacestreamError(f"{shown(name)}: not an image OpenCV can decode (empty)")
    header = image_size(raw, name)
    check_pixels(name, header, max_megapixels, work_px)
    return _decode(np.frombuffer(raw, np.uint8), name, header, work_px)


def read_image(path: str | Path, *, max_megapixels: float = MAX_MEGAPIXELS, work_px: int = WORK_PX) -> np.ndarray:
    """Read an image file as BGR uint8 (long side at most ``work_px``), or raise a one-line error naming it.

    The header is checked before the file is read whole, so a huge file over the budget costs nothing."""
    path = Path(path)
    header = check_image(path, max_megapixels, work_px)
    return _decode(np.fromfile(path, dtype=np.uint8), path, header, work_px)


def check_image(path: str | Path, max_megapixels: float = MAX_MEGAPIXELS, work_px: int = WORK_PX) -> ImageHeader:
    """The header of an image file within the budget; else a one-line error."""
    path = Path(path)
    if not path.exists():
        raise FacestreamError(f"{shown(path)}: not found")
    if not path.is_file():
        raise FacestreamError(f"{shown(path)}: not a file")
    if path.stat().st_size == 0:
        raise FacestreamError(f"{shown(path)}: not an image OpenCV can decode (empty)")
    header = image_size(path)
    check_pixels(path, header, max_megapixels, work_px)
    return header


def _decode(buffer: np.ndarray, name: str | Path, header: ImageHeader, work_px: int) -> np.ndarray:
    image = cv2.imdecode(buffer, _REDUCED[header.reduction(work_px)])
    if image is None:
        raise FacestreamError(f"{shown(name)}: not an image OpenCV can decode")
    h, w = image.shape[:2]
    scale = work_px / max(h, w)
    if scale < 1:
        size = (max(1, min(work_px, round(w * scale))), max(1, min(work_px, round(h * scale))))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image
