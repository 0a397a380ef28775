"""`facestream site run` (a site's cameras in shards on Ray) and `facestream site batch` (videos as Ray
tasks). Both need the ``site`` extra; without it they say so in one line."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    top = subparsers.add_parser(
        "site", help="scale out on a Ray cluster: a site's cameras in shards (run), a video archive (batch)",
        description="`site run`: a site's cameras in shards on a Ray cluster, events on one endpoint. "
                    "`site batch`: recorded videos as Ray tasks. Needs pip install 'facestream[site]'.",
    )
    sub = top.add_subparsers(dest="site_command", metavar="{run,batch}")
    sub.required = True
    p = sub.add_parser(
        "run", help="run a site's cameras in shards on a Ray cluster, events on one endpoint",
        description="Split the site config's cameras into shards; each shard is a whole `facestream run` in one "
                    "Ray actor on some node (frames stay on that node). Events of every shard come together on "
                    "--publish, where `facestream subscribe` connects as usual. Runs until Ctrl-C.",
    )
    p.add_argument("--address", help="Ray cluster (ray://HEAD:10001, HEAD:6379 or auto); default RAY_ADDRESS, "
                                     "else a Ray instance on this machine")
    p.add_argument("--config", type=Path, required=True, help="site YAML: the usual config + cameras + sharding")
    p.add_argument("--publish", default="tcp://127.0.0.1:5556", metavar="ENDPOINT",
                   help="where subscribers connect (default tcp://127.0.0.1:5556)")
    p.add_argument("--gallery", type=Path, help="overrides the site config's gallery (held here, pushed to shards)")
    p.add_argument("--status-every", type=float, default=5.0, metavar="S", help="seconds between status lines")
    p.add_argument("--status-json", type=Path, help="keep the site's status (shards, cameras, nodes) in this file")
    p.add_argument("--metrics-port", type=int, metavar="PORT", help="serve the site's Prometheus gauges on "
                                                                     "127.0.0.1:PORT (shards and cameras up)")
    p.set_defaults(func=run_site)

    b = sub.add_parser(
        "batch", help="recognise recorded videos as Ray tasks, resumable",
        description="One Ray task per video: events (JSONL), MOT tracks and a summary per video into --out. "
                    "Videos already done there are skipped; failed ones are listed in OUT/failed.jsonl.",
    )
    b.add_argument("inputs", nargs="+", type=Path, metavar="VIDEO_OR_DIR")
    b.add_argument("--out", type=Path, required=True, help="output folder")
    b.add_argument("--address", help="Ray cluster; default RAY_ADDRESS, else a Ray instance on this machine")
    b.add_argument("--config", type=Path, help="pipeline YAML (as `run --config`)")
    b.add_argument("--gallery", type=Path, help="gallery file (sent to every task)")
    b.add_argument("--num-cpus", type=float, default=1.0, help="CPUs per video task (default 1)")
    b.add_argument("--num-gpus", type=float, help="GPUs per task (default: 1 when engine.kind is tensorrt, else 0)")
    b.add_argument("--ship-videos", action="store_true",
                   help="send each video's bytes to its node (no shared file system with the workers)")
    b.add_argument("--history", metavar="FILE|URL",
                   help="write every video's tracks and decisions into this history store (overrides history.url; "
                        "query with `facestream history` and `search`); times are each file's pts plus its start "
                        "by history.file_start")
    b.add_argument("--no-progress", action="store_true")
    b.set_defaults(func=run_batch)


def run_site(args: argparse.Namespace) -> int:
    from stream.distributed.driver import SiteDriver, stop_report
    from stream.distributed.site import load_site_config

    site = load_site_config(args.config)
    if args.gallery:
        site = site.model_copy(update={"gallery": args.gallery})
    if site.gallery is not None:
        _check_gallery(site.gallery)
    driver = SiteDriver(site, args.publish, address=args.address, status_every_s=args.status_every,
                        metrics_port=args.metrics_port)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        driver.start()
        print(f"facestream: site events on {driver.proxy.outbound}", file=sys.stderr)
        while not stop.is_set():
            driver.poll()
            if args.status_json:
                _write_json(args.status_json, driver.status())
            stop.wait(1.0)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        summaries = driver.stop()
    print(f"facestream: {stop_report(summaries, driver.shards)}", file=sys.stderr)
    return 0


def _check_gallery(path: Path) -> None:
    """Not found, or not exactly a gallery: one line here, before any node or shard starts."""
    from stream.recognize.gallery import Gallery

    Gallery.load(path)


def run_batch(args: argparse.Namespace) -> int:
    from stream.config.schema import load_config
    from stream.distributed.batch import collect_videos
    from stream.distributed.batch import run_batch as batch

    config = load_config(args.config)
    if args.history:
        config = config.model_copy(update={"history": config.history.model_copy(update={"url": args.history})})
    if config.history.url:  # created or upgraded here: a bad URL is one line now, not a failed batch
        from stream.history.store import HistoryStore

        HistoryStore.open(config.history.url).close()
    gallery = args.gallery or config.gallery
    if gallery is not None:
        _check_gallery(gallery)
    videos = collect_videos(args.inputs)
    gpus = args.num_gpus if args.num_gpus is not None else (1.0 if config.engine.kind == "tensorrt" else 0.0)
    result = batch(videos, args.out, config.model_dump(mode="json"), gallery, address=args.address,
                   num_cpus=args.num_cpus, num_gpus=gpus, ship_videos=args.ship_videos,
                   progress=not args.no_progress and sys.stderr.isatty())
    print(f"facestream batch: {len(videos)} video(s): {result['done']} done, {result['skipped']} already done, "
          f"{len(result['failed'])} failed -> {args.out}", file=sys.stderr)
    if config.history.url:
        from stream.sources.credentials import mask_credentials

        print(f"facestream batch: history: {result.get('history_tracks', 0)} track(s) written to "
              f"{mask_credentials(str(config.history.url))}", file=sys.stderr)
    for name, reason in result["failed"].items():
        print(f"facestream batch: {name}: {reason}", file=sys.stderr)
    return 1 if result["failed"] else 0


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
