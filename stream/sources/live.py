"""Cameras and network streams: a grab thread keeps only the newest frame and reconnects on loss.

Live video must never fall behind: when the consumer is slower than the camera, older frames are
overwritten (and counted as dropped), never queued. When a stream breaks (server gone, camera
unplugged, read timeout) the thread releases the capture and reconnects with capped exponential
backoff, logging each attempt.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass

import cv2

from stream.frames import Frame
from stream.sources.base import SourceStats, SourceTimeout
from stream.sources.capture import connect_live, live_unavailable
from stream.sources.spec import SourceSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconnectPolicy:
    initial_s: float = 0.5
    max_s: float = 10.0
    factor: float = 2.0
    jitter: float = 0.1  # +-10% so many cameras do not reconnect in lockstep
    max_attempts: int | None = None  # None: forever

    def delay(self, attempt: int) -> float:
        """Delay before reconnect attempt ``attempt`` (1-based)."""
        base = min(self.max_s, self.initial_s * self.factor ** max(attempt - 1, 0))
        return base * (1.0 + random.uniform(-self.jitter, self.jitter)) if self.jitter else base


class LiveSource:
    def __init__(self, spec: SourceSpec, *, reconnect: ReconnectPolicy | None = None,
                 open_timeout_s: float = 10.0, read_timeout_s: float = 5.0, start_frame: int = 0) -> None:
        self.spec = spec
        self.policy = reconnect or ReconnectPolicy()
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.fps = 0.0
        self.width = self.height = 0
        self.stats = SourceStats()
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._taken_index = start_frame - 1
        self._stop = threading.Event()
        self._ended = False
        self._thread: threading.Thread | None = None
        self._index = start_frame  # a restarted reader numbers on from where its predecessor stopped

    # -- capture ---------------------------------------------------------------------------------
    def _connect(self) -> tuple[cv2.VideoCapture, object] | None:
        connected = connect_live(self.spec, self.open_timeout_s, self.read_timeout_s)
        if connected is None:
            return None
        cap, image = connected
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.height, self.width = image.shape[:2]
        return cap, image

    def open(self) -> None:
        """Connect once (so a wrong URL fails now), then start the grab thread."""
        connected = self._connect()
        if connected is None:
            raise live_unavailable(self.spec)
        log.info("%s: connected to %s, %dx%d, %.2f fps", self.spec.name, self.spec.display, self.width,
                 self.height, self.fps)
        self._thread = threading.Thread(target=self._run, args=connected, name=f"grab-{self.spec.name}", daemon=True)
        self._thread.start()

    def _publish(self, image) -> None:
        frame = Frame(self.spec.name, self._index, self._index / self.fps if self.fps else 0.0, time.time(), image)
        self._index += 1
        with self._cond:
            if self._latest is not None and self._latest.index > self._taken_index:
                self.stats.frames_dropped += 1  # nobody took it before this newer one arrived
            self._latest = frame
            self.stats.frames_read += 1
            self._cond.notify_all()

    def _run(self, cap: cv2.VideoCapture, first) -> None:
        self._publish(first)
        attempt = 0
        try:
            while not self._stop.is_set():
                ok, image = cap.read() if cap is not None else (False, None)
                if ok and image is not None:
                    attempt = 0
                    self._publish(image)
                    continue
                if cap is not None:
                    cap.release()
                    cap = None
                    self.stats.last_error = "stream read failed"
                    log.warning("%s: stream lost; reconnecting", self.spec.name)
                attempt += 1
                if self.policy.max_attempts is not None and attempt > self.policy.max_attempts:
                    log.error("%s: giving up after %d reconnect attempts", self.spec.name, attempt - 1)
                    break
                delay = self.policy.delay(attempt)
                log.warning("%s: reconnect attempt %d in %.1f s (%s)", self.spec.name, attempt, delay,
                            self.spec.display)
                if self._stop.wait(delay):
                    break
                self.stats.reconnects += 1
                connected = self._connect()
                if connected is not None:
                    cap, image = connected
                    log.warning("%s: reconnected after %d attempt(s)", self.spec.name, attempt)
                    attempt = 0
                    self._publish(image)
        finally:
            if cap is not None:
                cap.release()
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    # -- consumer --------------------------------------------------------------------------------
    def read(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not yet returned; waits up to ``timeout`` (SourceTimeout), None once stopped."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._latest is not None and self._latest.index > self._taken_index:
                    self._taken_index = self._latest.index
                    return self._latest
                if self._ended or self._thread is None:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise SourceTimeout(f"{self.spec.name}: no new frame within {timeout:.1f} s")
                self._cond.wait(remaining)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            # The grab thread may be inside an OpenCV open or read, which returns within its timeout.
            # Wait that long: a process that exits with a thread still in OpenCV aborts
            # ("terminate called without an active exception").
            self._thread.join(timeout=max(self.open_timeout_s, self.read_timeout_s) + 2)
            if self._thread.is_alive():
                log.warning("%s: grab thread still blocked in OpenCV; leaving it (daemon)", self.spec.name)
