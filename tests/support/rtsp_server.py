#!/usr/bin/python3
"""A real RTSP server on 127.0.0.1 that loops an MP4's H.264 video, for tests and benchmarks.

Run with Debian's /usr/bin/python3 (it has PyGObject), not a venv:
    /usr/bin/python3 tests/support/rtsp_server.py CLIP.mp4 [--port 0] [--tcp-only]
Prints ``READY <port>`` once listening; the stream is rtsp://127.0.0.1:<port>/stream.

Each client gets its own reader pipeline starting at frame 0 (no joining mid-GOP). Buffers are
re-stamped so the loop has no gap at the file's edit list. The appsrc is not live: the server's
sinks pace it in real time.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")

from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

LAUNCH = ("( appsrc name=src format=time caps=video/x-h264,stream-format=byte-stream,alignment=au "
          "! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )")


class LoopingClip:
    """One client's reader: demux the file, push its access units into the client's appsrc, loop."""

    def __init__(self, clip: str, appsrc: Gst.Element) -> None:
        self.appsrc = appsrc
        self.reader = Gst.parse_launch(
            f'filesrc location="{clip}" ! qtdemux ! h264parse config-interval=-1 '
            "! video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=sink sync=false max-buffers=8")
        self.sink = self.reader.get_by_name("sink")
        self.offset = 0
        self.first_pts: int | None = None
        self.last_end = 0
        self.reader.set_state(Gst.State.PLAYING)
        appsrc.connect("need-data", self.on_need_data)

    def on_need_data(self, src: Gst.Element, _length: int) -> None:
        sample = self.sink.emit("try-pull-sample", 5 * Gst.SECOND)
        if sample is None:
            if not self.sink.get_property("eos"):
                return
            self.offset = self.last_end
            self.first_pts = None
            self.reader.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, 0)
            sample = self.sink.emit("try-pull-sample", 5 * Gst.SECOND)
            if sample is None:
                return
        buf = sample.get_buffer().copy()
        if self.first_pts is None:
            self.first_pts = buf.pts
        pts = self.offset + (buf.pts - self.first_pts)
        buf.pts = buf.dts = pts
        duration = buf.duration if buf.duration != Gst.CLOCK_TIME_NONE else Gst.SECOND // 30
        self.last_end = pts + duration
        src.emit("push-buffer", buf)

    def stop(self) -> None:
        self.reader.set_state(Gst.State.NULL)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("clip")
    ap.add_argument("--port", default="0")
    ap.add_argument("--tcp-only", action="store_true")
    args = ap.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(LAUNCH)
    factory.set_shared(False)
    if args.tcp_only:
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    readers: list[LoopingClip] = []

    def on_configure(_factory, media) -> None:
        src = media.get_element().get_child_by_name("src")
        reader = LoopingClip(args.clip, src)
        readers.append(reader)
        media.connect("unprepared", lambda *_: reader.stop())

    factory.connect("media-configure", on_configure)
    server.get_mount_points().add_factory("/stream", factory)
    server.attach(None)
    print(f"READY {server.get_bound_port()}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
