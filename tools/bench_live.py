#!/usr/bin/env python
"""Live benchmark: facestream on a real 30 fps RTSP stream served from 127.0.0.1.

Starts the GStreamer RTSP test server (tests/support/rtsp_server.py, Debian's python3-gi) looping
the clip, runs `facestream run` on it for --seconds, stops it with SIGINT, and reports what the
pipeline's summary says: frames processed against the frames the server sent (no growing
backlog means ~all of them, with drops counted, never queued), and capture->event latency.

    python tools/bench_live.py [--seconds 30] [--json out.json]
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
MEDIA = Path(os.environ.get("FACESTREAM_MEDIA", REPO / "tests" / "media"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("facestream_args", nargs="*")
    args = ap.parse_args()

    from tests.support.rtsp import RtspServer, gstreamer_rtsp_missing

    missing = gstreamer_rtsp_missing()
    if missing:
        raise SystemExit(f"cannot run: {missing}")
    server = RtspServer(MEDIA / "short_hamilton_clip.mp4").start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            gallery = Path(tmp) / "g.npz"
            subprocess.run([sys.executable, "-m", "stream", "enroll", "--gallery", str(gallery), "--name",
                            "lin-manuel-miranda", str(MEDIA / "lin-manuel-miranda.png")], check=True,
                           capture_output=True)
            summary_path = Path(tmp) / "summary.json"
            proc = subprocess.Popen([sys.executable, "-m", "stream", "run", "--source", f"live={server.url}",
                                     "--gallery", str(gallery), "--no-progress", "--summary-json", str(summary_path),
                                     *args.facestream_args], stderr=subprocess.PIPE, text=True)
            time.sleep(args.seconds)
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
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
