"""The built-in demo: a short video and a gallery made from a photo that ships with matplotlib.

`facestream run` with no --source runs on this, so the first command in the README needs nothing
from outside. The photo (Grace Hopper, public domain, in matplotlib's sample data; matplotlib
comes with mediapipe) is enrolled as-is; the video pans, zooms, tilts and dims it, so recognition
has real variation to get through.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from pathlib import Path

import cv2

from stream.cvpath import opencv_path
from stream.errors import FacestreamError

log = logging.getLogger(__name__)

DEMO_NAME = "grace-hopper"
FRAMES = 150
SIZE = (640, 360)
FPS = 30.0


def demo_photo() -> Path:
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or spec.origin is None:
        raise FacestreamError("the built-in demo needs matplotlib's sample photo; pass --source instead")
    path = Path(spec.origin).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        raise FacestreamError(f"{path}: demo photo missing; pass --source instead")
    return path


def render_demo_video(photo: Path, out: Path) -> Path:
    """A 5 s 640x360 clip: the photo drifting, zooming, tilting and dimming, then leaving the frame."""
    from stream.images import read_image

    image = read_image(photo)
    h, w = image.shape[:2]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    writer = cv2.VideoWriter(opencv_path(tmp), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    if not writer.isOpened():
        raise FacestreamError(f"{tmp}: cannot write the demo video")
    try:
        for i in range(FRAMES):
            t = i / (FRAMES - 1)
            scale = 0.45 + 0.25 * math.sin(math.pi * t)
            angle = 8.0 * math.sin(2 * math.pi * t)
            cx = SIZE[0] * (0.3 + 0.4 * t) if t < 0.85 else SIZE[0] * (0.64 + 3.0 * (t - 0.85))
            matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
            matrix[:, 2] += (cx - w / 2, SIZE[1] / 2 - h / 2)
            frame = cv2.warpAffine(image, matrix, SIZE, borderValue=(40, 40, 40))
            gain = 0.75 + 0.25 * math.cos(2 * math.pi * t)
            writer.write(cv2.convertScaleAbs(frame, alpha=gain))
    finally:
        writer.release()
    tmp.replace(out)
    return out


def ensure_demo(directory: Path, model_name: str | None = None) -> tuple[Path, Path]:
    """The demo video and a gallery of its one person under ``directory``, made once."""
    from stream.detect.config import DetectorConfig
    from stream.detect.registry import single_pass_detector
    from stream.images import read_image
    from stream.models.store import ModelStore
    from stream.photos import PhotoEmbedder
    from stream.recognize.gallery import Gallery

    video = directory / "demo.mp4"
    model = ModelStore().get(model_name) if model_name else ModelStore().get()
    gallery_path = directory / f"demo-gallery-{model.name}.npz"
    photo = demo_photo()
    if not video.is_file():
        log.info("rendering the demo video from %s", photo)
        render_demo_video(photo, video)
    if not gallery_path.is_file():
        # One whole-photo pass: the demo photo is a portrait, no tiles needed.
        with single_pass_detector(DetectorConfig(min_face_px=0)) as detector, \
                PhotoEmbedder(model, detector) as photos:
            faces = photos.faces(read_image(photo))
            if len(faces) != 1:
                raise FacestreamError(f"{photo}: expected one face in the demo photo, found {len(faces)}")
            gallery = Gallery.new(model.manifest)
            gallery.add(DEMO_NAME, photos.embed(faces), [str(photo)])
        gallery.save(gallery_path)
    return video, gallery_path
