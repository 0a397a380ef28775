"""Which faces to embed this frame: the tracker's main speed-up.

New or uncertain tracks are embedded every frame (their identity is still being voted on); a
track whose identity is already confident is re-embedded only every ``reembed_every`` frames,
enough to notice a track that switched faces.
"""

from __future__ import annotations

import numpy as np

from stream.boxes import intersections


class EmbeddingCadence:
    def __init__(self, reembed_every: int) -> None:
        if reembed_every < 1:
            raise ValueError("reembed_every must be >= 1")
        self.reembed_every = reembed_every
        self._confident: set[int] = set()
        self._last_embedded: dict[int, int] = {}

    def select(self, track_ids: np.ndarray, frame_index: int, doubt: np.ndarray | None = None) -> np.ndarray:
        """Bool mask over ``track_ids`` of the faces to embed at ``frame_index`` (and records them).

        doubt: (N,) bool, faces whose association may be wrong (see ``in_doubt``): embedded now,
        whatever the cadence, so the recognition stage can split a track that took another face.
        """
        mask = np.zeros(len(track_ids), bool)
        for i, tid in enumerate(int(t) for t in track_ids):
            last = self._last_embedded.get(tid)
            due = last is None or tid not in self._confident or frame_index - last >= self.reembed_every \
                or (doubt is not None and bool(doubt[i]))
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


#: Faces overlapping by at least this IoU are in doubt. The tracker links a face to a track only at
#: IoU >= 0.25 with its predicted box, so faces that merely touch (heads side by side in an
#: audience: IoU ~0.02 for minutes) cannot swap without a jump of most of a face in one frame;
#: counting those as doubt embedded two such tracks every frame (122 of the shared clip's 275
#: embeddings) for nothing.
DOUBT_IOU = 0.05


def in_doubt(boxes: np.ndarray, min_iou: float = DOUBT_IOU) -> np.ndarray:
    """(N,) bool: faces whose boxes overlap another face's by ``min_iou`` or more.

    Two faces that close can swap tracks (one passing in front of the other), so neither
    association is trusted without an embedding.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if len(boxes) < 2:
        return np.zeros(len(boxes), bool)
    inter, area_a, area_b = intersections(boxes, boxes)
    iou = inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)
    overlapping = (inter > 0) & (iou >= min_iou)
    np.fill_diagonal(overlapping, False)
    return overlapping.any(axis=1)
