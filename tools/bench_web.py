#!/usr/bin/env python
"""Web view benchmark: what a viewer costs the pipeline, and how late its pictures are.

One invocation, side by side on this machine:

1. throughput: `facestream run --http` on the Hamilton clip looped --loops times, unpaced (every
   frame as fast as the pipeline goes), with no viewer, with one WebSocket viewer taking every
   picture, and with one stalled MJPEG viewer (connects, asks, never reads): the run's fps;
2. latency, paced at the clip's rate (--realtime): capture to arrival of each picture at a Python
   client over WebSocket and over MJPEG (the same moment for both: the last byte read), and
   capture to pixel in a real page (headless chromium: the <img> of the WebSocket picture has
   loaded), p50/p95.

    python tools/bench_web.py [--loops 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MEDIA = Path(os.environ.get("FACESTREAM_MEDIA", REPO / "tests" / "media"))


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    v = sorted(values)
    return {"n": len(v), "p50_ms": round(v[len(v) // 2] * 1e3, 1), "p95_ms": round(v[int(len(v) * 0.95)] * 1e3, 1)}


def _start(clip: Path, gallery: Path, out: Path, port: int, realtime: bool) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "stream", "run", "--source", f"stage={clip}", "--gallery", str(gallery),
           "--http", f"127.0.0.1:{port}", "--summary-json", str(out), "--no-progress"]
    if realtime:
        cmd.append("--realtime")
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_http(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the run ended early:\n{proc.stderr.read()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the web view did not come up")


def _ws_viewer(port: int, stop: threading.Event, ages: list[float]) -> None:
    from websockets.sync.client import connect

    from tests.web.conftest import decode_ws

    try:
        with connect(f"ws://127.0.0.1:{port}/api/cameras/stage/ws", open_timeout=30) as ws:
            while not stop.is_set():
                try:
                    message = ws.recv(timeout=1)
                except TimeoutError:
                    continue
                ages.append(time.time() - decode_ws(message)[0]["capture_ts"])
    except Exception:  # the run ended and closed the connection
        return


def _mjpeg_viewer(port: int, stop: threading.Event, ages: list[float]) -> None:
    import http.client

    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/api/cameras/stage/mjpeg")
        fp = conn.getresponse().fp
        while not stop.is_set():
            line = fp.readline()
            if not line:
                return
            if not line.startswith(b"--frame"):
                continue
            headers = {}
            while (line := fp.readline().strip()):
                key, _, value = line.decode().partition(":")
                headers[key.strip().lower()] = value.strip()
            fp.read(int(headers["content-length"]))
            ages.append(time.time() - float(headers["x-capture-ts"]))
    except Exception:
        return


def _stalled_viewer(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(b"GET /api/cameras/stage/mjpeg HTTP/1.1\r\nHost: x\r\n\r\n")
    return sock


def _browser_latencies(port: int, proc: subprocess.Popen) -> list[float]:
    from tests.web.test_browser import _browser

    browser = _browser()
    latencies: list[float] = []
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        while proc.poll() is None:  # the page's own record of capture-to-pixel times, read until the run ends
            time.sleep(0.5)
            latencies = browser.execute_script("return window.facestream.latencies.stage || []") or latencies
    except Exception:  # the run ended between two reads
        pass
    finally:
        browser.quit()
    return latencies


def run_case(name: str, clip: Path, gallery: Path, tmp: Path, *, realtime: bool = False,
             viewers: tuple[str, ...] = ()) -> dict:
    from tests.support.net import free_port

    port = free_port()
    out = tmp / f"{name}.json"
    proc = _start(clip, gallery, out, port, realtime)
    _wait_http(port, proc)
    stop = threading.Event()
    ages: dict[str, list[float]] = {v: [] for v in viewers}
    threads, sockets = [], []
    for viewer in viewers:
        if viewer == "ws":
            threads.append(threading.Thread(target=_ws_viewer, args=(port, stop, ages[viewer]), daemon=True))
        elif viewer == "mjpeg":
            threads.append(threading.Thread(target=_mjpeg_viewer, args=(port, stop, ages[viewer]), daemon=True))
        elif viewer == "stalled":
            sockets.append(_stalled_viewer(port))
    for t in threads:
        t.start()
    browser = _browser_latencies(port, proc) if "browser" in viewers else None
    try:
        proc.wait(timeout=600)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        proc.wait()
    stop.set()
    for s in sockets:
        s.close()
    summary = json.loads(out.read_text()) if out.exists() else {}
    result = {"case": name, "fps": summary.get("fps"), "frames": summary.get("frames"),
              "cpu_s": round(sum((summary.get("cpu_s") or {}).values()), 1)}
    for viewer, values in ages.items():
        if viewer != "stalled" and viewer != "browser":
            result[f"{viewer}_arrival"] = _percentiles(values[5:])  # the first few wait for the connection
    if browser is not None:
        result["browser_pixel"] = _percentiles(browser[5:])
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loops", type=int, default=3, help="passes of the clip per run")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from tests.support.scenes import write_looped_clip

    tmp = Path(tempfile.mkdtemp(prefix="bench-web-"))
    try:
        clip = tmp / "clip.mp4"
        frames = write_looped_clip(clip, args.loops)
        gallery = tmp / "people.npz"
        for name in ("lin-manuel-miranda", "alex-lacamoire"):
            subprocess.run([sys.executable, "-m", "stream", "enroll", "--gallery", str(gallery), "--name", name,
                            str(MEDIA / f"{name}.png")], cwd=REPO, check=True, capture_output=True)
        print(f"clip: {frames} frames; machine: {os.cpu_count()} cores", file=sys.stderr)
        results = [
            run_case("no viewer", clip, gallery, tmp),
            run_case("one WebSocket viewer", clip, gallery, tmp, viewers=("ws",)),
            run_case("one stalled MJPEG viewer", clip, gallery, tmp, viewers=("stalled",)),
            run_case("paced: WebSocket + MJPEG + page", clip, gallery, tmp, realtime=True,
                     viewers=("ws", "mjpeg", "browser")),
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = results[0]["fps"] or 0
    for r in results:
        paced = r["case"].startswith("paced")
        ratio = f" ({r['fps'] / base:.2f}x of no viewer)" if base and r["fps"] and not paced else ""
        extra = " ".join(f"{k} p50 {v.get('p50_ms')} ms p95 {v.get('p95_ms')} ms (n {v['n']})"
                         for k, v in r.items() if isinstance(v, dict))
        print(f"{r['case']:<34} {r['fps']} fps{ratio}, {r['frames']} frames, {r['cpu_s']} CPU s  {extra}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
