"""``FaceDetector``: faces at any distance in frames of any size, from BlazeFace's small input.

Photos get a full scan: the whole frame plus overlapping tiles (``tiles.plan_tiles``). Video
gets the same coverage spread over ``scan_every`` frames, plus a closer look at every live
track's predicted box each frame (``closer_look``), so a tracked face is seen every frame while
the frame as a whole is scanned for new ones at an even cost. New candidates of a scan are
confirmed by a closer look at their region before they count (``DetectorConfig.verify``).
"""

from __future__ import annotations

import logging

import numpy as np

from stream.detect.base import SinglePassDetector
from stream.detect.closer_look import look_closer
from stream.detect.config import DetectorConfig, fitting_min_face_px
from stream.detect.merge import merge_faces, overlap_of_smaller
from stream.detect.registry import look_models, single_pass_detector
from stream.detect.tiles import plan_tiles, rolling_schedule
from stream.faces import Faces, concat_faces

log = logging.getLogger(__name__)

_EDGE_PX = 2.0  # a box this close to a tile's inner edge is a face cut by it
_BATCH_TILES = 64  # a default 1080p scan (35 tiles) stays one call


class ScanPlanner:
    """Per source: when a video frame needs the whole tiled scan at once instead of its rolling share.

    At the first frame and after a scene cut (nothing known about the frame), and when nothing is
    tracked: then a whole scan every ``scan_every`` frames finds a face entering anywhere as soon
    as the rolling scan would, in one frame instead of spread out.
    """

    def __init__(self, scan_every: int) -> None:
        self.scan_every = scan_every
        self._last_full: int | None = None

    def full_scan(self, frame: int, tracked: int, scene_cut: bool) -> bool:
        due = self._last_full is None or scene_cut or (tracked == 0 and frame - self._last_full >= self.scan_every)
        if due:
            self._last_full = frame
        return due


