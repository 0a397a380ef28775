#!/usr/bin/env python
"""Live benchmark: facestream on a real 30 fps RTSP stream served from 127.0.0.1.

Starts the GStreamer RTSP test server (tests/support/rtsp_server.py, Debian's python3-gi) looping
the clip, runs `facestream run` on it for --seconds, stops it with SIGINT, and reports what the
pipeline's summary says: frames processed against the frames the server sent (no growing
backlog means ~all of them, with drops counted, never queued), and capture->event latency.

    python tools/bench_live.py [--seconds 30] [--json out.json]
    python tools/bench_live.py --checkout /tmp/old-facestream   # the same, with another tree's code

An idle camera (``--still``): a still 640x360 picture (a textured wall with sensor noise, H.264
made by GStreamer's openh264enc) served live at each rate given; for each, CPU per frame over a
steady window of every process of ``facestream run`` with the motion gate on and off, against a
process that only reads the stream with OpenCV (its decode alone):

    python tools/bench_live.py --still 10 30 [--window 20]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tools.proc_cpu import cpu_seconds, family, process_name  # noqa: E402 - after the path fix

MEDIA = Path(os.environ.get("FACESTREAM_MEDIA", REPO / "tests" / "media"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--checkout", type=Path, help="run facestream from this source tree (before/after figures)")
    ap.add_argument("--idle-seconds", type=float, default=0.0,
                    help="then stop the stream and measure each process's CPU while the pipeline idles")
    ap.add_argument("--still", type=float, nargs="+", metavar="FPS",
                    help="an idle camera: a still picture served live at these rates, gate on/off vs decode alone")
    ap.add_argument("--still-size", default="640x360", help="WxH of the still picture")
    ap.add_argument("--window", type=float, default=20.0, help="--still: seconds of steady state measured")
    ap.add_argument("--warmup", type=float, default=12.0, help="--still: seconds after the start not measured")
    ap.add_argument("facestream_args", nargs="*")
    args = ap.parse_args()
    if args.still:
        from tools.bench_idle import idle_table

        return idle_table(args, MEDIA)

    from tests.support.rtsp import RtspServer, gstreamer_rtsp_missing
    from tools.cpu_figures import format_cpu

    env = dict(os.environ)
    if args.checkout:
        env["PYTHONPATH"] = str(args.checkout.resolve())

    missing = gstreamer_rtsp_missing()
    if missing:
        raise SystemExit(f"cannot run: {missing}")
    server = RtspServer(MEDIA / "short_hamilton_clip.mp4").start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            gallery = Path(tmp) / "g.npz"
            subprocess.run([sys.executable, "-m", "stream", "enroll", "--gallery", str(gallery), "--name",
                            "lin-manuel-miranda", str(MEDIA / "lin-manuel-miranda.png")], check=True,
                           capture_output=True, env=env)
            summary_path = Path(tmp) / "summary.json"
            proc = subprocess.Popen([sys.executable, "-m", "stream", "run", "--source", f"live={server.url}",
                                     "--gallery", str(gallery), "--no-progress", "--summary-json", str(summary_path),
                                     *args.facestream_args], stderr=subprocess.PIPE, text=True, env=env)
            time.sleep(args.seconds)
            idle = idle_cpu(proc.pid, server, args.idle_seconds) if args.idle_seconds else None
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
            if proc.returncode != 0:
                raise SystemExit(f"facestream run failed ({proc.returncode}):\n{err}")
            summary = json.loads(summary_path.read_text())
    finally:
        server.kill()
    frames = summary["frames"]
    dropped = summary["per_source"]["live"]["dropped"]
    lat = summary["latency_ms"]
    print(f"{args.seconds:.0f} s of a 29.97 fps RTSP stream on 127.0.0.1, {os.cpu_count()} CPUs")
    print(f"processed {frames} frames ({summary['fps']:.1f} fps), dropped {dropped} (newest-frame policy), "
          f"faces {summary['faces']}, embedded {summary['embedded']}")
    print(f"capture -> event latency ms: p50 {lat.get('p50')} p95 {lat.get('p95')} p99 {lat.get('p99')} "
          f"max {lat.get('max')}")
    print(f"stage ms/frame: {summary['stage_ms_per_frame']}; named: {summary['named_tracks']}")
    print(format_cpu(summary, args.seconds))
    if idle is not None:
        print(f"idle (stream stopped, {args.idle_seconds:.0f} s) CPU % of one core: "
              + "  ".join(f"{name} {pct:.1f}" for name, pct in sorted(idle.items())))
        summary["idle_cpu_percent"] = idle
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


def idle_cpu(root: int, server, seconds: float) -> dict[str, float]:
    """Kill the stream, let the reader fall into its reconnect loop, then sample every process."""
    server.kill()
    time.sleep(2.0)
    pids = family([root])
    before = {pid: cpu_seconds(pid) for pid in pids}
    time.sleep(seconds)
    out = {}
    for pid in pids:
        a, b = before[pid], cpu_seconds(pid)
        if a is not None and b is not None:
            out[f"{process_name(pid)}[{pid}]"] = round(100 * (b - a) / seconds, 1)
    return out


if __name__ == "__main__":
    sys.exit(main())
