"""Writing a clustering: one folder per cluster, each track's folder copied in, and a contact sheet.

``OUT/cluster-001/`` (largest first) holds the member tracks' folders (same layout as the saved
unknowns, so ``enroll`` and ``train --from-tracks`` read a cluster as they read the input) and
``contact.png``; tracks alone in their cluster go to ``OUT/singletons/`` the same way.
``OUT/clusters.json`` records the method, threshold and membership. OUT is built under a temp
name and renamed into place, so a failed run leaves no half-written OUT.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from stream.cluster.contact import write_contact_sheet
from stream.cluster.saved_tracks import SavedTrack
from stream.errors import FacestreamError

SHEET_CROPS_PER_TRACK = 2  # the best two of each track: a sheet shows many tracks, not one track's frames


def write_clusters(tracks: list[SavedTrack], labels: np.ndarray, out: Path, info: dict) -> dict:
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FacestreamError(f"{out}: already exists; give another --out or remove it")
    groups = [[t for t, lab in zip(tracks, labels) if lab == k] for k in np.unique(labels)]
    groups.sort(key=lambda g: (-len(g), g[0].name))
    clusters = [g for g in groups if len(g) > 1]
    singletons = [g[0] for g in groups if len(g) == 1]
    tmp = out.with_name(f".tmp-{out.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    record = dict(info, clusters=[], singletons=[t.name for t in singletons])
    # Tracks from a history store carry stranger ids: a cluster holding two is a merge hint (one person
    # the stranger matching kept apart), one stranger id in two clusters a split hint.
    remembered = any("stranger_id" in t.meta for t in tracks)
    for k, members in enumerate(clusters, 1):
        name = f"cluster-{k:03d}"
        _write_group(tmp / name, members)
        entry: dict = {"name": name, "tracks": [t.name for t in members]}
        if remembered:
            entry["strangers"] = sorted({t.meta["stranger_id"] for t in members if t.meta.get("stranger_id")})
        record["clusters"].append(entry)
    if singletons:
        _write_group(tmp / "singletons", singletons)
    (tmp / "clusters.json").write_text(json.dumps(record, indent=2) + "\n")
    if out.exists():
        out.rmdir()  # empty (checked above)
    os.replace(tmp, out)
    return record


def _write_group(folder: Path, members: list[SavedTrack]) -> None:
    folder.mkdir()
    sheet = []
    for track in members:
        shutil.copytree(track.path, folder / track.name)
        sheet.extend(folder / track.name / p.name for p in track.crops[:SHEET_CROPS_PER_TRACK])
    write_contact_sheet(sheet, folder / "contact.png")
