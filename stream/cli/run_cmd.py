"""`facestream run`: the real-time pipeline over files, cameras and network streams."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stream.errors import FacestreamError

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run", help="recognise faces in video sources and publish events",
        description="Run the pipeline. With no --source, runs the built-in demo (needs nothing from outside).",
    )
    p.add_argument("--source", action="append", default=[], metavar="[NAME=]SRC",
                   help="video file, camera (0, /dev/video0) or stream (rtsp://, http://, udp://); repeatable")
    p.add_argument("--gallery", type=Path, help="gallery from `facestream enroll`")
    p.add_argument("--config", type=Path, help="YAML config (see config/default.yaml); flags override it")
    p.add_argument("--model", help="embedding model (overrides model.name)")
    p.add_argument("--engine", choices=["auto", "tensorrt", "onnxruntime"], help="overrides engine.kind")
    p.add_argument("--publish", metavar="ENDPOINT", help="bind a ZeroMQ PUB socket, e.g. tcp://*:5556")
    p.add_argument("--publish-key", type=Path, metavar="FILE.key_secret",
                   help="CURVE: encrypt events with this server key (overrides output.publish_server_key)")
    p.add_argument("--publish-clients", type=Path, metavar="DIR",
                   help="CURVE: only subscribers whose .key is in DIR (overrides output.publish_client_keys)")
    p.add_argument("--events-out", type=Path, metavar="FILE.jsonl", help="append events as JSON lines")
    p.add_argument("--mqtt", metavar="mqtt://[USER:PASS@]HOST[:PORT]",
                   help="publish events to an MQTT broker (overrides output.mqtt; ${VAR} for the password)")
    p.add_argument("--webhook", action="append", metavar="URL",
                   help="POST every event as JSON to this http(s) URL; repeatable (overrides output.webhooks)")
    p.add_argument("--tracks-out", type=Path, metavar="FILE.txt",
                   help="per-frame tracks as MOTChallenge rows + identity (one file per source)")
    p.add_argument("--save-unknowns", type=Path, metavar="DIR",
                   help="save each track that ends unknown (best crops + embedding) for `facestream cluster`")
    p.add_argument("--annotate", type=Path, metavar="OUT.mp4", help="write annotated video (one per source)")
    p.add_argument("--history", metavar="FILE|URL",
                   help="keep every track and identity decision in this store: a SQLite file or postgresql://... "
                        "(overrides history.url; query with `facestream history`)")
    p.add_argument("--start-time", metavar="ISO|mtime",
                   help="when a recorded file starts (e.g. 2026-05-01T09:00:00+02:00, or mtime): history times "
                        "are it plus the pts (overrides history.file_start)")
    p.add_argument("--http", metavar="[HOST:]PORT",
                   help="serve the live web view (cameras, events, gallery) there; overrides web.http")
    p.add_argument("--realtime", action="store_true", help="pace files at their own frame rate")
    p.add_argument("--fps", type=float, metavar="N",
                   help="process N frames a second of every source, evenly by timestamp (overrides sources.fps; "
                        "one source: --source NAME=SRC#fps=N)")
    p.add_argument("--metrics-port", type=int, metavar="PORT", help="serve Prometheus metrics on 127.0.0.1:PORT")
    p.add_argument("--max-batch", type=int, help="overrides batching.max_batch")
    p.add_argument("--summary-json", type=Path, help="also write the run summary as JSON")
    p.add_argument("--validate-config", action="store_true", help="check the config and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _same(value):
    return value


#: (flag's argparse dest, config path it overrides, flag value -> config value). A flag overrides only when
#: given: None and False (an unset store_true) are "not given"; 0 is a value (a port, a batch size).
OVERRIDES: tuple[tuple[str, str, Callable[[Any], Any]], ...] = (
    ("gallery", "gallery", _same),
    ("model", "model.name", _same),
    ("engine", "engine.kind", _same),
    ("publish", "output.publish", _same),
    ("publish_key", "output.publish_server_key", _same),
    ("publish_clients", "output.publish_client_keys", _same),
    ("events_out", "output.events_out", _same),
    ("mqtt", "output.mqtt", _same),
    ("webhook", "output.webhooks", lambda urls: [{"url": url} for url in urls]),
    ("tracks_out", "output.tracks_out", _same),
    ("save_unknowns", "output.save_unknowns", _same),
    ("history", "history.url", str),
    ("start_time", "history.file_start", _same),
    ("http", "web.http", _same),
    ("realtime", "sources.realtime", _same),
    ("fps", "sources.fps", _same),
    ("metrics_port", "output.metrics_port", _same),
    ("max_batch", "batching.max_batch", _same),
)


def apply_overrides(config, args: argparse.Namespace):
    """CLI flags win over the config file; returns a new, re-validated config."""
    data = config.model_dump()
    for flag, path, transform in OVERRIDES:
        given = getattr(args, flag)
        if given is None or given is False or given == "":
            continue
        *parents, leaf = path.split(".")
        node = data
        for key in parents:
            node = node[key]
        node[leaf] = transform(given)
    try:
        return type(config).model_validate(data)
    except Exception as exc:  # pydantic.ValidationError: name the flag's field in one line
        first = exc.errors()[0] if hasattr(exc, "errors") else {"loc": (), "msg": str(exc)}
        raise FacestreamError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def run(args: argparse.Namespace) -> int:
    from stream.config.schema import load_config
    from stream.pipeline.runner import run_pipeline
    from stream.sources.spec import parse_sources

    config = apply_overrides(load_config(args.config), args)
    if args.validate_config:
        print(f"{args.config or 'defaults'}: ok")
        return 0
    texts = list(args.source)
    if not texts:
        from stream.demo import DEMO_NAME, ensure_demo
        from stream.models.store import ModelStore

        video, gallery = ensure_demo(ModelStore().root / "demo", config.model.name)
        print(f"facestream: no --source given: running the built-in demo ({video}, gallery of '{DEMO_NAME}')",
              file=sys.stderr)
        texts = [f"demo={video}"]
        if config.gallery is None:
            config = config.model_copy(update={"gallery": gallery})
    sources = parse_sources(texts)
    if args.annotate is not None:  # checked here, not in the publisher that opens it mid-run
        from stream.cvpath import opencv_path

        opencv_path(args.annotate)
    if config.history.url:  # created or upgraded here: a bad URL is one line now, not a failed publisher
        from stream.history.store import HistoryStore

        HistoryStore.open(config.history.url).close()
    open_view = None
    if config.web.http:
        from stream.web.live import open_run_view as open_view
    summary = run_pipeline(config, sources, annotate=args.annotate, open_view=open_view,
                           progress=not args.no_progress and sys.stderr.isatty(),
                           log_level=args.log_level)
    if args.summary_json:
        args.summary_json.write_text(json.dumps(summary, indent=2) + "\n")
    print(format_summary(summary), file=sys.stderr)
    if summary.get("errors"):
        for name, error in summary["errors"].items():
            print(f"facestream: {name}: {error}", file=sys.stderr)
        return 1
    return 0


def format_summary(s: dict) -> str:
    lat = s.get("latency_ms") or {}
    stages = s.get("stage_ms_per_frame") or {}
    split = " ".join(f"{k} {v:.1f}" for k, v in stages.items())
    named = sorted({n for names in (s.get("named_tracks") or {}).values() for n in names})
    return (f"facestream: {s.get('frames', 0)} frames, {s.get('faces', 0)} faces "
            f"({s.get('embedded', 0)} embedded), {s.get('tracks', 0)} tracks, {s.get('fps', 0):.1f} fps; "
            f"latency p50 {lat.get('p50', 0):.0f} ms p95 {lat.get('p95', 0):.0f} ms; "
            f"ms/frame: {split}; identities: {', '.join(named) or 'none'}; "
            f"engine {(s.get('engine') or {}).get('backend', '?')}{_not_processed(s)}{_restarts(s)}{_mqtt(s)}"
            f"{_webhooks(s)}{_history(s)}")


def _history(s: dict) -> str:
    """The history store's rows in the summary line: a loss is not only in the log."""
    rows = (s.get("sinks") or {}).get("history")
    if not rows:
        return ""
    return f"; history: {rows['delivered']} rows written, {rows['dropped']} dropped"


