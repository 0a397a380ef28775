#!/usr/bin/env python
"""Decode benchmark: CPU milliseconds per frame that OpenCV's FFmpeg backend spends, per codec and size.

Test streams are made once from the shared Hamilton clip, resized to 640x360, 1280x720 and 1920x1080
(out/bench_decode/media): MJPEG (.avi) and MPEG-4 Part 2 (.mp4) with OpenCV's VideoWriter, H.264
(openh264enc, Constrained Baseline like the clip) and H.265 (x265enc) with Debian's GStreamer through
/usr/bin/python3 (the opencv-python wheel has no H.264/H.265 encoder).

For each stream, side by side in one process:

- ``read``: ``grab()`` + ``retrieve()``, what a processed frame costs the reader;
- ``grab``: ``grab()`` alone, what a skipped frame still costs (the compressed frame is decoded anyway:
  inter frames need their references);
- ``read+copy``: ``read()`` plus the copy into a shared-memory slot (``np.copyto`` into a preallocated
  buffer), and ``read+half``: the same after an INTER_AREA resize to half size (``pipeline.max_frame_width``
  does this in the reader): whether scaling down early pays for itself on the copy;
- MJPEG only: ``raw packet``, the compressed frame alone (``CAP_PROP_FORMAT=-1``: FFmpeg demuxes, nothing
  decodes), and ``raw+imdecode`` / ``raw+imdecode half``: that packet through ``cv2.imdecode`` at full size
  or halved inside libjpeg: what a skipped and a processed MJPEG frame would cost if the reader decoded only
  the frames it keeps;
- ``--live``: the H.264 streams again, as a real-time RTSP stream from tests/support/rtsp_server.py on
  127.0.0.1 (needs Debian's GStreamer RTSP server), ``read`` and ``grab`` for ``--live-seconds`` each;
- ``--hw``: ``read`` again with ``CAP_PROP_HW_ACCELERATION=VIDEO_ACCELERATION_ANY`` (``sources.hw_decode:
  any``), and the acceleration FFmpeg reports in use (0 = none: the CPU decodes).

CPU time is this process's (``time.process_time``: all of FFmpeg's decoding threads), per frame; file
rows are the median of ``--repeats`` interleaved rounds.

    python tools/bench_decode.py [--frames 150] [--repeats 3] [--live] [--hw] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MEDIA = Path(os.environ.get("FACESTREAM_MEDIA", REPO / "tests" / "media"))
OUT = REPO / "out" / "bench_decode"
SIZES = ((640, 360), (1280, 720), (1920, 1080))
CODECS = ("h264", "hevc", "mjpeg", "mpeg4")
MODES = ("read", "grab", "read+copy", "read+half", "read hw=any", "raw packet", "raw+imdecode",
         "raw+imdecode half")
SYSTEM_PYTHON = "/usr/bin/python3"

#: GStreamer transcode from the MJPEG master (x265's ultrafast preset: encoding speed is not measured).
_GST_ENCODERS = {
    "h264": "openh264enc bitrate={bitrate} ! h264parse ! video/x-h264,stream-format=avc ! mp4mux",
    "hevc": "x265enc bitrate={kbit} speed-preset=ultrafast key-int-max=60 ! h265parse ! mp4mux",
}
_GST_SCRIPT = """
import sys, gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
pipe = Gst.parse_launch(sys.argv[1])
pipe.set_state(Gst.State.PLAYING)
msg = pipe.get_bus().timed_pop_filtered(600 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
pipe.set_state(Gst.State.NULL)
sys.exit(0 if msg is not None and msg.type == Gst.MessageType.EOS else 1)
"""


def stream_path(codec: str, size: tuple[int, int]) -> Path:
    return OUT / "media" / f"{codec}-{size[0]}x{size[1]}.{'avi' if codec == 'mjpeg' else 'mp4'}"


def make_streams(frames: int) -> dict[tuple[str, tuple[int, int]], Path]:
    """Every codec at every size that the encoders here can make (cached); missing ones are left out."""
    (OUT / "media").mkdir(parents=True, exist_ok=True)
    out = {}
    for size in SIZES:
        master = stream_path("mjpeg", size)
        if not master.exists():
            _write_cv(master, "MJPG", size, frames)
        out["mjpeg", size] = master
        mpeg4 = stream_path("mpeg4", size)
        if not mpeg4.exists():
            _write_cv(mpeg4, "mp4v", size, frames)
        out["mpeg4", size] = mpeg4
        for codec, encoder in _GST_ENCODERS.items():
            path = stream_path(codec, size)
            kbit = size[0] * size[1] * 3 // 1000  # ~2 Mbit/s at 720p, as cameras stream
            if not path.exists() and not _gst_transcode(master, path, encoder.format(bitrate=kbit * 1000, kbit=kbit)):
                print(f"no {codec} encoder here (GStreamer through {SYSTEM_PYTHON}): left out", file=sys.stderr)
                continue
            out[codec, size] = path
    return out


def _write_cv(path: Path, fourcc: str, size: tuple[int, int], frames: int) -> None:
    cap = cv2.VideoCapture(str(MEDIA / "short_hamilton_clip.mp4"))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    for _ in range(frames):
        ok, image = cap.read()
        if not ok:
            break
        writer.write(cv2.resize(image, size, interpolation=cv2.INTER_AREA if size[0] < 640 else cv2.INTER_LINEAR))
    writer.release()
    cap.release()


def _gst_transcode(master: Path, path: Path, encoder: str) -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    launch = f'filesrc location="{master}" ! avidemux ! jpegdec ! videoconvert ! video/x-raw,format=I420 ! ' \
             f'{encoder} ! filesink location="{path}"'
    done = subprocess.run([SYSTEM_PYTHON, "-c", _GST_SCRIPT, launch], capture_output=True, timeout=900)
    if done.returncode != 0:
        path.unlink(missing_ok=True)
    return done.returncode == 0


# -- measurements ----------------------------------------------------------------------------------------

def per_frame(cap: cv2.VideoCapture, step: Callable[[cv2.VideoCapture], bool], limit_frames: int | None = None,
              limit_s: float | None = None) -> dict[str, float]:
    """CPU and wall ms per frame of ``step`` until the stream ends (or a limit)."""
    frames = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    while limit_frames is None or frames < limit_frames:
        if limit_s is not None and time.perf_counter() - wall0 >= limit_s:
            break
        if not step(cap):
            break
        frames += 1
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"frames": frames, "cpu_ms": round(1e3 * cpu / max(frames, 1), 2),
            "wall_ms": round(1e3 * wall / max(frames, 1), 2)}


def _read(cap: cv2.VideoCapture) -> bool:
    return cap.read()[0]


def _grab(cap: cv2.VideoCapture) -> bool:
    return cap.grab()


class _CopyInto:
    """read() and copy into a preallocated buffer (a shared-memory slot), optionally halved first."""

    def __init__(self, size: tuple[int, int], half: bool) -> None:
        self.half = half
        w, h = (size[0] // 2, size[1] // 2) if half else size
        self.slot = np.empty((h, w, 3), np.uint8)

    def __call__(self, cap: cv2.VideoCapture) -> bool:
        ok, image = cap.read()
        if not ok:
            return False
        if self.half:
            image = cv2.resize(image, (self.slot.shape[1], self.slot.shape[0]), interpolation=cv2.INTER_AREA)
        np.copyto(self.slot, image)
        return True


class _RawJpeg:
    """MJPEG only: the compressed frame from FFmpeg's demuxer (``CAP_PROP_FORMAT=-1``, no decode), then, with
    ``decode``, ``cv2.imdecode`` of it, at full size or halved in libjpeg's DCT (IMREAD_REDUCED_COLOR_2)."""

    def __init__(self, decode: int | None) -> None:
        self.decode = decode

    def __call__(self, cap: cv2.VideoCapture) -> bool:
        ok, packet = cap.read()
        if not ok:
            return False
        if self.decode is not None:
            return cv2.imdecode(packet.reshape(-1), self.decode) is not None
        return True


RAW = [cv2.CAP_PROP_FORMAT, -1]


def file_rows(streams: dict[tuple[str, tuple[int, int]], Path], frames: int, repeats: int, hw: bool) -> list[dict]:
    """Every stream in every mode, ``repeats`` rounds interleaved (load on a shared machine moves between
    rounds, not within one); the median round is kept."""
    rounds: dict[tuple[str, tuple[int, int]], dict[str, list[dict]]] = {key: {} for key in streams}
    for _ in range(repeats):
        for (codec, size), path in streams.items():
            modes: dict[str, tuple[Callable[[cv2.VideoCapture], bool], list[int]]] = {
                "read": (_read, []), "grab": (_grab, []), "read+copy": (_CopyInto(size, half=False), []),
                "read+half": (_CopyInto(size, half=True), [])}
            if codec == "mjpeg":
                modes["raw packet"] = (_RawJpeg(None), RAW)
                modes["raw+imdecode"] = (_RawJpeg(cv2.IMREAD_COLOR), RAW)
                modes["raw+imdecode half"] = (_RawJpeg(cv2.IMREAD_REDUCED_COLOR_2), RAW)
            if hw:
                modes["read hw=any"] = (_read, [cv2.CAP_PROP_HW_ACCELERATION, cv2.VIDEO_ACCELERATION_ANY])
            for mode, (step, params) in modes.items():
                cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, params)
                cap.read()  # the first frame carries the decoder's set-up
                figures = per_frame(cap, step, limit_frames=frames)
                if params and params != RAW:
                    figures["hw_acceleration"] = int(cap.get(cv2.CAP_PROP_HW_ACCELERATION))
                cap.release()
                rounds[codec, size].setdefault(mode, []).append(figures)
    rows = []
    for (codec, size), by_mode in sorted(rounds.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        row: dict = {"codec": codec, "size": f"{size[0]}x{size[1]}", "source": "file"}
        for mode, figures in by_mode.items():
            row[mode] = sorted(figures, key=lambda f: f["cpu_ms"])[len(figures) // 2]
        rows.append(row)
        print(_line(row), file=sys.stderr)
    return rows


def live_rows(streams: dict[tuple[str, tuple[int, int]], Path], seconds: float) -> list[dict]:
    from tests.support.rtsp import RtspServer, gstreamer_rtsp_missing

    missing = gstreamer_rtsp_missing()
    if missing:
        print(f"live rows left out: {missing}", file=sys.stderr)
        return []
    os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
    rows = []
    for size in SIZES:
        path = streams.get(("h264", size))
        if path is None:
            continue
        server = RtspServer(path).start()
        row: dict = {"codec": "h264", "size": f"{size[0]}x{size[1]}", "source": "rtsp"}
        try:
            for mode, step in (("read", _read), ("grab", _grab)):
                cap = cv2.VideoCapture(server.url, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 10000,
                                                                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000])
                # FFmpeg buffers ~1 s while probing: drain it so only real-time frames are timed
                per_frame(cap, _read, limit_frames=40)
                row[mode] = per_frame(cap, step, limit_s=seconds)
                cap.release()
        finally:
            server.kill()
        rows.append(row)
        print(_line(row), file=sys.stderr)
    return rows


def _line(row: dict) -> str:
    cells = [f"{row['codec']:6}{row['size']:>10} {row['source']:5}"]
    cells += [f"{mode} {row[mode]['cpu_ms']:6.2f}" for mode in MODES if mode in row]
    if "grab" in row and row["read"]["cpu_ms"]:
        cells.append(f"grab/read {row['grab']['cpu_ms'] / row['read']['cpu_ms']:.2f}")
    return "  ".join(cells)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=150, help="frames per test stream (and timed per file row)")
    ap.add_argument("--codecs", default=",".join(CODECS), help=f"subset of {','.join(CODECS)}")
    ap.add_argument("--live", action="store_true", help="also the H.264 streams over RTSP from 127.0.0.1")
    ap.add_argument("--live-seconds", type=float, default=6.0)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds of the file rows; medians kept")
    ap.add_argument("--hw", action="store_true", help="also read with VIDEO_ACCELERATION_ANY (file rows)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    wanted = set(args.codecs.split(","))
    if not wanted <= set(CODECS):
        unknown = ", ".join(sorted(wanted - set(CODECS)))
        raise SystemExit(f"--codecs: unknown {unknown}; choose from {', '.join(CODECS)}")

    streams = {key: path for key, path in make_streams(args.frames).items() if key[0] in wanted}
    print(f"OpenCV {cv2.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
          "CPU ms per frame", file=sys.stderr)
    result = {"opencv": cv2.__version__, "cpus": os.cpu_count(), "load_average": os.getloadavg(),
              "file": file_rows(streams, args.frames, args.repeats, args.hw)}
    if args.live:
        result["live"] = live_rows(streams, args.live_seconds)
    result["load_average_end"] = os.getloadavg()
    print("\n| codec | size | source | read | grab | grab/read | read+copy | read+half | read hw=any (in use) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in result["file"]:
        if "raw packet" in row:
            print(f"{row['codec']} {row['size']}: raw packet {row['raw packet']['cpu_ms']:.2f}, raw+imdecode "
                  f"{row['raw+imdecode']['cpu_ms']:.2f}, raw+imdecode half {row['raw+imdecode half']['cpu_ms']:.2f} ms")
    for row in result["file"] + result.get("live", []):
        cells = [row["codec"], row["size"], row["source"]]
        cells += [f"{row[m]['cpu_ms']:.2f}" if m in row else "" for m in ("read", "grab")]
        cells.append(f"{row['grab']['cpu_ms'] / row['read']['cpu_ms']:.2f}" if row["read"]["cpu_ms"] else "")
        cells += [f"{row[m]['cpu_ms']:.2f}" if m in row else "" for m in ("read+copy", "read+half")]
        hw = row.get("read hw=any")
        cells.append(f"{hw['cpu_ms']:.2f} ({hw['hw_acceleration']})" if hw else "")
        print("| " + " | ".join(cells) + " |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
