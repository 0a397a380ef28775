"""Forgetting a person everywhere facestream keeps them: the gallery and what sits beside it
(stream/recognize/forget.py) and the history store (``HistoryStore.forget``), with one line per place
saying what was deleted there. `facestream forget` and the web page's button both come here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from stream.errors import FacestreamError
from stream.history import search_cache
from stream.history.store import HistoryErased, HistoryStore
from stream.recognize.forget import Forgotten, forget_people
from stream.recognize.names import check_name
from stream.sources.credentials import mask_credentials


@dataclass
class Erasure:
    name: str
    gallery: Forgotten | None = None
    history: HistoryErased | None = None
    lines: list[str] = field(default_factory=list)  # one per place, as the command prints them

    @property
    def found(self) -> bool:
        g, h = self.gallery, self.history
        return bool((g and (g.embeddings or g.photos or g.named)) or (h and (h.tracks or h.decisions or h.strangers)))


def history_line(shown: str, erased: HistoryErased, dialect: str) -> str:
    if not erased.scrubbed:
        after = ("freed pages overwritten (secure_delete); the WAL was busy: its copies go at the next checkpoint"
                 if dialect == "sqlite" else "VACUUM failed: the bytes stay in the table files until autovacuum")
    else:
        after = ("freed pages overwritten (secure_delete) and the WAL emptied" if dialect == "sqlite"
                 else "VACUUM run on its tables")
    return (f"{shown}: deleted {erased.tracks} track(s) with their thumbnails and embeddings, {erased.decisions} "
            f"decision(s), {erased.strangers} named stranger(s); {after}")


def forget_everywhere(name: str, *, gallery: Path | None = None, unknowns: Path | None = None,
                      history: str | Path | None = None) -> Erasure:
    """Delete ``name`` from the gallery (with its photos, named strangers' crops, appended segments and
    cached index) and from the history store; a name found in neither is an error and nothing changes."""
    name = check_name(name)
    if gallery is None and history is None:
        raise FacestreamError("forget: say where: --gallery FILE and/or --history FILE|URL (or --config)")
    if gallery is not None and not Path(gallery).is_file():
        raise FacestreamError(f"{gallery}: gallery not found")
    erasure = Erasure(name)
    store = None
    shown = ""
    if history is not None:  # opened first: an unusable store is refused before the gallery changes
        shown = mask_credentials(str(history))
        store = HistoryStore.open(history, create=False)
    try:
        if gallery is not None:
            erasure.gallery = forget_people(Path(gallery), [name], unknowns, missing_ok=True)[0]
            erasure.lines += erasure.gallery.places(Path(gallery), unknowns)
        if store is not None:
            cache = search_cache.cache_dir(store.url)
            cached = cache is not None and cache.is_dir()
            erasure.history = store.forget(name)
            erasure.lines.append(history_line(shown, erasure.history, store.dialect))
            if cached:
                erasure.lines.append(f"{cache}: deleted the search cache (every stored track's mean; the next "
                                     "search builds it again)")
    finally:
        if store is not None:
            store.close()
    if not erasure.found:
        where = " or ".join(str(w) for w in (gallery, shown or None) if w is not None)
        raise FacestreamError(f"{name}: no one of that name in {where}; nothing deleted")
    return erasure
