"""Cameras and network streams: a grab thread keeps only the newest frame and reconnects on loss.

Live video must never fall behind: when the consumer is slower than the camera, older frames are
overwritten (and counted as dropped), never queued. When a stream breaks (server gone, camera
unplugged, read timeout) the thread releases the capture and reconnects with capped exponential
backoff, logging each attempt. A network stream that is down when the run starts is retried the
same way; ``give_up_after_s`` bounds how long an outage (at start or mid-run) may last.

With a processing rate (``fps``) every frame is still grabbed (the stream must be drained), but
only those due at the rate, by capture time, are decoded to BGR and published; the others are
counted as skipped, never as dropped, and still numbered, so frame numbers and pts stay the
source's own.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from stream.errors import FacestreamError
from stream.frames import Frame
from stream.sources.base import SourceStats, SourceTimeout
from stream.sources.capture import BadReads, LiveConnection, connect_live, live_unavailable
from stream.sources.rate import FrameRate
from stream.sources.spec import SourceSpec

log = logging.getLogger(__name__)

_SKIPPED = np.empty(0, np.uint8)  # _read's answer for a frame grabbed and passed over for the rate


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
                 open_timeout_s: float = 10.0, read_timeout_s: float = 5.0, start_frame: int = 0,
                 give_up_after_s: float | None = None, fps: float | None = None) -> None:
        self.spec = spec
        self.rate = FrameRate(fps) if fps else None  # None: every frame
        self.policy = reconnect or ReconnectPolicy()
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.give_up_after_s = give_up_after_s  # None: a stream that is down is retried forever
        self.fps = 0.0
        self.width = self.height = 0
        self.stats = SourceStats()
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._taken_index = start_frame - 1
        self._stop = threading.Event()
        self._ended = False
        self._failure: str | None = None  # why the grab thread gave up; read() raises it
        self._offline_t0: float | None = None  # monotonic start of the current outage
        self._said: str | None = None  # the last reason for an outage that was logged: each is said once
        self._bad_reads = BadReads(read_timeout_s)
        self._thread: threading.Thread | None = None
        self._index = start_frame  # a restarted reader numbers on from where its predecessor stopped

    # -- capture ---------------------------------------------------------------------------------
    def _connect(self) -> LiveConnection | str:
        """The connection, or why there is none."""
        connected = connect_live(self.spec, self.open_timeout_s, self.read_timeout_s)
        if isinstance(connected, str):
            return connected
        self.fps = float(connected.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.height, self.width = connected.image.shape[:2]
        self.stats.frames_corrupt += connected.corrupt
        return connected

    def open(self) -> None:
        """Connect once, then start the grab thread. A camera device that gives no video fails now (it
        will not appear by itself); a network stream that is down is retried by the grab thread, as
        one lost mid-run is, and read() times out until it is up."""
        connected = self._connect()
        if isinstance(connected, str):
            if self.spec.kind == "camera":
                raise live_unavailable(self.spec)
            self._went_offline(connected)
            # INFO: the run's probe has already warned once, in the main process
            log.info("%s: offline at start (%s); retrying (%s)", self.spec.name, connected, self.spec.display)
            self._said = connected
            connected = None
        else:
            log.info("%s: connected to %s, %dx%d, %.2f fps", self.spec.name, self.spec.display, self.width,
                     self.height, self.fps)
        self._thread = threading.Thread(target=self._run, args=(connected,), name=f"grab-{self.spec.name}",
                                        daemon=True)
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

    def _went_offline(self, reason: str) -> None:
        self.stats.online = False
        self.stats.last_error = reason
        if self._offline_t0 is None:  # a failed reconnect does not restart the outage's clock
            self._offline_t0 = time.monotonic()
            self.stats.offline_since = time.time()

    def _came_online(self, connected: LiveConnection, attempt: int) -> cv2.VideoCapture:
        cap, image = connected.cap, connected.image
        self._said = None
        self._bad_reads.reset()
        if self._offline_t0 is not None:
            log.warning("%s: online after %.1f s offline (reconnected after %d attempt(s))", self.spec.name,
                        time.monotonic() - self._offline_t0, attempt)
        self._offline_t0 = self.stats.offline_since = None
        self.stats.online = True
        if self.rate is not None:
            self.rate.take(time.monotonic())  # a connection's first frame is always published: it proves the video
        self._publish(image)
        return cap

    def _offline_s(self) -> float:
        return 0.0 if self._offline_t0 is None else time.monotonic() - self._offline_t0

    def _give_up(self, attempt: int) -> bool:
        """Whether the outage has lasted too long (sources.give_up_after_s) or had too many attempts."""
        if self.policy.max_attempts is not None and attempt > self.policy.max_attempts:
            why = f"gave up after {attempt - 1} reconnect attempts"
        elif self.give_up_after_s is not None and self._offline_s() >= self.give_up_after_s:
            why = f"offline for {self._offline_s():.0f} s, gave up"
        else:
            return False
        # Without the name: the run prints errors as "<name>: <error>". Not logged here: read() raises
        # it, and the reader logs what it ends a source with.
        self._failure = f"{self.spec.display}: {why} ({self.stats.last_error or 'no video'})"
        return True

    def _retry_delay(self, attempt: int) -> float:
        """The backoff delay, cut short so a source with give_up_after_s gives up on time."""
        delay = self.policy.delay(attempt)
        if self.give_up_after_s is not None:
            delay = max(0.0, min(delay, self.give_up_after_s - self._offline_s()))
        return delay

    def _grab(self, cap: cv2.VideoCapture) -> cv2.VideoCapture | None:
        """One frame published (or a corrupt one skipped), or None once the stream is lost (capture
        released). A frame that does not decode is not a lost stream: FFmpeg goes on with the next
        part, and reconnecting would lose a second or more of video for one bad JPEG."""
        image = self._read(cap)
        if image is _SKIPPED:  # grabbed, not converted: numbered (pts stay the source's) and counted
            self.stats.frames_corrupt += self._bad_reads.good()
            self._index += 1
            self.stats.frames_skipped += 1
            return cap
        if image is not None:
            self.stats.frames_corrupt += self._bad_reads.good()
            self._publish(image)
            return cap
        if self._bad_reads.bad():
            return cap
        self._bad_reads.reset()  # not corrupt frames: the stream ended or stalled
        cap.release()
        self._went_offline("stream read failed")
        log.warning("%s: stream lost; reconnecting", self.spec.name)
        return None

    def _read(self, cap: cv2.VideoCapture) -> np.ndarray | None:
        """A frame to publish, ``_SKIPPED`` for one the processing rate passes over, None on a failed read."""
        if self.rate is None:
            ok, image = cap.read()
        elif not cap.grab():
            return None
        elif not self.rate.take(time.monotonic()):
            return _SKIPPED
        else:
            ok, image = cap.retrieve()
        return image if ok else None

    def _run(self, connected: LiveConnection | None) -> None:
        cap = self._came_online(connected, 0) if connected is not None else None
        attempt = 0
        try:
            while not self._stop.is_set():
                if cap is not None:
                    cap, attempt = self._grab(cap), 0
                    continue
                attempt += 1
                if self._give_up(attempt):
                    break
                delay = self._retry_delay(attempt)
                log.warning("%s: reconnect attempt %d in %.1f s (%s)", self.spec.name, attempt, delay,
                            self.spec.display)
                if self._stop.wait(delay):
                    break
                self.stats.reconnects += 1
                connected = self._connect()
                if not isinstance(connected, str):
                    cap = self._came_online(connected, attempt)
                    attempt = 0
                else:
                    self._went_offline(connected)
                    if connected != self._said:  # once per reason, not on every attempt
                        log.warning("%s: %s: %s", self.spec.name, self.spec.display, connected)
                        self._said = connected
        finally:
            if cap is not None:
                cap.release()
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    # -- consumer --------------------------------------------------------------------------------
    def read(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not yet returned; waits up to ``timeout`` (SourceTimeout), None once stopped,
        FacestreamError once the grab thread gave up on a stream that stayed down."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._latest is not None and self._latest.index > self._taken_index:
                    self._taken_index = self._latest.index
                    return self._latest
                if self._ended and self._failure is not None:
                    raise FacestreamError(self._failure)
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