class FaceDetector:
    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        self.model = single_pass_detector(self.config)
        # The closer looks' models: the first one's misses get a look by the second, if any.
        self.close_models = [self.model if name == self.config.model else single_pass_detector(self.config, name)
                             for name in look_models(self.config)]
        self._tiles: dict[tuple[int, int], np.ndarray] = {}
        self.calls = 0  # detector passes (images through the network), for cost figures

    def load(self) -> FaceDetector:
        self.model.load()
        if self.config.tiling != "off":
            for model in self.close_models:
                model.load()
        return self

    def close(self) -> None:
        for model in {id(m): m for m in [self.model, *self.close_models]}.values():
            model.close()

    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def tiles(self, width: int, height: int) -> np.ndarray:
        """The scan's tiles for this frame size; row 0 is the whole frame."""
        key = (width, height)
        if key not in self._tiles:
            whole_only = self.config.tiling == "off"
            min_face_px = 0 if whole_only else self.config.min_face_px
            tiles = plan_tiles(width, height, min_face_px, self.model.min_face_share)
            if len(tiles) > self.config.max_tiles:
                # The config check covers the largest live frame; a larger photo or file is scanned
                # in coarser tiles rather than in a batch that exhausts memory.
                coarser = fitting_min_face_px(self.config, width, height)
                log.warning("detector: a %dx%d frame would take %d tiles (detector.max_tiles %d); scanned for "
                            "faces of %d px and up instead of %d", width, height, len(tiles),
                            self.config.max_tiles, coarser, min_face_px)
                tiles = plan_tiles(width, height, coarser, self.model.min_face_share)
            self._tiles[key] = tiles
            log.info("detector: %dx%d frames scanned as %d tile(s)", width, height, len(self._tiles[key]))
        return self._tiles[key]

    # -- photos ----------------------------------------------------------------------------------
    def detect(self, image_bgr: np.ndarray) -> Faces:
        """Every face of one image: the full scan, each new candidate verified."""
        if self.config.tiling == "off":
            return self._pass(image_bgr)
        tiles = self.tiles(image_bgr.shape[1], image_bgr.shape[0])
        return self._finish(image_bgr, Faces.empty(self.model.layout), self._scan(image_bgr, tiles))

    # -- video -----------------------------------------------------------------------------------
    def scheduled_tiles(self, width: int, height: int, frame: int, full_scan: bool = False) -> np.ndarray:
        """Indices of the tiles due at ``frame``: all of them for a full scan, else this frame's share."""
        count = len(self.tiles(width, height))
        return np.arange(count) if full_scan else rolling_schedule(count, self.config.scan_every, frame)

    def detect_frame(self, image_bgr: np.ndarray, frame: int, predicted: np.ndarray,
                     full_scan: bool = False, tile_indices: np.ndarray | None = None) -> Faces:
        """Faces of one video frame.

        predicted: (K, 4) boxes where live tracks are expected now; each gets a closer look.
        full_scan: scan every tile now (scene cut, start, nothing tracked), else this frame's share.
        tile_indices: the tiles to scan, instead of what ``full_scan`` and the schedule say.
        """
        if self.config.tiling == "off":
            return self._pass(image_bgr)
        predicted = np.asarray(predicted, np.float32).reshape(-1, 4)
        tracked = self._closer(image_bgr, predicted) if len(predicted) else Faces.empty(self.model.layout)
        tiles = self.tiles(image_bgr.shape[1], image_bgr.shape[0])
        if tile_indices is None:
            tile_indices = self.scheduled_tiles(image_bgr.shape[1], image_bgr.shape[0], frame, full_scan)
        return self._finish(image_bgr, tracked, self._scan(image_bgr, tiles[tile_indices]))

    # -- internals -------------------------------------------------------------------------------
    def _pass(self, image: np.ndarray, min_face_px: int | None = None,
              model: SinglePassDetector | None = None) -> Faces:
        self.calls += 1
        return (model or self.model).detect(image, min_face_px)

    def _closer(self, image: np.ndarray, boxes: np.ndarray) -> Faces:
        found: list[Faces] = []
        todo = np.arange(len(boxes))
        for model in self.close_models:
            faces, owner = look_closer(lambda mosaic, m=model: self._pass(mosaic, 0, m), image, boxes[todo],
                                       model.facts.look_cell_px)
            found.append(faces)
            todo = np.setdiff1d(todo, todo[owner])
            if not len(todo):
                break
        return merge_faces(concat_faces(found))

    def _scan(self, image: np.ndarray, tiles: np.ndarray) -> tuple[Faces, np.ndarray]:
        """Detections of the given tiles in frame pixels, and whether each is cut by a tile edge."""
        if not len(tiles):
            return Faces.empty(self.model.layout), np.zeros(0, bool)
        h, w = image.shape[:2]
        parts: list[Faces] = []
        cuts: list[np.ndarray] = []
        # Batched calls (the ONNX runtime runs each as one batch), of at most _BATCH_TILES so that a
        # large scan's activations stay bounded.
        self.calls += len(tiles)
        looks = []
        for start in range(0, len(tiles), _BATCH_TILES):
            chunk = tiles[start:start + _BATCH_TILES]
            looks += self.model.detect_many([image[y0:y1, x0:x1] for x0, y0, x1, y1 in chunk], 0)
        for (x0, y0, x1, y1), faces in zip(tiles, looks):
            if not len(faces):
                continue
            offset = np.array([x0, y0], np.float32)
            faces = Faces(faces.xyxy + np.tile(offset, 2), faces.score, faces.keypoints + offset, layout=faces.layout)
            b = faces.xyxy
            cut = ((x0 > 0) & (b[:, 0] <= x0 + _EDGE_PX)) | ((x1 < w) & (b[:, 2] >= x1 - _EDGE_PX)) \
                | ((y0 > 0) & (b[:, 1] <= y0 + _EDGE_PX)) | ((y1 < h) & (b[:, 3] >= y1 - _EDGE_PX))
            parts.append(faces)
            cuts.append(cut)
        if not parts:
            return Faces.empty(self.model.layout), np.zeros(0, bool)
        return concat_faces(parts), np.concatenate(cuts)

    def _finish(self, image: np.ndarray, tracked: Faces, scanned: tuple[Faces, np.ndarray]) -> Faces:
        found, cut = scanned
        if len(found):
            found = merge_faces(found, cut)
            if len(tracked):  # already seen up close this frame
                found = found[overlap_of_smaller(found.xyxy, tracked.xyxy).max(axis=1) < 0.5]
            if len(found) and self.config.verify:
                found = self._closer(image, found.xyxy)
        faces = merge_faces(concat_faces([tracked, found]))
        keep = faces.widths >= self.config.min_face_px
        return faces if keep.all() else faces[keep]
