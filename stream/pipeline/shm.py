"""Per-source frame rings in shared memory: frames and their aligned crops never get pickled.

One ring per source, created and unlinked by the supervisor (the owner); workers attach and only
close. Each slot holds one frame (up to the ring's max size) followed by room for that frame's
aligned crops, so a slot's crops live exactly as long as its frame: the reader fills a free slot,
the detect worker writes crops into it, the embedder reads the crops, and the publisher returns
the slot to the free list when it is done with the frame.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RingLayout:
    """Geometry of a ring; small and picklable, sent to every process that attaches."""

    name: str
    slots: int
    max_height: int
    max_width: int
    max_faces: int
    crop_height: int
    crop_width: int

    @property
    def frame_bytes(self) -> int:
        return self.max_height * self.max_width * 3

    @property
    def crops_bytes(self) -> int:
        return self.max_faces * self.crop_height * self.crop_width * 3

    @property
    def slot_bytes(self) -> int:
        # Keep each slot 64-byte aligned so numpy views are aligned.
        return (self.frame_bytes + self.crops_bytes + 63) // 64 * 64

    @property
    def total_bytes(self) -> int:
        return self.slots * self.slot_bytes


class FrameRing:
    """Views into one ring's shared memory. Use ``create`` (owner) or ``attach`` (workers)."""

    def __init__(self, layout: RingLayout, shm: shared_memory.SharedMemory, owner: bool) -> None:
        self.layout = layout
        self._shm = shm
        self._owner = owner
        self._buf = np.ndarray((layout.total_bytes,), dtype=np.uint8, buffer=shm.buf)

    @classmethod
    def create(cls, layout: RingLayout) -> FrameRing:
        shm = shared_memory.SharedMemory(name=layout.name, create=True, size=layout.total_bytes)
        log.debug("created ring %s: %d slots x %d bytes", layout.name, layout.slots, layout.slot_bytes)
        return cls(layout, shm, owner=True)

    @classmethod
    def attach(cls, layout: RingLayout) -> FrameRing:
        # Python < 3.13 also registers attached segments with the resource tracker. Spawned
        # workers share the supervisor's tracker, where the name is already registered, so this
        # is a no-op there; unregistering would drop the owner's own registration.
        shm = shared_memory.SharedMemory(name=layout.name, create=False)
        return cls(layout, shm, owner=False)

    def _slot(self, slot: int) -> np.ndarray:
        if not 0 <= slot < self.layout.slots:
            raise IndexError(f"slot {slot} out of range 0..{self.layout.slots - 1}")
        start = slot * self.layout.slot_bytes
        return self._buf[start : start + self.layout.slot_bytes]

    def frame(self, slot: int, height: int, width: int) -> np.ndarray:
        """The (height, width, 3) uint8 frame stored in ``slot`` (a view, no copy)."""
        if height > self.layout.max_height or width > self.layout.max_width:
            lay = self.layout
            raise ValueError(f"frame {width}x{height} exceeds ring max {lay.max_width}x{lay.max_height}")
        return self._slot(slot)[: height * width * 3].reshape(height, width, 3)

    def crops(self, slot: int) -> np.ndarray:
        """The (max_faces, crop_h, crop_w, 3) uint8 crop area of ``slot`` (a view)."""
        lay = self.layout
        start = lay.frame_bytes
        return self._slot(slot)[start : start + lay.crops_bytes].reshape(
            lay.max_faces, lay.crop_height, lay.crop_width, 3
        )

    def close(self) -> None:
        self._buf = None  # type: ignore[assignment]
        try:
            self._shm.close()
        except BufferError:
            # A view is still alive somewhere in this process; the mapping goes with the process.
            log.debug("ring %s: views still alive at close", self.layout.name)

    def unlink(self) -> None:
        if not self._owner:
            raise RuntimeError("only the ring's owner may unlink it")
        with contextlib.suppress(FileNotFoundError):
            self._shm.unlink()


def unlink_quietly(name: str) -> bool:
    """Unlink a leftover segment by name (crash cleanup); True if one existed."""
    try:
        shm = shared_memory.SharedMemory(name=name, create=False)
    except FileNotFoundError:
        return False
    shm.close()
    shm.unlink()
    return True
