"""`facestream cluster faces DIR` (or `cluster DIR`): group the unknown tracks a run saved (--save-unknowns) by
identity. The Ray commands that were `cluster run` / `cluster batch` are `site run` / `site batch` (site_cmd)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from stream.errors import FacestreamError

log = logging.getLogger(__name__)


#: ``facestream cluster DIR`` (the command before it had sub-commands) still means ``cluster faces DIR``
SUBCOMMANDS = ("faces",)
#: ``cluster run`` / ``cluster batch`` ran the Ray site before ``cluster`` meant only grouping faces
RENAMED = {"run": "site run", "batch": "site batch"}


def register(subparsers: argparse._SubParsersAction) -> None:
    from stream.cluster.methods import LINKAGES, METHODS

    top = subparsers.add_parser(
        "cluster", help="group saved unknown tracks into people",
        description="`cluster faces DIR`: group saved unknown tracks into people (also `cluster DIR`).",
    )
    sub = top.add_subparsers(dest="cluster_command", metavar="{faces}")
    sub.required = True
    p = sub.add_parser(
        "faces", help="group saved unknown tracks into people",
        description="Cluster the tracks `facestream run --save-unknowns DIR` saved, by their mean embeddings. "
                    "Writes OUT/cluster-NNN/ (largest first; each with its tracks' folders and contact.png), "
                    "OUT/singletons/ and OUT/clusters.json. Enroll a cluster with "
                    "`facestream enroll --gallery G --name NAME OUT/cluster-001`.",
    )
    p.add_argument("dir", type=Path, metavar="DIR", help="folder of saved tracks (<source>-<id>/track.json)")
    p.add_argument("--out", type=Path, help="output folder (default: DIR-clusters next to DIR); must not exist")
    p.add_argument("--threshold", type=float,
                   help="same person when distance <= it (default: the model's threshold in track.json)")
    p.add_argument("--method", choices=METHODS, default="agglomerative",
                   help="agglomerative (default) or chinese-whispers (label propagation on the threshold graph)")
    p.add_argument("--linkage", choices=LINKAGES, default="complete",
                   help="agglomerative: complete (every pair within the threshold; default) or average")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stream.cluster.methods import cluster
    from stream.cluster.output import write_clusters
    from stream.cluster.saved_tracks import co_occurring, read_tracks
    from stream.models.manifest import distance_matrix

    tracks = read_tracks(args.dir)
    if not tracks:
        raise FacestreamError(f"{args.dir}: no saved tracks (<source>-<id>/track.json) found")
    spaces = {t.meta.get("embedding_space") for t in tracks}
    if len(spaces) > 1:
        raise FacestreamError(f"{args.dir}: tracks from several embedding spaces ({', '.join(map(str, spaces))}); "
                              "cluster one model's tracks at a time")
    first = tracks[0].meta
    threshold = args.threshold if args.threshold is not None else first.get("threshold")
    if threshold is None or not threshold > 0:
        raise FacestreamError(f"--threshold: give a positive distance ({args.dir} records none)")
    metric = first.get("metric", "euclidean")
    import numpy as np

    embeddings = np.stack([t.mean for t in tracks])  # the scale the model's threshold is for
    dist = distance_matrix(embeddings, embeddings, metric)
    # Tracks seen in the same frame are two people: an infinite distance keeps their clusters apart
    # (average and complete linkage both carry it to every merge that would contain both).
    dist[co_occurring(tracks)] = np.inf
    labels = cluster(dist, float(threshold), args.method, args.linkage)
    out = args.out or args.dir.with_name(f"{args.dir.resolve().name}-clusters")
    method = f"{args.method} ({args.linkage} linkage)" if args.method == "agglomerative" else args.method
    record = write_clusters(tracks, labels, out, {"method": method, "threshold": float(threshold),
                                                  "metric": metric, "model": first.get("model"),
                                                  "tracks": len(tracks)})
    sizes = [len(c["tracks"]) for c in record["clusters"]]
    print(f"{out}: {len(tracks)} tracks -> {len(sizes)} clusters (sizes {', '.join(map(str, sizes)) or '-'}) "
          f"+ {len(record['singletons'])} singletons; {method}, threshold {threshold:g} ({metric})")
    for c in record["clusters"]:
        print(f"  {c['name']}: {len(c['tracks'])} tracks: {' '.join(c['tracks'])}")
    return 0
