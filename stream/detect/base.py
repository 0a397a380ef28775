"""The detector interface: what every single-pass face detector is and does, whatever its network.

A single-pass detector looks at one image at a time (or a batch of them) and returns ``Faces`` in
that image's pixels, with keypoints in its own ``LandmarkLayout``. The tiled scan, the closer looks
and the size filter of ``stream.detect.scan.FaceDetector`` are built on top of it, from its facts:
how large its input is and the smallest face it sees there.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from stream.faces import Faces, LandmarkLayout

if TYPE_CHECKING:  # the detectors take their config; the config imports only the facts (no cycle)
    from stream.detect.config import DetectorConfig


@dataclass(frozen=True)
class DetectorFacts:
    """What the rest of the system needs to know about a detector model, before loading it."""

    name: str
    #: side of the square the image is letterboxed to; None: the detector works in the image's own pixels
    input_px: int | None
    #: smallest face found, as a share of the long side of the image given; 0 where the image's size
    #: does not bound it (a detector at the image's own resolution): then tiles cannot help
    min_face_share: float
    #: smallest face found, in the pixels the network sees (its input, or the image's own)
    smallest_face_px: int
    #: the score a detection needs unless ``detector.min_confidence`` says otherwise
    default_min_score: float
    #: side of one cell of a closer look's mosaic: a region twice a face's size is warped to it
    look_cell_px: int
    layout: LandmarkLayout


class SinglePassDetector(abc.ABC):
    """One pass of a face detector over whole images: ``detect(image_bgr) -> Faces``.

    Construction is cheap; ``load()`` (or the first call) loads the model. Not thread-safe: make
    one per process.
    """

    facts: DetectorFacts

    @property
    def input_px(self) -> int | None:
        return self.facts.input_px

    @property
    def min_face_share(self) -> float:
        return self.facts.min_face_share

    @property
    def smallest_face_px(self) -> int:
        return self.facts.smallest_face_px

    @property
    def layout(self) -> LandmarkLayout:
        return self.facts.layout

    def load(self) -> SinglePassDetector:
        return self

    def detect(self, image_bgr: np.ndarray, min_face_px: int | None = None) -> Faces:
        """Faces of one image; those narrower than ``min_face_px`` (default: the config's) are dropped."""
        return self.detect_many([image_bgr], min_face_px)[0]

    @abc.abstractmethod
    def detect_many(self, images: list[np.ndarray], min_face_px: int | None = None) -> list[Faces]:
        """``detect`` on several images, in one batched call where the network allows."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the model."""

    def __enter__(self) -> SinglePassDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def min_score(config: DetectorConfig, facts: DetectorFacts) -> float:
    """The score a detection needs: ``detector.min_confidence``, else the model's own."""
    return facts.default_min_score if config.min_confidence is None else config.min_confidence


def check_bgr(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a BGR uint8 (H, W, 3) image; got {image.dtype} {image.shape}")
