"""Which faces to embed this frame: the tracker's main speed-up.

New or uncertain tracks are embedded every frame (their identity is still being voted on); a
track whose identity is already confident is re-embedded only every ``reembed_every`` frames,
enough to notice a track that switched faces.
"""

from __future__ import annotations

import numpy as np


class EmbeddingCadence:
    def __init__(self, reembed_every: int) -> None:
        if reembed_every < 1:
            raise ValueError("reembed_every must be >= 1")
        self.reembed_every = reembed_every
        self._confident: set[int] = set()
        self._last_embedded: dict[int, int] = {}

    def select(self, track_ids: np.ndarray, frame_index: int) -> np.ndarray:
        """Bool mask over ``track_ids`` of the faces to embed at ``frame_index`` (and records them)."""
        mask = np.zeros(len(track_ids), bool)
        for i, tid in enumerate(int(t) for t in track_ids):
            last = self._last_embedded.get(tid)
            due = last is None or tid not in self._confident or frame_index - last >= self.reembed_every
            if due:
                mask[i] = True
                self._last_embedded[tid] = frame_index
        return mask

    def mark(self, track_id: int, confident: bool) -> None:
        if confident:
            self._confident.add(track_id)
        else:
            self._confident.discard(track_id)

    def forget(self, track_id: int) -> None:
        self._confident.discard(track_id)
        self._last_embedded.pop(track_id, None)
