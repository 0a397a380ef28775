"""`facestream site batch`: recorded videos as Ray tasks, one per video, resumable.

Each task runs `facestream run` on its video on whatever node Ray picks (CPU or GPU as the config
asks) and returns the events and MOT tracks as text, so DIR may be on the driver's own disk: no
shared file system is needed. With ``history.url`` the task also returns its video's history rows,
and the driver writes them into that one store (stream/history/archive.py says why there). A video
is done when ``DIR/<name>.summary.json`` exists, written last (atomically) after its history,
events and tracks: a re-run skips those, and a video whose task failed is listed in
``DIR/failed.jsonl`` with its reason and tried again on the next run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stream.distributed.deps import init_ray, node_identity, require_ray
from stream.errors import FacestreamError
from stream.sources.spec import VIDEO_FILE_SUFFIXES

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Video:
    path: Path
    name: str  # unique within the job: the output files' stem

    def outputs(self, out: Path) -> dict[str, Path]:
        return {"events": out / f"{self.name}.events.jsonl", "tracks": out / f"{self.name}.tracks.txt",
                "summary": out / f"{self.name}.summary.json"}


def collect_videos(inputs: Iterable[Path]) -> list[Video]:
    """Files as given and the videos inside folders (recursively), each named uniquely."""
    paths: list[Path] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            paths.extend(sorted(p for p in item.rglob("*") if p.suffix.lower() in VIDEO_FILE_SUFFIXES and p.is_file()))
        elif item.is_file():
            paths.append(item)
        else:
            raise FacestreamError(f"{item}: no such file or folder")
    if not paths:
        raise FacestreamError("no videos found in the given files and folders")
    videos, used = [], set()
    for path in paths:
        stem = _UNSAFE.sub("_", path.stem) or "video"
        name, n = stem, 2
        while name in used:  # same stem in two folders: keep both
            name, n = f"{stem}.{n}", n + 1
        used.add(name)
        videos.append(Video(path.resolve(), name))
    return videos


def run_video(source: str | bytes, name: str, suffix: str, pipeline_config: dict[str, Any],
              gallery: bytes | None) -> dict[str, Any]:
    """The task body: one `facestream run` on one video (its path on this node, or its bytes); its
    outputs as text, or the reason it failed."""
    with tempfile.TemporaryDirectory(prefix=f"facestream-batch-{name}-") as tmp:
        work = Path(tmp)
        if isinstance(source, bytes):  # the driver sent the file: it is not on this node's disk
            video = work / f"{name}{suffix}"
            video.write_bytes(source)
        else:
            video = Path(source)
        config = json.loads(json.dumps(pipeline_config))
        config.setdefault("output", {}).update({"publish": None, "metrics_port": None, "events_out": None,
                                                "tracks_out": None})
        config.setdefault("web", {})["http"] = None
        config["gallery"] = None
        history = config.get("history") or {}
        if history.get("url"):  # its own store here; the driver writes the rows into the real one
            from stream.history.archive import task_history

            config["history"] = task_history(history, work / "history.db")
        if gallery:
            (work / "gallery.npz").write_bytes(gallery)
            config["gallery"] = str(work / "gallery.npz")
        (work / "config.yaml").write_text(yaml.safe_dump(config))
        started = time.time()
        proc = subprocess.run(
            [sys.executable, "-m", "stream", "run", "--config", str(work / "config.yaml"), "--no-progress",
             "--source", f"{name}={video}", "--events-out", str(work / "events.jsonl"),
             "--tracks-out", str(work / "tracks.txt"), "--summary-json", str(work / "summary.json")],
            capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if proc.returncode != 0:
            return {"ok": False, "reason": failure_reason(proc.stderr, proc.returncode)}
        summary = json.loads((work / "summary.json").read_text())
        summary["node"] = node_identity()
        summary["wall_s"] = round(time.time() - started, 2)
        result = {"ok": True, "events": _read(work / "events.jsonl"), "tracks": _read(work / "tracks.txt"),
                  "summary": summary}
        if history.get("url"):
            from stream.history.archive import RunRecords, read_run

            # no file: the run ended no track (the recorder opens its store with its first rows)
            store = work / "history.db"
            result["history"] = read_run(store) if store.exists() else RunRecords()
        return result


def failure_reason(stderr: str, returncode: int) -> str:
    """The run's own error line, without its ``facestream: `` prefix (the report adds its own)."""
    lines = [ln for ln in stderr.strip().splitlines() if ln.startswith("facestream: ")]
    if lines:
        return lines[-1].removeprefix("facestream: ")
    return stderr.strip()[-300:] or f"exit status {returncode}"


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def write_outputs(video: Video, out: Path, result: dict[str, Any]) -> None:
    """Events and tracks first, the summary last: its presence means the video is done."""
    paths = video.outputs(out)
    for key in ("events", "tracks"):
        _atomic_write(paths[key], result[key])
    summary = {**result["summary"], "video": str(video.path)}
    _atomic_write(paths["summary"], json.dumps(summary, indent=2) + "\n")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_batch(videos: list[Video], out: Path, pipeline_config: dict[str, Any], gallery: Path | None, *,
              address: str | None = None, num_cpus: float = 1.0, num_gpus: float = 0.0,
              ship_videos: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run every video not done yet; returns {done, skipped, failed: {name: reason}}."""
    ray = require_ray()
    out.mkdir(parents=True, exist_ok=True)
    todo = [v for v in videos if not v.outputs(out)["summary"].exists()]
    skipped = len(videos) - len(todo)
    failed: dict[str, str] = {}
    if not todo:
        return {"done": 0, "skipped": skipped, "failed": failed, "history_tracks": 0}
    history = _archive_writer(pipeline_config)  # opened first: a store that is not there fails before Ray
    started_ray = not ray.is_initialized()
    if started_ray:
        init_ray(ray, address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        from stream.recognize.gallery import gallery_bytes

        # base and appended segments as one file: each task writes it into its own folder
        gallery_ref = ray.put(gallery_bytes(gallery)) if gallery is not None else None
        task = ray.remote(run_video).options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=1,
                                             retry_exceptions=False)
        refs = {}
        for video in todo:
            source = ray.put(video.path.read_bytes()) if ship_videos else str(video.path)
            refs[task.remote(source, video.name, video.path.suffix, pipeline_config, gallery_ref)] = video
        bar = _bar(len(videos), skipped) if progress else None
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            video = refs[ready[0]]
            try:
                result = ray.get(ready[0])
            except Exception as exc:  # the task's node died twice, or the task itself broke
                result = {"ok": False, "reason": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
            if result["ok"] and history is not None:
                result = write_history(history, video, result)
            if result["ok"]:
                write_outputs(video, out, result)
            else:
                failed[video.name] = result["reason"]
                with open(out / "failed.jsonl", "a") as f:
                    f.write(json.dumps({"video": str(video.path), "name": video.name, "reason": result["reason"],
                                        "ts": time.time()}) + "\n")
            if bar is not None:
                bar.update(1)
                bar.set_postfix(failed=len(failed))
        if bar is not None:
            bar.close()
    finally:
        if started_ray:
            ray.shutdown()
        if history is not None:
            history.close()
    return {"done": len(todo) - len(failed), "skipped": skipped, "failed": failed,
            "history_tracks": history.tracks if history is not None else 0}


def _archive_writer(pipeline_config: dict[str, Any]) -> Any:
    """The one store every video's history goes to (``history.url``), or None."""
    history = pipeline_config.get("history") or {}
    if not history.get("url"):
        return None
    from stream.history.archive import ArchiveWriter
    from stream.history.config import HistoryConfig

    return ArchiveWriter(str(history["url"]), HistoryConfig.model_validate(history))


def write_history(writer: Any, video: Video, result: dict[str, Any]) -> dict[str, Any]:
    """The video's history into the store, before its summary: a store that fails leaves the video to
    do again on the next run (failed.jsonl says why), never done without its history."""
    from stream.history.archive import RunRecords, archive_run_id
    from stream.sources.credentials import mask_credentials

    summary = result["summary"]
    try:
        n = writer.write_run(result.get("history") or RunRecords(), run_id=archive_run_id(video.path),
                             source=video.name, video=video.path,
                             started_at=time.time() - float(summary.get("wall_s") or 0.0))
    except Exception as exc:  # the database is away or refused the rows
        line = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        return {"ok": False, "reason": f"history: {mask_credentials(writer.url)}: {line}"}
    summary["history_tracks"] = n
    return result


def _bar(total: int, done: int):
    from tqdm import tqdm

    return tqdm(total=total, initial=done, unit="video", desc="facestream batch", dynamic_ncols=True)
