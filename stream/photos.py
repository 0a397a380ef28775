"""The one photo path: find, align and embed the faces of photos, for every command that starts from photos.

`enroll`, `embed`, `eval`, `train`'s data, `quantize`'s calibration, the demo and the web page all
read photos with ``stream.images`` (header checked, large photos decoded reduced), detect with the
photo detector (a full tiled scan unless one is given), align to the model's template and embed on
ONNX Runtime on the CPU: one-shot work that should not pay a GPU's start-up. They differ only in
what they do with the faces, so that is all they keep.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from stream.align import FaceAligner
from stream.cvpath import opencv_path
from stream.detect import FaceDetector
from stream.detect.config import DetectorConfig
from stream.detect.registry import single_pass_detector
from stream.errors import FacestreamError
from stream.faces import Faces
from stream.images import read_image
from stream.inference.select import cpu_engine
from stream.models.manifest import AlignmentTemplate, ModelManifest
from stream.models.store import InstalledModel

log = logging.getLogger(__name__)

#: What int8 calibration takes from its folder.
CALIBRATION_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".mov", ".webm"}


def photo_detector() -> FaceDetector:
    """The detector for photos: every face, however small, so a full tiled scan (``detector.*`` defaults)."""
    return FaceDetector()


def detect_photos(paths: Iterable[Path], detector=None) -> Iterator[tuple[Path, np.ndarray, Faces]]:
    """(path, image, faces) per photo, one decoded photo in memory at a time; opens and closes a
    ``photo_detector`` of its own unless ``detector`` is given. Photos that fail to decode raise."""
    own = detector is None
    detector = detector or photo_detector()
    try:
        for path in paths:
            image = read_image(path)
            yield Path(path), image, detector.detect(image)
    finally:
        if own:
            detector.close()


def _stacked(crops: list[np.ndarray], aligner: FaceAligner) -> np.ndarray:
    w, h = aligner.size
    return np.stack(crops) if crops else np.zeros((0, h, w, 3), np.uint8)


def load_face_crops(paths: Iterable[Path], manifest: ModelManifest, detector=None) -> np.ndarray:
    """Every face in each photo, aligned: (N, H, W, 3) uint8 BGR.

    Photos that fail to decode raise; photos without faces contribute nothing (logged).
    """
    aligner = FaceAligner.for_model(manifest)
    crops: list[np.ndarray] = []
    for path, image, faces in detect_photos(paths, detector):
        faces = aligner.align(image, faces)
        if not len(faces):
            log.info("%s: no face found", path)
        crops.extend(faces.crops)
    return _stacked(crops, aligner)


def choose_face(faces: Faces, image_shape: tuple[int, ...], rule: str) -> int | None:
    """Index of the face a photo is about: ``"centre"`` (nearest the image centre, as in LFW's
    centred crops) or ``"largest"`` (largest box); None when there is no face."""
    if not len(faces):
        return None
    if rule == "largest":
        w, h = faces.xyxy[:, 2] - faces.xyxy[:, 0], faces.xyxy[:, 3] - faces.xyxy[:, 1]
        return int(np.argmax(w * h))
    if rule == "centre":
        centres = (faces.xyxy[:, :2] + faces.xyxy[:, 2:]) / 2
        image_centre = np.array([image_shape[1], image_shape[0]], np.float32) / 2
        return int(np.argmin(np.linalg.norm(centres - image_centre, axis=1)))
    raise ValueError(f"unknown face rule {rule!r} (centre, largest)")


def load_chosen_crops(paths: Iterable[Path], template: AlignmentTemplate, rule: str = "largest",
                      detector=None) -> tuple[np.ndarray, list[Path]]:
    """One aligned crop per photo, the face it is about (``choose_face``): (crops (N, H, W, 3) uint8
    BGR in the order of the photos found, the photos where no face was found). ``template``: the
    model's (``manifest.alignment``)."""
    aligner = FaceAligner(template)
    crops: list[np.ndarray] = []
    missing: list[Path] = []
    for path, image, faces in detect_photos(paths, detector):
        index = choose_face(faces, image.shape, rule)
        if index is None:
            log.info("%s: no face found", path)
            missing.append(path)
            continue
        crops.append(aligner.align(image, faces[index]).crops[0])
    return _stacked(crops, aligner), missing


def detect_crops(paths: Iterable[Path], manifest: ModelManifest,
                 rule: str) -> tuple[dict[Path, np.ndarray], list[Path]]:
    """A dataset's photos (`eval`): the aligned crop of the face each is about (per ``rule``) keyed by
    photo, each photo once, and the photos with no face."""
    paths = list(dict.fromkeys(paths))
    crops, missing = load_chosen_crops(paths, manifest.alignment, rule)
    lost = set(missing)
    found = [p for p in paths if p not in lost]
    return dict(zip(found, crops)), missing


