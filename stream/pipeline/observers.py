"""The per-frame side jobs of the publisher (MOT rows, unknown tracks, annotation, the web preview)
behind one interface, so the publisher's loop is bookkeeping and a new side job is one class.

An observer sees each published frame once (``on_frame``, before that frame's events go out: a
track that ends in them has all its frames), each event as it goes out (``on_event``), the end of
each source (``end_source``), and ``close`` once. The frame's pixels and crops are views into
shared memory, valid only during ``on_frame``: an observer that keeps them copies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from stream.events.schema import Event
from stream.faces import Faces
from stream.pipeline.messages import FrameMsg
from stream.recognize.stage import FrameOutcome

if TYPE_CHECKING:
    from stream.pipeline.shm import FrameRing


@dataclass(frozen=True)
class FrameView:
    """One published frame and what the recognition stage made of it."""

    frame: FrameMsg
    faces: Faces  # every face, track ids set; embeddings on the embedded rows (NaN elsewhere) or None
    embed_rows: np.ndarray  # (K,) rows of ``faces`` embedded this frame, in crop order
    embeddings: np.ndarray  # (K, D) those rows' embeddings, as the embedder sent them
    outcome: FrameOutcome
    ring: FrameRing

    @property
    def source(self) -> str:
        return self.frame.source

    def image(self) -> np.ndarray:
        """The frame (BGR), a view into its slot."""
        f = self.frame
        return self.ring.frame(f.slot, f.height, f.width)

    def crops(self) -> np.ndarray:
        """The aligned crops of ``embed_rows``, in that order: views into the slot."""
        return self.ring.crops(self.frame.slot)[: len(self.embed_rows)]


class FrameObserver(Protocol):
    def on_frame(self, view: FrameView) -> None: ...

    def on_event(self, event: Event) -> None: ...

    def end_source(self, source: str) -> None: ...

    def close(self) -> None: ...


class Observer:
    """A base with nothing to do, for an observer that needs only some of the calls."""

    def on_frame(self, view: FrameView) -> None:
        pass

    def on_event(self, event: Event) -> None:
        pass

    def end_source(self, source: str) -> None:
        pass

    def close(self) -> None:
        pass
