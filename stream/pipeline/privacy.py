"""privacy.unknowns: blur: which boxes to hide on each published frame.

The faces without a decided identity on the frame, and, for an unknown track the detector missed on
this frame (a turned head, motion blur: 26 of the 378 frames of the Hamilton clip's unknown tracks),
its last box, for as long as the tracker keeps the track alive (``tracker.max_age`` frames) or
until its ``track_ended`` event: a miss would otherwise show the face whole on that frame. A track
is hidden until the frame it is named, shown from then on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from stream.events.schema import Event
    from stream.pipeline.observers import FrameView


class UnknownFaces:
    """One per observer that blurs (annotation, the web preview): it must see every frame and event."""

    def __init__(self, hold_frames: int) -> None:
        self.hold_frames = hold_frames
        self._last: dict[tuple[str, int], tuple[int, np.ndarray]] = {}  # (source, track) -> (frame, box)

    def boxes(self, view: FrameView) -> np.ndarray:
        """The boxes (M, 4: x1 y1 x2 y2) to hide on this frame."""
        source, index = view.source, view.frame.index
        xyxy = np.asarray(view.faces.xyxy, np.float32).reshape(-1, 4)
        hide, present = [], set()
        for row, (track, decided) in enumerate(view.outcome.tracks):
            key = (source, int(track))
            present.add(key)
            if decided is None:
                self._last[key] = (index, xyxy[row])
                hide.append(xyxy[row])
            else:
                self._last.pop(key, None)
        for key, (seen, box) in list(self._last.items()):
            if key[0] != source or key in present:
                continue
            if index - seen > self.hold_frames:  # the tracker has let it go by now
                del self._last[key]
            else:
                hide.append(box)
        return np.asarray(hide, np.float32).reshape(-1, 4)

    def on_event(self, event: Event) -> None:
        if event.type == "track_ended" and event.track_id is not None:
            self._last.pop((event.source, int(event.track_id)), None)

    def end_source(self, source: str) -> None:
        for key in [k for k in self._last if k[0] == source]:
            del self._last[key]
