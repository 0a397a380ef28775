#!/usr/bin/env python
"""Site benchmark: how many live cameras this machine keeps in real time, and what each one costs.

N cameras are N clients of the GStreamer RTSP test server (tests/support/rtsp_server.py) on 127.0.0.1,
each looping the same footage from its first frame at 29.97 fps:

    clip     tests/media/short_hamilton_clip.mp4 (640x360, H.264)
    canvas   the clip shrunk by --canvas-scale onto the 1920x1080 canvas of tests/support/scenes.py,
             encoded once to H.264 (openh264, out/bench_site/) with Debian's GStreamer

For each N, one `facestream run` with N `--source`s (or, with --layout runs, N runs of one source each)
runs at --fps frames a second (`facestream run --fps`; none: every frame) for --seconds after a warm-up.
N is kept when, over that window, every camera delivered at least 97% of the frames its rate asks for
and under 1% of them were dropped. N grows by doubling from --start until a failure, then the gap is
bisected; the largest N kept is reported with:

- CPU per camera: every process of the run(s) (from /proc) over the window, as % of one core and ms per
  processed frame; the RTSP server's own CPU is reported apart (a real camera does that work);
- recall on the frames processed: each face of the reference (the same footage run offline through
  `facestream run`, every frame, cached in out/bench_site/) counts as found when a processed frame at most
  half a processing interval from it has a box matching it (IoU >= 0.3, or centred and of similar size:
  tools/bench_detection.py's rule). So this is recall against facestream itself at every frame: what
  running live at this rate costs, not the detector's own recall (docs/benchmarks.md has that vs dlib).

    python tools/bench_site.py --footage clip [--fps 10] [--seconds 20] [--start 1] [--max-n 16] [--json out.json]
    python tools/bench_site.py --footage canvas --fps 10 --n 3          # one N only
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tools.proc_cpu import cpu_seconds, family  # noqa: E402 - after the path fix

MEDIA = Path(os.environ.get("FACESTREAM_MEDIA", REPO / "tests" / "media"))
OUT = REPO / "out" / "bench_site"
SOURCE_FPS = 29.97  # what the RTSP server sends: the clip's rate
MIN_DELIVERED = 0.97  # of the frames the rate asks for, per camera
MAX_DROPPED = 0.01  # of the frames read


# -- the N search (pure) ------------------------------------------------------------------------------------

@dataclass
class NSearch:
    """Doubling from ``start`` until a failure (or ``max_n``), then bisecting between the largest N kept
    and the smallest that failed. Assumes that more cameras never fit better than fewer."""

    start: int = 1
    max_n: int = 64
    results: dict[int, bool] = field(default_factory=dict)

    def record(self, n: int, kept: bool) -> None:
        self.results[n] = kept

    @property
    def best(self) -> int:
        """The largest N kept (0: not even ``start``)."""
        return max((n for n, kept in self.results.items() if kept), default=0)

    def next(self) -> int | None:
        """The next N to try, or None when the answer is known."""
        if not self.results:
            return self.start
        failed = [n for n, kept in self.results.items() if not kept]
        low = self.best
        if not failed:
            return None if low >= self.max_n else min(low * 2, self.max_n)
        high = min(failed)
        if high <= self.start:
            return None  # start itself failed: 0 (or a smaller start) is the answer
        if high - low <= 1:
            return None
        return (low + high) // 2 if low else None


# -- the window's figures (pure) -------------------------------------------------------------------------------

@dataclass
class Window:
    """One camera's counters over the measured window."""

    processed: int
    dropped: int
    seconds: float
    rate: float  # frames a second it should process

    @property
    def delivered(self) -> float:
        return self.processed / max(self.rate * self.seconds, 1e-9)

    @property
    def dropped_share(self) -> float:
        return self.dropped / max(self.processed + self.dropped, 1)

    def kept(self) -> bool:
        return self.delivered >= MIN_DELIVERED and self.dropped_share < MAX_DROPPED