def _not_processed(s: dict) -> str:
    """Frames a source gave that were not processed, each kind apart: dropped by the newest-frame
    policy (by design under load), corrupt (undecodable, skipped) and skipped for the processing rate
    (sources.fps, by design); lost ones go with the restarts."""
    counts = {kind: int(s.get(kind) or 0) for kind in ("dropped", "corrupt", "skipped")}
    if not any(counts.values()):
        return ""
    return "; frames " + ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)


def _mqtt(s: dict) -> str:
    """MQTT's totals over every publisher of the run, in the summary line (a loss is not only in the log)."""
    mqtt = s.get("mqtt")
    if not mqtt:
        return ""
    return (f"; mqtt: {mqtt['published']} published ({mqtt['acked']} acknowledged), "
            f"{mqtt['dropped']} dropped")


def _webhooks(s: dict) -> str:
    """Each webhook's totals in the summary line, like MQTT's: a loss is not only in the log."""
    hooks = {name: n for name, n in (s.get("sinks") or {}).items() if name.startswith("webhook")}
    return "".join(f"; {name}: {n['delivered']} delivered, {n['dropped']} dropped" for name, n in hooks.items())


def _restarts(s: dict) -> str:
    """Restarts and what they cost, said in the summary line (never only in the log)."""
    restarts = {name: n for name, n in (s.get("restarts") or {}).items() if n}
    if not restarts:
        return ""
    lost = sum(src.get("lost", 0) for src in (s.get("per_source") or {}).values())
    return (f"; restarts: {', '.join(f'{name} x{n}' for name, n in sorted(restarts.items()))}"
            f" ({lost} frame{'s' if lost != 1 else ''} lost)")
