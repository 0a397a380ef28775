"""Per camera, the newest annotated JPEG for every viewer of the page, encoded once.

A producer task runs only while someone watches: it keeps the board's viewer flag fresh, copies
each new frame out of shared memory, draws the boxes and names on it and encodes it (in a thread:
OpenCV lets go of the GIL there). Viewers wait for the next frame newer than the one they sent;
one that is slow to take it gets the newest when it asks again (skipped frames, never a queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import cv2
import numpy as np

from stream.annotate import Annotator
from stream.web.preview import PreviewBoard, PreviewFrame

log = logging.getLogger(__name__)

POLL_S = 0.005  # how often a watched board is looked at: the latency it adds is at most this
WANT_EVERY_S = 0.25  # renewal of the viewer flag, which lasts WANT_FOR_S
WANT_FOR_S = 1.0  # so the publisher stops writing within a second of the last viewer leaving
IDLE_AFTER_S = 1.0  # a producer with no viewer for this long ends


@dataclass
class Picture:
    seq: int
    index: int
    capture_ts: float
    jpeg: bytes
    overlay: list[dict]


class CameraFeed:
    def __init__(self, name: str, board: PreviewBoard, jpeg_quality: int = 80) -> None:
        self.name = name
        self.board = board
        self.jpeg_quality = jpeg_quality
        self.latest: Picture | None = None
        self.viewers = 0
        self.encoded = 0
        self._cond: asyncio.Condition | None = None
        self._task: asyncio.Task | None = None
        self._annotator = Annotator()

    async def pictures(self):
        """Yield each newest picture as it comes (skipping what came while the caller was busy)."""
        self._ensure_producer()
        self.viewers += 1
        sent = 0
        try:
            while True:
                async with self._cond:
                    await self._cond.wait_for(lambda after=sent: self.latest is not None and self.latest.seq > after)
                    picture = self.latest
                sent = picture.seq
                yield picture
        finally:
            self.viewers -= 1

    def _ensure_producer(self) -> None:
        if self._cond is None:
            self._cond = asyncio.Condition()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._produce(), name=f"camera-{self.name}")

    async def _produce(self) -> None:
        loop = asyncio.get_running_loop()
        last_want = idle_since = 0.0
        seq = self.latest.seq if self.latest else 0
        while True:
            now = loop.time()
            if self.viewers == 0:
                idle_since = idle_since or now
                if now - idle_since > IDLE_AFTER_S:
                    return
            else:
                idle_since = 0.0
            if self.viewers and now - last_want > WANT_EVERY_S:
                self.board.want(WANT_FOR_S)
                last_want = now
            frame = self.board.read(seq)
            if frame is None:
                await asyncio.sleep(POLL_S)
                continue
            seq = frame.seq
            jpeg = await asyncio.to_thread(self._encode, frame)
            if jpeg is None:
                continue
            async with self._cond:
                self.latest = Picture(frame.seq, frame.index, frame.capture_ts, jpeg, frame.overlay)
                self.encoded += 1
                self._cond.notify_all()

    def _encode(self, frame: PreviewFrame) -> bytes | None:
        image = frame.image
        boxes = np.array([face["box"] for face in frame.overlay], np.float32).reshape(-1, 4)
        self._annotator.draw_boxes(image, boxes, [face["label"] for face in frame.overlay])
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        return buf.tobytes() if ok else None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