def recall(reference: dict[int, np.ndarray], live: dict[int, np.ndarray], clip_frames: int, first: int, last: int,
           tolerance: int) -> tuple[int, int]:
    """(found, total) reference faces over the live frame indices ``first..last``: live index i shows clip
    frame i % clip_frames; a face is found when a processed live frame within ``tolerance`` of i has a box
    matching it. ``reference``: clip frame -> boxes (x1, y1, x2, y2); ``live``: processed index -> boxes."""
    from tools.bench_detection import match

    found = total = 0
    for i in range(first, last + 1):
        ref = reference.get(i % clip_frames)
        if ref is None or not len(ref):
            continue
        total += len(ref)
        hit = np.zeros(len(ref), bool)
        for j in range(i - tolerance, i + tolerance + 1):
            ours = live.get(j)
            if ours is not None and len(ours):
                ref_idx, _ = match(ref, ours)
                hit[ref_idx] = True
        found += int(hit.sum())
    return found, total


def mot_boxes(path: Path) -> dict[int, np.ndarray]:
    """A --tracks-out file as 0-based frame index -> boxes (x1, y1, x2, y2)."""
    from stream.events.mot import read_mot

    rows: dict[int, list[list[float]]] = {}
    if path.exists():
        for frame, _tid, x, y, w, h, _conf, _name in read_mot(path):
            rows.setdefault(frame - 1, []).append([x, y, x + w, y + h])
    return {k: np.array(v, np.float32) for k, v in rows.items()}


# -- footage and reference ------------------------------------------------------------------------------------

def footage(name: str, canvas_scale: float) -> Path:
    if name == "clip":
        return MEDIA / "short_hamilton_clip.mp4"
    path = OUT / f"canvas-{canvas_scale:.3f}-1920x1080.mp4"
    if not path.exists():
        import cv2

        from tests.support.scenes import hamilton_canvas_frames
        from tools.bench_decode import _gst_transcode

        OUT.mkdir(parents=True, exist_ok=True)
        master = path.with_suffix(".avi")
        writer = cv2.VideoWriter(str(master), cv2.VideoWriter_fourcc(*"MJPG"), SOURCE_FPS, (1920, 1080))
        for _, frame in hamilton_canvas_frames(canvas_scale, every=1):
            writer.write(frame)
        writer.release()
        encoder = "openh264enc bitrate=6000000 ! h264parse ! video/x-h264,stream-format=avc ! mp4mux"
        if not _gst_transcode(master, path, encoder):
            raise SystemExit("cannot encode the canvas to H.264: needs Debian's GStreamer with openh264enc")
        master.unlink()
    return path


def reference(video: Path, gallery: Path, tmp: Path) -> dict[int, np.ndarray]:
    """Every frame of the footage through `facestream run` offline (cached by file name and size: delete
    out/bench_site/reference-* after changing the detector or tracker)."""
    OUT.mkdir(parents=True, exist_ok=True)
    cached = OUT / f"reference-{video.stem}-{video.stat().st_size}.txt"
    if not cached.exists():
        done = subprocess.run([sys.executable, "-m", "stream", "run", "--source", str(video), "--gallery",
                               str(gallery), "--no-progress", "--tracks-out", str(tmp / "ref.txt")],
                              cwd=REPO, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"reference run failed:\n{done.stderr}")
        (tmp / "ref.txt").replace(cached)
    return mot_boxes(cached)


def clip_length(video: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(video))
    frames = 0
    while cap.grab():
        frames += 1
    cap.release()
    return frames


# -- processes ------------------------------------------------------------------------------------------------

def scrape(ports: list[int]) -> dict[str, tuple[int, int, bool]]:
    """source -> (frames processed, frames dropped, online), from each run's Prometheus metrics."""
    import urllib.request

    out: dict[str, list] = {}
    for port in ports:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
                text = reply.read().decode()
        except OSError:
            continue
        for line in text.splitlines():
            for metric, slot in (("facestream_frames_total", 0), ("facestream_frames_dropped", 1),
                                 ("facestream_source_online", 2)):
                if line.startswith(metric + '{source="'):
                    name = line.split('"')[1]
                    out.setdefault(name, [0, 0, False])[slot] = float(line.rsplit(" ", 1)[1])
    return {name: (int(v[0]), int(v[1]), bool(v[2])) for name, v in out.items()}


