"""What the web view does to the gallery and the saved unknown tracks (plain functions, no HTTP).

Every change goes through ``edit_gallery`` (the same lock and atomic replace as `facestream
enroll`), so the running publisher picks it up within a second and a CLI enroll at the same time
loses nothing. Photos added from the page are kept beside the gallery (``<gallery>.photos/``) so
the page can show them later; a named stranger's track folder moves to ``<unknowns>/.named/<name>/``.
Deleting a person deletes both (stream.recognize.forget).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2

from stream.errors import FacestreamError
from stream.images import MAX_MEGAPIXELS, decode_image, read_image
from stream.models.store import load_model
from stream.photos import PhotoEmbedder, one_face
from stream.recognize.forget import forget_people, named_dir
from stream.recognize.gallery import Gallery, edit_gallery
from stream.recognize.names import check_name

THUMB_PX = 160
MAX_PHOTO_BYTES = 20 * 1024 * 1024
_TRACK_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


def check_identity(name: str) -> str:
    """The one name rule (stream.recognize.names), before any work is done for the name."""
    return check_name(name or "")


def list_people(gallery_path: Path | None) -> list[dict]:
    if gallery_path is None or not Path(gallery_path).exists():
        return []
    gallery = Gallery.load(gallery_path)
    people: dict[str, dict] = {}
    for i, (name, source) in enumerate(zip(gallery.names, gallery.sources)):
        entry = people.setdefault(name, {"name": name, "embeddings": 0, "photos": []})
        entry["embeddings"] += 1
        if source and Path(source).is_file():
            entry["photos"].append(i)
    return sorted(people.values(), key=lambda p: p["name"].lower())


def gallery_photo(gallery_path: Path | None, index: int) -> bytes | None:
    """A JPEG thumbnail of the image an embedding came from; only files the gallery itself lists."""
    if gallery_path is None or not Path(gallery_path).exists():
        return None
    gallery = Gallery.load(gallery_path)
    if not 0 <= index < len(gallery.sources) or not gallery.sources[index]:
        return None
    return _thumbnail(Path(gallery.sources[index]))


def remove_person(gallery_path: Path, name: str, unknowns: Path | None = None, history: str | None = None) -> str:
    """Delete a person and what was stored of them (photos added here, strangers named as them), and with
    ``history`` their tracks, thumbnails, embeddings and decisions in that store (stream.history.erase)."""
    name = check_identity(name)
    if history is None:
        return forget_people(gallery_path, [name], unknowns)[0].message()
    from stream.history.erase import forget_everywhere

    erased = forget_everywhere(name, gallery=gallery_path, unknowns=unknowns, history=history)
    said = erased.gallery.message() if erased.gallery else f"removed {name}"
    h = erased.history
    return said if h is None else f"{said}; deleted {h.tracks} track(s) and {h.decisions} decision(s) from the history"


class PhotoEnroller:
    """Detect, align and embed one face per uploaded photo; the models load on the first photo.

    The same photo path as `facestream enroll` (``stream.photos``), in this process (CPU), one photo
    at a time.
    """

    def __init__(self, model_name: str, gallery_path: Path, max_megapixels: float = MAX_MEGAPIXELS) -> None:
        self.model_name = model_name
        self.gallery_path = Path(gallery_path)
        self.max_megapixels = max_megapixels
        self._lock = threading.Lock()
        self._photos = None

    def _load(self):
        if self._photos is None:  # the models load in the server only once someone adds a photo
            self._photos = PhotoEmbedder(load_model(self.model_name))
        return self._photos

    def enroll(self, name: str, data: bytes, filename: str = "photo") -> str:
        name = check_identity(name)
        if len(data) > MAX_PHOTO_BYTES:
            raise FacestreamError(f"{filename}: larger than {MAX_PHOTO_BYTES // 2**20} MB")
        # Checked from the header and decoded reduced: a small file can declare gigabytes of pixels.
        image = decode_image(data, filename, max_megapixels=self.max_megapixels)
        with self._lock:
            photos = self._load()
            faces = photos.faces(image)
            found = one_face(faces)
            if found is not None:
                raise FacestreamError(f"{filename}: {found} (need exactly one)")
            embedding = photos.embed(faces)
        folder = self.gallery_path.with_name(self.gallery_path.name + ".photos") / name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{hashlib.sha256(data).hexdigest()[:16]}.jpg"
        path.write_bytes(data)
        with edit_gallery(self.gallery_path, photos.model.manifest) as gallery:
            gallery.add(name, embedding, [str(path)])
        return f"enrolled a photo as {name}"

    def close(self) -> None:
        if self._photos is not None:
            self._photos.close()
            self._photos = None


@dataclass
class UnknownTrack:
    name: str
    source: str
    track_id: int
    frames: int
    crops: int
    mtime: float


def list_unknowns(root: Path | None, limit: int = 24) -> list[UnknownTrack]:
    """The most recent saved unknown tracks, newest first."""
    from stream.cluster.saved_tracks import TMP_PREFIX, TRACK_FILE

    if root is None or not Path(root).is_dir():
        return []
    found = []
    for meta_path in Path(root).glob(f"*/{TRACK_FILE}"):
        folder = meta_path.parent
        if folder.name.startswith((TMP_PREFIX, ".")):
            continue
        found.append((meta_path.stat().st_mtime, folder))
    found.sort(reverse=True)
    out = []
    for mtime, folder in found[:limit]:
        try:
            meta = json.loads((folder / TRACK_FILE).read_text())
        except (OSError, ValueError):
            continue
        out.append(UnknownTrack(folder.name, str(meta.get("source", "")), int(meta.get("track_id", 0)),
                                len(meta.get("frames") or []), len(list(folder.glob("crop-*.png"))), mtime))
    return out


def _track_folder(root: Path | None, track: str) -> Path:
    if root is None or not _TRACK_NAME.match(track or "") or track.startswith("."):
        raise FacestreamError(f"{track!r}: no such unknown track")
    folder = Path(root) / track
    if not folder.is_dir():
        raise FacestreamError(f"{track}: no such unknown track (named already?)")
    return folder


def unknown_crop(root: Path | None, track: str, k: int) -> bytes | None:
    folder = _track_folder(root, track)
    path = folder / f"crop-{int(k)}.png"
    return path.read_bytes() if path.is_file() else None


def name_unknown(gallery_path: Path, root: Path, track: str, name: str) -> str:
    """Enroll a saved unknown track as ``name``: its mean embedding, the one the voter matched."""
    from stream.cluster.saved_tracks import read_tracks

    name = check_identity(name)
    folder = _track_folder(root, track)
    saved = read_tracks(folder)
    if not saved:
        raise FacestreamError(f"{track}: no saved embedding")
    meta, mean = saved[0].meta, saved[0].mean
    manifest = None
    if not Path(gallery_path).exists():  # the first person: a new gallery for the model that saved the track
        from stream.models.store import DEFAULT_MODEL, ModelStore

        manifest = ModelStore().get(meta.get("model") or DEFAULT_MODEL, verify=False).manifest
    named = named_dir(root, name) / folder.name  # one folder per name: deleting the person finds them all
    named.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(folder), str(named))  # first: a second click on the same stranger finds nothing
    try:
        with edit_gallery(gallery_path, manifest) as gallery:
            if meta.get("model") and meta["model"] != gallery.model:
                raise FacestreamError(f"{track}: saved by model {meta['model']}, the gallery is {gallery.model}'s")
            crops = sorted(named.glob("crop-*.png"))
            gallery.add(name, mean[None, :], [str(crops[0]) if crops else ""])
    except BaseException:
        shutil.move(str(named), str(folder))
        raise
    return f"{track} enrolled as {name}"


def _thumbnail(path: Path) -> bytes | None:
    try:  # decoded straight to thumbnail size (a JPEG at up to 1/8), within the default pixel budget
        image = read_image(path, work_px=THUMB_PX)
    except FacestreamError:
        return None
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return buf.tobytes() if ok else None
