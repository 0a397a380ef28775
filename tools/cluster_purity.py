"""Purity and clusters-per-person of `facestream cluster` on saved tracks, against hand labels.

    python tools/cluster_purity.py UNKNOWNS_DIR LABELS.json [--threshold T ...] [--linkage average]

LABELS.json maps each track folder name to a person, or "junk" for a non-face (a hand, a dark
patch of audience). Purity counts "junk" as one label (a cluster of only junk is pure: the user
throws it away); clusters-per-person and purity(real) leave junk out: they are about people.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from stream.cluster.methods import agglomerative, chinese_whispers, clusters_per_person, purity
from stream.cluster.saved_tracks import co_occurring, read_tracks
from stream.models.manifest import distance_matrix


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", type=Path)
    ap.add_argument("labels", type=Path)
    ap.add_argument("--threshold", type=float, nargs="+", default=[0.4, 0.45, 0.5, 0.55, 0.6])
    ap.add_argument("--no-cannot-link", action="store_true")
    args = ap.parse_args()
    tracks = read_tracks(args.dir)
    labels = json.loads(args.labels.read_text())
    truth = np.array([labels[t.name] for t in tracks])
    emb = np.stack([t.mean for t in tracks])
    dist = distance_matrix(emb, emb, tracks[0].meta["metric"])
    if not args.no_cannot_link:
        dist[co_occurring(tracks)] = np.inf
    real = truth != "junk"
    methods = {"average": lambda d, t: agglomerative(d, t, "average"),
               "complete": lambda d, t: agglomerative(d, t, "complete"),
               "chinese-whispers": chinese_whispers}
    print(f"{len(tracks)} tracks, {real.sum()} of {len(set(truth[real]))} people, {(~real).sum()} junk")
    print("method            thr   clusters  purity  purity(real)  clusters/person  people-merged-with-junk")
    for name, fn in methods.items():
        for thr in args.threshold:
            lab = fn(dist, thr)
            mixed = sum(1 for k in np.unique(lab[real]) if (truth[lab == k] == "junk").any())
            print(f"{name:16s} {thr:5.2f}  {len(np.unique(lab)):8d}  {purity(lab, truth):6.3f}  "
                  f"{purity(lab[real], truth[real]):12.3f}  {clusters_per_person(lab[real], truth[real]):15.2f}  "
                  f"{mixed:d}")


if __name__ == "__main__":
    main()