# -- one trial ------------------------------------------------------------------------------------------------

@dataclass
class Trial:
    n: int
    kept: bool
    windows: dict[str, Window]
    cpu_percent_per_camera: float
    cpu_ms_per_frame: float
    server_cpu_percent: float
    recall: float | None
    faces: int
    load_average: float

    def row(self) -> dict:
        worst = min(self.windows.values(), key=lambda w: (w.kept(), w.delivered))
        return {"n": self.n, "kept": self.kept, "worst_delivered": round(worst.delivered, 3),
                "dropped_share": round(max(w.dropped_share for w in self.windows.values()), 4),
                "cpu_percent_per_camera": round(self.cpu_percent_per_camera, 1),
                "cpu_ms_per_frame": round(self.cpu_ms_per_frame, 2),
                "server_cpu_percent": round(self.server_cpu_percent, 1),
                "recall": None if self.recall is None else round(self.recall, 3), "reference_faces": self.faces,
                "load_average": round(self.load_average, 2)}


def run_trial(n: int, url: str, server_pid: int, gallery: Path, args: argparse.Namespace, tmp: Path,
              reference_boxes: dict[int, np.ndarray], frames_in_clip: int) -> Trial:
    from tests.support.net import free_port

    config = tmp / "bench.yaml"
    config.write_text(f"output:\n  heartbeat_s: 1.0\npipeline:\n  detect_workers: {args.detect_workers}\n")
    names = [f"cam{k}" for k in range(n)]
    groups = [names] if args.layout == "one-run" else [[name] for name in names]
    procs, ports, tracks = [], [], {}
    rate_args = ["--fps", f"{args.fps:g}"] if args.fps else []
    for g, group in enumerate(groups):
        port = free_port()
        out = tmp / f"tracks-{n}-{g}.txt"
        cmd = [sys.executable, "-m", "stream", "run", "--gallery", str(gallery), "--metrics-port", str(port),
               "--config", str(config), "--no-progress", "--tracks-out", str(out), *rate_args]
        for name in group:
            cmd += ["--source", f"{name}={url}"]
            tracks[name] = out if len(group) == 1 else out.with_name(f"{out.stem}-{name}{out.suffix}")
        procs.append(subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        ports.append(port)
    rate = min(args.fps or SOURCE_FPS, SOURCE_FPS)
    try:
        deadline = time.monotonic() + 180
        while True:  # warm: every camera online and counting
            state = scrape(ports)
            if len(state) == n and all(online and frames > 0 for frames, _, online in state.values()):
                break
            for proc in procs:
                if proc.poll() is not None:
                    raise SystemExit(f"facestream run exited {proc.returncode}:\n{proc.stderr.read()}")
            if time.monotonic() > deadline:
                raise SystemExit(f"N={n}: the cameras did not all come up in 180 s")
            time.sleep(0.2)
        time.sleep(args.warmup)
        pids = family(p.pid for p in procs)
        before, server0, t0 = scrape(ports), (cpu_seconds(server_pid) or 0.0), time.monotonic()
        cpu0 = {pid: cpu_seconds(pid) or 0.0 for pid in pids}
        time.sleep(args.seconds)
        after, server1, seconds = scrape(ports), (cpu_seconds(server_pid) or 0.0), time.monotonic() - t0
        cpu = sum((cpu_seconds(pid) or 0.0) - cpu0[pid] for pid in pids)
        load = os.getloadavg()[0]
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    windows = {name: Window(processed=after[name][0] - before[name][0],
                            dropped=after[name][1] - before[name][1], seconds=seconds, rate=rate) for name in names}
    processed = sum(w.processed for w in windows.values())
    found = total = 0
    if reference_boxes:
        tolerance = int(SOURCE_FPS / rate / 2 + 1e-6)
        for name in names:
            live = mot_boxes(tracks[name])
            if live:  # the first loop of the footage is the warm-up: tracks form there
                f, t = recall(reference_boxes, live, frames_in_clip, frames_in_clip, max(live), tolerance)
                found, total = found + f, total + t
    return Trial(n=n, kept=all(w.kept() for w in windows.values()), windows=windows,
                 cpu_percent_per_camera=100 * cpu / seconds / n, cpu_ms_per_frame=1e3 * cpu / max(processed, 1),
                 server_cpu_percent=100 * (server1 - server0) / seconds, recall=found / total if total else None,
                 faces=total, load_average=load)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--footage", choices=("clip", "canvas"), default="clip")
    ap.add_argument("--canvas-scale", type=float, default=0.5, help="the clip's scale on the 1080p canvas")
    ap.add_argument("--fps", type=float, default=None, help="processing rate per camera (none: every frame)")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured window per N")
    ap.add_argument("--warmup", type=float, default=12.0, help="seconds after every camera is up, before measuring")
    ap.add_argument("--start", type=int, default=1)
    ap.add_argument("--max-n", type=int, default=32)
    ap.add_argument("--n", type=int, default=None, help="try this N only")
    ap.add_argument("--layout", choices=("one-run", "runs"), default="one-run",
                    help="one `facestream run` with N --source, or N runs of one source each")
    ap.add_argument("--detect-workers", type=int, default=1, help="pipeline.detect_workers of the run(s)")
    ap.add_argument("--no-recall", action="store_true", help="skip the reference run and the recall figure")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.fps and "--fps" not in subprocess.run([sys.executable, "-m", "stream", "run", "--help"], cwd=REPO,
                                                   capture_output=True, text=True).stdout:
        raise SystemExit("--fps: this tree's `facestream run` has no --fps yet; run at full rate (no --fps)")

    from tests.support.rtsp import RtspServer, gstreamer_rtsp_missing

    missing = gstreamer_rtsp_missing()
    if missing:
        raise SystemExit(f"cannot run: {missing}")
    video = footage(args.footage, args.canvas_scale)
    tmp = Path(tempfile.mkdtemp(prefix="bench-site-"))
    gallery = tmp / "people.npz"
    for name in ("lin-manuel-miranda", "alex-lacamoire"):
        subprocess.run([sys.executable, "-m", "stream", "enroll", "--gallery", str(gallery), "--name", name,
                        str(MEDIA / f"{name}.png")], cwd=REPO, check=True, capture_output=True)
    reference_boxes = {} if args.no_recall else reference(video, gallery, tmp)
    frames_in_clip = clip_length(video)
    search = NSearch(start=args.n or args.start, max_n=args.n or args.max_n)
    trials: list[Trial] = []
    server = RtspServer(video).start()
    try:
        while (n := search.next()) is not None:
            trial = run_trial(n, server.url, server.proc.pid, gallery, args, tmp, reference_boxes, frames_in_clip)
            search.record(n, trial.kept)
            trials.append(trial)
            print(json.dumps(trial.row()), file=sys.stderr)
            if args.n:
                break
    finally:
        server.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    best = next((t for t in trials if t.n == search.best), None)
    rate = f"{args.fps:g} fps" if args.fps else "every frame (29.97 fps)"
    print(f"\n{args.footage} ({video.name}), {rate}, layout {args.layout}, {os.cpu_count()} CPUs, "
          f"load average at the end {os.getloadavg()[0]:.2f}")
    print("| N | kept | worst camera: delivered | dropped | CPU % of a core per camera | CPU ms per frame | "
          "RTSP server CPU % | recall | load avg |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for t in sorted(trials, key=lambda t: t.n):
        r = t.row()
        print(f"| {t.n} | {'yes' if t.kept else 'no'} | {r['worst_delivered']:.3f} | {100 * r['dropped_share']:.2f}% | "
              f"{r['cpu_percent_per_camera']:.1f} | {r['cpu_ms_per_frame']:.2f} | {r['server_cpu_percent']:.1f} | "
              f"{r['recall'] if r['recall'] is not None else '-'} | {r['load_average']:.2f} |")
    print(f"largest N in real time with under {100 * MAX_DROPPED:g}% dropped: {search.best}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"footage": args.footage, "video": video.name, "fps": args.fps,
                                         "layout": args.layout, "cpus": os.cpu_count(), "best_n": search.best,
                                         "best": best.row() if best else None,
                                         "trials": [t.row() for t in trials]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
