#!/usr/bin/python3
"""Send an MP4's H.264 video as MPEG-TS over UDP to 127.0.0.1, in real time, once (for tests).

Run with Debian's /usr/bin/python3 (it has PyGObject):
    /usr/bin/python3 tests/support/udp_sender.py CLIP.mp4 PORT
Prints ``SENDING`` when the pipeline plays and exits at the end of the clip.
"""

from __future__ import annotations

import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402


def main() -> int:
    clip, port = sys.argv[1], int(sys.argv[2])
    Gst.init(None)
    pipeline = Gst.parse_launch(
        f'filesrc location="{clip}" ! qtdemux ! h264parse config-interval=-1 ! mpegtsmux alignment=7 '
        f"! udpsink host=127.0.0.1 port={port} sync=true")
    pipeline.set_state(Gst.State.PLAYING)
    print("SENDING", flush=True)
    bus = pipeline.get_bus()
    msg = bus.timed_pop_filtered(Gst.CLOCK_TIME_NONE, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    return 0 if msg is not None and msg.type == Gst.MessageType.EOS else 1


if __name__ == "__main__":
    sys.exit(main())
