"""An idle camera's cost (``tools/bench_live.py --still``): CPU per frame of every process against decode alone.

A still picture (a textured wall with fresh sensor noise in each frame, so the encoder has work and
the decoder too, as with a real camera) is encoded to H.264 with GStreamer's openh264enc at each
rate and served by the RTSP test server. For each rate, one after the other on the same server:

- decode alone: a process that opens the stream the way facestream's reader does
  (``stream.sources.capture.open_ffmpeg``, RTSP over TCP) and reads every frame;
- ``facestream run`` with ``detector.motion_gate`` on, then off.

Each is measured over the same steady window after a warm-up: CPU seconds of every process (from
/proc, so the RTSP server is left out) over the frames the camera gave in that window: processed,
held back at the reader as still, or dropped (facestream's Prometheus figures; the reader's own
count for decode alone).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tools.proc_cpu import cpu_seconds, family, process_name

GST_ENCODE = """
import sys, gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
pattern, fps, count, out = sys.argv[1:5]
pipe = Gst.parse_launch(
    f"multifilesrc location={pattern} loop=true num-buffers={count} caps=image/png,framerate={fps}/1 ! pngdec "
    "! videoconvert ! video/x-raw,format=I420 ! openh264enc bitrate=1000000 gop-size=60 ! h264parse ! mp4mux "
    f"! filesink location={out}")
pipe.set_state(Gst.State.PLAYING)
msg = pipe.get_bus().timed_pop_filtered(120 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
pipe.set_state(Gst.State.NULL)
sys.exit(0 if msg is not None and msg.type == Gst.MessageType.EOS else 1)
"""

DECODE_ONLY = """
import json, os, sys, time
sys.path.insert(0, sys.argv[4])
os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
from stream.sources.capture import open_ffmpeg
url, warmup, window = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
cap = open_ffmpeg(url, 10.0, 10.0)
t0, marks, frames = time.monotonic(), [], 0
while len(marks) < 2:
    ok, _ = cap.read()
    if not ok:
        sys.exit("decode alone: read failed")
    frames += 1
    if time.monotonic() - t0 >= warmup + window * len(marks):
        marks.append((frames, time.process_time()))
cap.release()
print(json.dumps({"frames": marks[1][0] - marks[0][0], "cpu_s": marks[1][1] - marks[0][1]}))
"""


def still_clip(folder: Path, size: tuple[int, int], fps: float, seconds: float = 20.0) -> Path:
    """A still picture with fresh sensor noise in each frame, as H.264 at ``fps``, ``seconds`` long (looped)."""
    import cv2
    import numpy as np

    from tests.support.scenes import textured_background

    wall = textured_background(*size, np.random.default_rng(3), noise=0.0)
    rng = np.random.default_rng(0)
    frames = folder / "png"
    frames.mkdir(exist_ok=True)
    for i in range(30):
        noisy = np.clip(wall + rng.normal(0, 2.0, wall.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(frames / f"f{i:03d}.png"), noisy)
    out = folder / f"still-{size[0]}x{size[1]}-{fps:g}.mp4"
    subprocess.run(["/usr/bin/python3", "-c", GST_ENCODE, str(frames / "f%03d.png"), f"{fps:g}",
                    str(round(fps * seconds)), str(out)], check=True, capture_output=True, timeout=300)
    return out


def _name(pid: int) -> str:
    """The worker's name (``fs-detect``...: the pipeline names its processes in /proc), or main."""
    comm = process_name(pid)
    return comm.removeprefix("fs-") if comm.startswith("fs-") else "main"


def _frames_done(port: int, metrics: tuple[str, ...] = ("facestream_frames_total",)) -> int:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return int(sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith(tuple(f"{m}{{" for m in metrics))))


#: every frame the camera gave: processed, held back as still (skipped) or dropped: the cost of an idle
#: camera is per frame it sends, whether or not the pipeline processes it
_RECEIVED = ("facestream_frames_total", "facestream_frames_skipped", "facestream_frames_dropped")


