"""Deleting a person: their embeddings, and what was stored of them beside the gallery.

What facestream itself stored of a person: the photos added on the web page
(``<gallery>.photos/<name>/``) and the crops of strangers named as them
(``<unknowns>/.named/<name>/<track>/``; before names had folders of their own,
``<unknowns>/.named/<name>-<track>/``). Photos a user enrolled from their own folders are theirs
and stay. The named folders are found from the unknowns folder when it is known, and from the
gallery's own source paths when it is not.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from stream.errors import FacestreamError
from stream.locking import exclusive_lock
from stream.recognize.gallery import Gallery, list_segments, lock_path, segment_dir
from stream.recognize.gallery_index import index_dir
from stream.recognize.names import check_name

NAMED_DIR = ".named"


def photos_dir(gallery: Path) -> Path:
    """Where photos added on the web page are kept: ``<gallery>.photos/<name>/``."""
    gallery = Path(gallery)
    return gallery.with_name(gallery.name + ".photos")


def named_dir(unknowns: Path, name: str) -> Path:
    """Where a stranger's saved track goes once it is named: ``<unknowns>/.named/<name>/<track>/``."""
    return Path(unknowns) / NAMED_DIR / name


@dataclass
class Forgotten:
    name: str
    embeddings: int
    photos: int  # photo files deleted
    named: int  # named strangers' track folders deleted
    segments: int = 0  # appended enroll segments merged away (they held rows of everyone, this name's too)
    index_files: int = 0  # cached search index files deleted (they hold every embedding)

    def message(self) -> str:
        return (f"removed {self.name} ({self.embeddings} embedding(s)); deleted {self.photos} photo(s) and "
                f"{self.named} named stranger folder(s)")

    def places(self, gallery_path: Path, unknowns: Path | None) -> list[str]:
        """One line per place looked in: what was deleted there."""
        gallery_path = Path(gallery_path)
        lines = [f"{gallery_path}: removed {self.embeddings} embedding(s) of {self.name}; rewritten without them",
                 f"{segment_dir(gallery_path)}: deleted {self.segments} appended segment(s) (merged into the "
                 "gallery first)",
                 f"{index_dir(gallery_path)}: deleted {self.index_files} cached search index file(s)",
                 f"{photos_dir(gallery_path) / self.name}: deleted {self.photos} photo(s)"]
        where = named_dir(unknowns, self.name) if unknowns is not None else f"{NAMED_DIR}/{self.name}"
        lines.append(f"{where}: deleted {self.named} named stranger folder(s)")
        return lines


def forget_people(gallery_path: Path, names: list[str], unknowns: Path | None = None, *,
                  missing_ok: bool = False) -> list[Forgotten]:
    """Remove ``names`` from the gallery and delete their stored photos and named strangers' crops.

    The files go after the gallery is saved (a failed save deletes nothing) and under the
    gallery's lock, so an enroll of the same name waits and finds a clean slate. ``missing_ok``: a
    name not in the gallery is no error (`facestream forget` of a person kept only in the history);
    their photos and named folders are still looked for.
    """
    gallery_path = Path(gallery_path)
    names = [check_name(n) for n in names]
    with exclusive_lock(lock_path(gallery_path)):
        gallery = Gallery.load(gallery_path)
        missing = [n for n in names if n not in gallery.names]
        if missing and not missing_ok:
            raise FacestreamError(f"{gallery_path}: no one named {', '.join(missing)} "
                                  f"(enrolled: {', '.join(gallery.identities()) or 'nobody'}); gallery unchanged")
        sources = {n: [s for name, s in zip(gallery.names, gallery.sources) if name == n and s] for n in names}
        removed = {n: gallery.remove(n) for n in names}
        segments = index_files = 0
        if any(removed.values()):  # the save merges the segments and deletes the cached index (Gallery.save)
            segments = len(list_segments(gallery_path))
            index_files = len(list(index_dir(gallery_path).glob("*.faiss")))
            gallery.save(gallery_path)
        still_used = {_resolved(s) for s in gallery.sources if s}
        remaining = gallery.identities()
        return [Forgotten(n, removed[n], _delete_photos(gallery_path, n, sources[n], still_used),
                          _delete_named(n, sources[n], unknowns, remaining),
                          segments if removed[n] else 0, index_files if removed[n] else 0) for n in names]


def _delete_photos(gallery_path: Path, name: str, sources: list[str], still_used: set[Path]) -> int:
    root = _resolved(photos_dir(gallery_path))
    files = {p for p in _files(root / name)}
    # a source that points into the photos folder elsewhere (an older layout, a hand edit)
    files |= {p for p in map(_resolved, sources) if root in p.parents and p not in still_used and p.is_file()}
    for path in files:
        path.unlink(missing_ok=True)
    _remove_tree(root / name)
    return len(files)


def _delete_named(name: str, sources: list[str], unknowns: Path | None, remaining: list[str]) -> int:
    """The named strangers' folders of ``name``; the count is of track folders."""
    tracks: set[Path] = set()
    people: set[Path] = set()  # <unknowns>/.named/<name>
    for source in map(_resolved, sources):
        track = source.parent
        if track.parent.name == NAMED_DIR and _legacy_owner(track.name, name, remaining):
            tracks.add(track)
        elif track.parent.parent.name == NAMED_DIR and track.parent.name == name:
            people.add(track.parent)
    if unknowns is not None:
        root = _resolved(Path(unknowns) / NAMED_DIR)
        people.add(root / name)
        if root.is_dir():
            tracks |= {p for p in root.iterdir() if p.is_dir() and not p.is_symlink()
                       and _legacy_owner(p.name, name, remaining)}
    count = 0
    for folder in people:
        if folder.is_dir() and not folder.is_symlink():
            count += sum(1 for p in folder.iterdir() if p.is_dir())
            _remove_tree(folder)
    for folder in tracks:
        if folder.is_dir() and not folder.is_symlink():
            count += 1
            _remove_tree(folder)
    return count


def _legacy_owner(folder: str, name: str, remaining: list[str]) -> bool:
    """``<name>-<track>`` is ``name``'s unless a longer enrolled name owns it ("ann" vs "ann-marie-cam-3")."""
    if not folder.startswith(name + "-"):
        return False
    return not any(len(other) > len(name) and folder.startswith(other + "-") for other in remaining)


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir() or folder.is_symlink():
        return []
    return [p for p in folder.rglob("*") if p.is_file() or p.is_symlink()]


def _remove_tree(folder: Path) -> None:
    if folder.is_dir() and not folder.is_symlink():
        shutil.rmtree(folder)


def _resolved(path: str | Path) -> Path:
    return Path(path).resolve()
