"""`facestream cluster faces DIR` (or `cluster DIR`): group the unknown tracks a run saved (--save-unknowns) by
identity; `cluster faces --history FILE|URL` groups the unknown tracks of a history store the same way.
The Ray commands that were `cluster run` / `cluster batch` are `site run` / `site batch` (site_cmd)."""

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
        description="Cluster the tracks `facestream run --save-unknowns DIR` saved (or, with --history, the "
                    "unknown tracks of a history store), by their mean embeddings. "
                    "Writes OUT/cluster-NNN/ (largest first; each with its tracks' folders and contact.png), "
                    "OUT/singletons/ and OUT/clusters.json. Enroll a cluster with "
                    "`facestream enroll --gallery G --name NAME OUT/cluster-001`.",
    )
    p.add_argument("dir", type=Path, metavar="DIR", nargs="?",
                   help="folder of saved tracks (<source>-<id>/track.json); or give --history")
    p.add_argument("--history", metavar="FILE|URL",
                   help="cluster the unknown tracks of this history store (a SQLite file, sqlite:///FILE or "
                        "postgresql://...) instead of DIR: those search would consider, their stored mean "
                        "embeddings and thumbnails")
    p.add_argument("--since", metavar="TIME", help="--history: only tracks since (ISO time or 30m, 2h, 7d)")
    p.add_argument("--until", metavar="TIME", help="--history: only tracks until (ISO time or relative)")
    p.add_argument("--camera", metavar="SOURCE", help="--history: only this source (camera name or file stem)")
    p.add_argument("--unnamed-only", action="store_true",
                   help="--history: leave out tracks of strangers already named (`history name`)")
    p.add_argument("--out", type=Path, help="output folder (default: DIR-clusters next to DIR, or "
                                            "history-clusters in the current folder); must not exist")
    p.add_argument("--threshold", type=float,
                   help="same person when distance <= it (default: the model's threshold)")
    p.add_argument("--method", choices=METHODS, default="agglomerative",
                   help="agglomerative (default) or chinese-whispers (label propagation on the threshold graph)")
    p.add_argument("--linkage", choices=LINKAGES, default="complete",
                   help="agglomerative: complete (every pair within the threshold; default) or average")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import tempfile

    from stream.cluster.saved_tracks import read_tracks

    if (args.dir is None) == (args.history is None):
        raise FacestreamError("cluster faces: give a folder of saved tracks (DIR) or --history FILE|URL, not "
                              + ("both" if args.dir is not None else "neither"))
    if args.dir is not None:
        extra = [f"--{name}" for name in ("since", "until", "camera") if getattr(args, name)]
        extra += ["--unnamed-only"] if args.unnamed_only else []
        if extra:
            raise FacestreamError(f"{' '.join(extra)}: only with --history (a folder of saved tracks is "
                                  "clustered whole)")
        tracks = read_tracks(args.dir)
        if not tracks:
            raise FacestreamError(f"{args.dir}: no saved tracks (<source>-<id>/track.json) found")
        out = args.out or args.dir.with_name(f"{args.dir.resolve().name}-clusters")
        return _cluster(tracks, args, out, str(args.dir))
    with tempfile.TemporaryDirectory(prefix="facestream-unknowns-") as staging:
        tracks = _from_history(args, Path(staging))
        return _cluster(tracks, args, args.out or Path("history-clusters"), _shown(args.history))


def _shown(url: str) -> str:
    from stream.sources.credentials import mask_credentials

    return mask_credentials(str(url))


def _from_history(args: argparse.Namespace, staging: Path) -> list:
    """The store's unknown tracks written under ``staging`` as saved tracks, and read back as such."""
    from stream.cluster.saved_tracks import read_tracks
    from stream.history.store import HistoryStore
    from stream.history.times import parse_time
    from stream.history.unknowns import export_tracks, unknown_tracks
    from stream.models.store import load_model

    since = parse_time(args.since) if args.since else None
    until = parse_time(args.until) if args.until else None
    shown = _shown(args.history)
    with HistoryStore.open(args.history, create=False) as store:
        found = unknown_tracks(store, since=since, until=until, source=args.camera, unnamed_only=args.unnamed_only)
    if not found:
        raise FacestreamError(f"{shown}: no unknown tracks to cluster (identity unset, at least the search "
                              "filter's faces and detector score) in the window asked for")
    spaces = sorted({t.row["embedding_space"] for t in found})
    if len(spaces) > 1:
        raise FacestreamError(f"{shown}: unknown tracks from several embedding spaces ({', '.join(spaces)}); "
                              "narrow with --since/--until/--camera to one model's tracks")
    model_name = found[0].row["model"]
    manifest = load_model(model_name).manifest  # the metric, and the threshold its scale is for
    if manifest.embedding_space != spaces[0]:
        raise FacestreamError(f"{shown}: tracks of embedding space {spaces[0]}; the installed {model_name} "
                              f"embeds into {manifest.embedding_space}")
    export_tracks(found, staging, metric=manifest.metric, threshold=float(manifest.threshold), store=shown)
    return read_tracks(staging)


def _cluster(tracks: list, args: argparse.Namespace, out: Path, where: str) -> int:
    from stream.cluster.methods import cluster
    from stream.cluster.output import write_clusters
    from stream.cluster.saved_tracks import co_occurring
    from stream.models.manifest import distance_matrix

    spaces = {t.meta.get("embedding_space") for t in tracks}
    if len(spaces) > 1:
        raise FacestreamError(f"{where}: tracks from several embedding spaces ({', '.join(map(str, spaces))}); "
                              "cluster one model's tracks at a time")
    first = tracks[0].meta
    threshold = args.threshold if args.threshold is not None else first.get("threshold")
    if threshold is None or not threshold > 0:
        raise FacestreamError(f"--threshold: give a positive distance ({where} records none)")
    metric = first.get("metric", "euclidean")
    import numpy as np

    embeddings = np.stack([t.mean for t in tracks])  # the scale the model's threshold is for
    dist = distance_matrix(embeddings, embeddings, metric)
    # Tracks seen in the same frame are two people: an infinite distance keeps their clusters apart
    # (average and complete linkage both carry it to every merge that would contain both).
    dist[co_occurring(tracks)] = np.inf
    labels = cluster(dist, float(threshold), args.method, args.linkage)
    method = f"{args.method} ({args.linkage} linkage)" if args.method == "agglomerative" else args.method
    info = {"method": method, "threshold": float(threshold), "metric": metric, "model": first.get("model"),
            "tracks": len(tracks)}
    if args.history is not None:
        info["history"] = where
    record = write_clusters(tracks, labels, out, info)
    sizes = [len(c["tracks"]) for c in record["clusters"]]
    print(f"{out}: {len(tracks)} tracks -> {len(sizes)} clusters (sizes {', '.join(map(str, sizes)) or '-'}) "
          f"+ {len(record['singletons'])} singletons; {method}, threshold {threshold:g} ({metric})")
    for c in record["clusters"]:
        print(f"  {c['name']}: {len(c['tracks'])} tracks: {' '.join(c['tracks'])}")
        if "strangers" in c:
            hint = " (merge hint: several stranger ids, one cluster)" if len(c["strangers"]) > 1 else ""
            print(f"    strangers: {', '.join(c['strangers']) or '-'}{hint}")
    return 0
