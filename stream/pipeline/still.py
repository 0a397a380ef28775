"""The reader's side of the motion gate: a live camera's still frames, held back at the source.

The detect worker's gate (stream/detect/motion.py ``MotionGate``) keeps an idle camera's frames
from the detector, but each frame still crossed four processes to get there: copied into a shared
slot, a message to the detect worker, on to the embed worker and the publisher (measured ~2.7 ms of
CPU a 640x360 frame beyond its decode, docs/benchmarks.md "An idle camera"). So while the detect
worker says the source is idle (its last frame was still, with no track open: the ledger's
``idle``), the reader compares each new frame with the last one it sent, on the same reduced gray
copy and by the same rule (noise and a change of light are not motion), and sends it only when
something moved, or when the last one sent is ``resend_s`` old: the detect worker's periodic whole
scan (``detector.idle_rescan_s``) needs a frame to scan. A held frame is counted as skipped, never
as dropped or lost. Files are not held (every frame of a recording is accounted for as it is), nor
the frames of a run that writes an annotated video (it shows every frame).
"""

from __future__ import annotations

import cv2
import numpy as np

from stream.detect.motion import MotionGate
from stream.track.scene import reduced_size


def gray_copy(image: np.ndarray) -> np.ndarray:
    """The frame at the size of the detect worker's reduced gray copy (int16), made for less: one
    bilinear resize by the same power of two, which averages 2x2 pixels of each block where the
    detect worker's halvings average the whole block (at 640x360, one halving: the same pixels).
    Paid on every frame of an idle camera, it reads half of a 1080p frame's rows once: 0.5-0.7 ms of
    CPU instead of 1.0-1.2 (decoded frames, straight from the decoder). It is compared only with
    copies made the same way, by the same rule: sensor noise up to sigma 8 and JPEG down to quality
    30 change no pixel, sigma 12 up to 5 (the frame is then sent: the safe side), a 24 px face
    190-1 400 (``python tools/measure_motion_noise.py``, the "reader" figures). A nearest-neighbour
    copy costs 0.2 ms less and counts JPEG at quality 30-50 as motion."""
    height, width = image.shape[:2]
    small = reduced_size(width, height)
    if small[0] != width:
        image = cv2.resize(image, small, interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.int16)


class StillFrames:
    """The detect worker's ``MotionGate``, run by the reader against the last frame it sent: the same
    rule for what moved, the resend period in place of the rescan."""

    def __init__(self, resend_s: float) -> None:
        self._gate = MotionGate(resend_s)

    @property
    def held(self) -> int:
        return self._gate.skipped

    def hold(self, image: np.ndarray, t: float, idle: bool) -> bool:
        """Whether the frame at ``t`` (seconds, the source's clock) is held back; when not, it is taken
        as sent. ``idle``: the detect worker found the source's last frame still, with no track open.
        A busy source pays nothing here: the gray copy is made only while the source is idle."""
        if not idle:
            self._gate.forget()
            return False
        gray = gray_copy(image)
        if self._gate.decide(gray, t) == "skip":
            return True
        self._gate.scanned(gray, t)  # sent: the next frames are compared with this one
        return False