def embed_crops(crops: dict[Path, np.ndarray], model: InstalledModel, batch: int = 32) -> dict[Path, np.ndarray]:
    """Embeddings of aligned crops keyed by the photo each came from, ``batch`` at a time."""
    keys = list(crops)
    out: dict[Path, np.ndarray] = {}
    with cpu_engine(model, max_batch=batch) as engine:
        for start in range(0, len(keys), batch):
            part = keys[start:start + batch]
            emb = engine.embed(np.stack([crops[k] for k in part]))
            out.update(zip(part, np.asarray(emb, np.float32)))
    return out


class PhotoEmbedder:
    """A detector, the model's alignment and a CPU engine, loaded once for many photos.

    ``faces(image)`` gives the photo's faces with aligned crops, ``embed(faces)`` their embeddings.
    The detector is ``photo_detector()`` unless one is given; the one given stays the caller's to close.
    """

    def __init__(self, model: InstalledModel, detector=None) -> None:
        self.model = model
        self.aligner = FaceAligner.for_model(model.manifest)
        self._own_detector = detector is None
        self.detector = photo_detector() if detector is None else detector
        self.engine = cpu_engine(model)

    def faces(self, image: np.ndarray) -> Faces:
        return self.aligner.align(image, self.detector.detect(image))

    def embed(self, faces: Faces) -> np.ndarray:
        """(N, D) float32 for faces from ``faces()``; (0, D) for none (the engine is not woken for them)."""
        if not len(faces):
            return np.zeros((0, self.model.manifest.embedding_size), np.float32)
        return self.engine.embed(faces.crops)

    def close(self) -> None:
        self.engine.close()
        if self._own_detector:
            self.detector.close()

    def __enter__(self) -> PhotoEmbedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def one_face(faces: Faces) -> str | None:
    """Why a photo of one person cannot be enrolled (``"no face found"``, ``"2 faces found"``), or None."""
    if len(faces) == 1:
        return None
    return f"{len(faces)} faces found" if len(faces) else "no face found"


def calibration_crops(calib_dir: Path, manifest: ModelManifest, limit: int = 200, video_stride: int = 2) -> np.ndarray:
    """Aligned crops of the faces in the photos and videos under ``calib_dir`` (searched recursively),
    for int8 calibration. Videos contribute every ``video_stride``-th frame: footage from the cameras
    the model will watch calibrates best."""
    calib_dir = Path(calib_dir)
    if not calib_dir.is_dir():
        raise FacestreamError(f"{calib_dir}: not a directory of face photos or videos")
    files = sorted(p for p in calib_dir.rglob("*") if p.is_file())
    images = [p for p in files if p.suffix.lower() in CALIBRATION_IMAGE_SUFFIXES]
    videos = [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]
    if not images and not videos:
        raise FacestreamError(f"{calib_dir}: no images (.jpg, .png, ...) or videos (.mp4, ...) to calibrate on")
    parts: list[np.ndarray] = []
    with single_pass_detector(DetectorConfig(min_face_px=24)) as detector:
        if images:
            parts.append(load_face_crops(images, manifest, detector))
        aligner = FaceAligner.for_model(manifest)
        for video in videos:
            cap = cv2.VideoCapture(opencv_path(video))
            index = 0
            while sum(len(p) for p in parts) < limit:
                ok, frame = cap.read()
                if not ok:
                    break
                if index % video_stride == 0:
                    faces = detector.detect(frame)
                    if len(faces):
                        parts.append(aligner.align(frame, faces).crops.copy())
                index += 1
            cap.release()
    crops = np.concatenate(parts) if parts else np.zeros((0, manifest.input.height, manifest.input.width, 3), np.uint8)
    if len(crops) == 0:
        raise FacestreamError(f"{calib_dir}: no faces found in {len(images)} image(s) and {len(videos)} video(s)")
    if len(crops) < 16:
        log.warning("calibrating on only %d faces; a few hundred from your own cameras calibrate better", len(crops))
    return crops[:limit]


def calibration(calib_dir: Path, limit: int = 200) -> Callable[[ModelManifest], np.ndarray]:
    """``stream.models.quantize``'s calibration data: the faces under ``calib_dir`` for the model it
    quantizes, found only when int8 asks (the models layer reads no photos itself)."""
    return functools.partial(calibration_crops, Path(calib_dir), limit=limit)