def _wait_for_frames(proc: subprocess.Popen, port: int, timeout: float) -> None:
    """Until the run has processed its first frames (models loaded, the stream open)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"facestream run exited ({proc.returncode}):\n{proc.stderr.read() if proc.stderr else ''}")
        try:
            if _frames_done(port) > 0:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit("facestream run processed no frame in time")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def facestream_idle(url: str, gate: bool, warmup: float, window: float, env: dict, tmp: Path) -> dict:
    config = tmp / f"gate-{gate}.yaml"
    # heartbeats (and with them the skipped and dropped gauges) every 0.5 s: the window's count is exact
    config.write_text(f"detector:\n  motion_gate: {str(gate).lower()}\noutput:\n  heartbeat_s: 0.5\n")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "stream", "run", "--source", f"idle={url}", "--config", str(config),
                             "--no-progress", "--metrics-port", str(port), "--summary-json", str(tmp / "s.json")],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    try:
        _wait_for_frames(proc, port, timeout=120)
        time.sleep(warmup)
        pids = family([proc.pid])
        names = {pid: _name(pid) for pid in pids}
        before, frames0 = {pid: cpu_seconds(pid) for pid in pids}, _frames_done(port, _RECEIVED)
        time.sleep(window)
        after, frames1 = {pid: cpu_seconds(pid) for pid in pids}, _frames_done(port, _RECEIVED)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise SystemExit(f"facestream run failed ({proc.returncode}):\n{err}")
    per_process: dict[str, float] = {}
    for p in pids:  # summed by name: the run's main process and multiprocessing's helpers are all "main"
        if before[p] is not None and after[p] is not None:
            per_process[names[p]] = per_process.get(names[p], 0.0) + after[p] - before[p]
    summary = json.loads((tmp / "s.json").read_text())
    return {"frames": frames1 - frames0, "cpu_s": sum(per_process.values()), "per_process": per_process,
            "dropped": summary["per_source"]["idle"]["dropped"]}


def decode_alone(url: str, warmup: float, window: float, repo: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", DECODE_ONLY, url, str(warmup), str(window), str(repo)],
                         check=True, capture_output=True, text=True, timeout=warmup + window + 60)
    return json.loads(out.stdout.strip().splitlines()[-1])


def idle_table(args, media: Path) -> int:
    from tests.support.rtsp import RtspServer, gstreamer_rtsp_missing

    missing = gstreamer_rtsp_missing()
    if missing:
        raise SystemExit(f"cannot run: {missing}")
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ)
    if args.checkout:
        env["PYTHONPATH"] = str(args.checkout.resolve())
    width, height = (int(v) for v in args.still_size.lower().split("x"))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for fps in args.still:
            server = RtspServer(still_clip(tmp, (width, height), fps)).start()
            try:
                figures = {"decode alone": decode_alone(server.url, args.warmup / 2, args.window, repo)}
                for gate in (True, False):
                    figures[f"gate {'on' if gate else 'off'}"] = facestream_idle(server.url, gate, args.warmup,
                                                                               args.window, env, tmp)
            finally:
                server.kill()
            rows.append((fps, figures))
    load = os.getloadavg()
    print(f"An idle camera: a still {width}x{height} picture (sensor noise sigma 2, H.264) served live on 127.0.0.1; "
          f"CPU over a {args.window:.0f} s window, all processes; {os.cpu_count()} CPUs, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'fps':>4} {'what':<13} {'frames':>6} {'CPU ms/frame':>12} {'beyond decode':>13} {'x decode':>8}")
    for fps, figures in rows:
        decode = 1e3 * figures["decode alone"]["cpu_s"] / max(figures["decode alone"]["frames"], 1)
        for what, f in figures.items():
            ms = 1e3 * f["cpu_s"] / max(f["frames"], 1)
            extra = "" if what == "decode alone" else f"{ms - decode:13.2f}"
            drops = f"  (dropped {f['dropped']})" if f.get("dropped") else ""
            print(f"{fps:4g} {what:<13} {f['frames']:6d} {ms:12.2f} {extra:>13} {ms / decode:8.2f}{drops}")
            if "per_process" in f:
                print(" " * 19 + "  ".join(f"{name} {1e3 * cpu / max(f['frames'], 1):.2f}"
                                           for name, cpu in sorted(f["per_process"].items())))
    if args.json:
        args.json.write_text(json.dumps({"load": load, "rows": [{"fps": fps, **figures} for fps, figures in rows]},
                                        indent=2))
    return 0
