"""Process entry points: thin loops that move messages between the plain stage classes.

Each ``*_main`` runs in a spawned process, takes one picklable spec, and exits 0 when its inputs
have all ended (or the stop event is set and it has drained). Heavy objects (MediaPipe graph,
ONNX session, CUDA context) are created here, inside the process that uses them.
"""

from __future__ import annotations

import logging
import queue
import time
from typing import Any

import numpy as np

from stream.config.schema import AppConfig
from stream.errors import FacestreamError
from stream.faces import Faces
from stream.pipeline.embedding import EmbedLoop
from stream.pipeline.ledger import RELEASED, SourceEnds
from stream.pipeline.messages import EndOfSource, FacesMsg, FrameMsg, TrackStatus
from stream.pipeline.process import Shared, beat, fatal_errors_exit, incarnation, init_process
from stream.pipeline.shm import FrameRing, RingLayout
from stream.pipeline.specs import DetectSpec, EmbedSpec, PublishSpec, ReaderSpec
from stream.track.sort import EndedTrack

log = logging.getLogger(__name__)

POLL_S = 0.25


# ---------------------------------------------------------------------------------------------
# reader


def reader_main(spec: ReaderSpec, shared: Shared) -> None:
    from stream.sources.live import ReconnectPolicy
    from stream.sources.open import open_source

    init_process(shared, spec.index, f"reader:{spec.source.name}")
    ledger = shared.ledger.sources[spec.source.name]
    if ledger["end_read"]:
        return  # a predecessor read to the end and was killed on its way out
    cfg = spec.config.sources
    ring = FrameRing.attach(spec.layout)
    slots = SlotPool(spec.free_slots, ledger.holders)
    # A restarted reader goes on from the next frame its predecessor did not send: a file resumes
    # there, a live source numbers on from there, so frame numbers and pts never go back.
    source = open_source(
        spec.source,
        realtime=cfg.realtime,
        reconnect=ReconnectPolicy(initial_s=cfg.reconnect_initial_s, max_s=cfg.reconnect_max_s),
        open_timeout_s=cfg.open_timeout_s,
        read_timeout_s=cfg.read_timeout_s,
        start_frame=int(ledger["read_next"]),
        give_up_after_s=cfg.give_up_after_s,
    )
    frames = dropped = 0
    dropped_before = int(ledger["live_dropped"])
    corrupt_before = int(ledger["corrupt"])
    reconnects_before = int(ledger["reconnects"])  # a restarted reader counts on from its predecessor
    error: str | None = None
    try:
        source.open()
        _record_state(ledger, source, reconnects_before)
        if getattr(source, "skipped", 0):
            ledger.add("read_skipped", source.skipped)
        # Open now (a network stream takes ~1 s), read once the pipeline is warm: no frame waits
        # behind model loading, so latency and throughput figures are the pipeline's own.
        while spec.go is not None and not spec.go.wait(POLL_S):
            beat(shared, spec.index)
            _record_state(ledger, source, reconnects_before)  # a camera that is down shows so during warm-up
            if shared.stop.is_set():
                break
        while not shared.stop.is_set():
            beat(shared, spec.index)
            _record_state(ledger, source, reconnects_before)
            t0 = time.perf_counter()
            try:
                frame = source.read(timeout=POLL_S)
            except TimeoutError:
                continue
            if frame is None:
                break
            read_ms = (time.perf_counter() - t0) * 1e3
            slot = slots.take(frame.index, wait=not spec.source.live, shared=shared, index=spec.index)
            if slot is None:
                if shared.stop.is_set():
                    break
                dropped += 1  # live source and the pipeline is full: the newest frame wins next time
            else:
                image = _fit(frame.image, spec.layout)
                h, w = image.shape[:2]
                ring.frame(slot, h, w)[...] = image
                ledger["read_next"] = frame.index + 1
                seq = -1  # a file has no dropped frames: a gap in its frame numbers is a frame lost
                if spec.source.live:
                    seq = int(ledger["sent"])
                    ledger["sent"] = seq + 1  # before the put, as read_next: a kill between is a frame lost
                spec.out.put(FrameMsg(spec.source.name, slot, frame.index, frame.pts, frame.capture_ts, h, w,
                                      read_ms, seq))
                frames += 1
            ledger["live_dropped"] = dropped_before + dropped + _source_drops(source)
            ledger["corrupt"] = corrupt_before + _source_corrupt(source)
    except FacestreamError as exc:
        error = str(exc)
        log.error("%s", exc)
    finally:
        ledger["live_dropped"] = dropped_before + dropped + _source_drops(source)
        ledger["corrupt"] = corrupt_before + _source_corrupt(source)
        if spec.source.live:  # a file that failed to open was never up
            _record_state(ledger, source, reconnects_before)
        source.close()
        spec.out.put(EndOfSource(spec.source.name, int(ledger["read_next"]), int(ledger["live_dropped"]), error))
        ledger.mark_ended("reader")
        ring.close()


def _record_state(ledger: Any, source: Any, reconnects_before: int) -> None:
    """Whether the source is up, for the publisher's heartbeats and metrics. A file is up once open;
    a live source says so in its stats (its grab thread keeps them)."""
    if not source.spec.live:
        ledger["online"] = 1
        return
    stats = source.stats
    ledger["online"] = int(stats.online)
    ledger["reconnects"] = reconnects_before + stats.reconnects
    ledger["offline_since"] = stats.offline_since or 0.0
    if stats.last_error != ledger.last_error():  # a string write, only when it changed
        ledger.set_last_error(stats.last_error)


def _source_drops(source: Any) -> int:
    stats = getattr(source, "stats", None)
    return int(getattr(stats, "frames_dropped", 0) or 0)


def _source_corrupt(source: Any) -> int:
    stats = getattr(source, "stats", None)
    return int(getattr(stats, "frames_corrupt", 0) or 0)


class SlotPool:
    """The reader's side of a ring's free slots: tokens from the publisher, checked against holders.

    A token can go missing when a process is killed: a reader that took one and died before
    using it, a publisher that freed a slot and died before sending its token. A free slot
    (holder RELEASED) whose token is not in the channel is such a slot; it is recovered when the
    reader starts and whenever it waits for a token in vain. A late token for a recovered slot is
    recognised by its holder no longer being RELEASED, and ignored.
    """

    def __init__(self, tokens: Any, holders: Any) -> None:
        self.tokens, self.holders = tokens, holders
        self.spare: list[int] = []
        self.recover()

    def recover(self) -> None:
        while True:  # every token already sent is for a RELEASED slot, and goes to spare with the lost ones
            try:
                self.tokens.get_nowait()
            except queue.Empty:
                break
        self.spare = [slot for slot in range(len(self.holders)) if self.holders[slot] == RELEASED]

    def take(self, frame_index: int, *, wait: bool, shared: Shared, index: int) -> int | None:
        """A free slot, now held for ``frame_index``; None for a live source with none free, or on stop."""
        recovered = False
        while not shared.stop.is_set():
            if self.spare:
                slot = self.spare.pop()
            else:
                try:
                    slot = self.tokens.get(timeout=POLL_S if wait else 0)
                except queue.Empty:
                    if not wait and recovered:
                        return None
                    self.recover()
                    recovered = True
                    beat(shared, index)
                    continue
            if self.holders[slot] == RELEASED:
                self.holders[slot] = frame_index
                return slot
        return None


def _fit(image: np.ndarray, layout: RingLayout) -> np.ndarray:
    import cv2  # here: of the processes that import this module, only readers resize

    h, w = image.shape[:2]
    if h <= layout.max_height and w <= layout.max_width:
        return image
    scale = min(layout.max_height / h, layout.max_width / w)
    return cv2.resize(image, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)


# ---------------------------------------------------------------------------------------------
# detect + track + align


def detect_main(spec: DetectSpec, shared: Shared) -> None:
    from stream.align import FaceAligner
    from stream.detect.blazeface.graph import pyplot_placeholder
    from stream.detect.scan import FaceDetector

    init_process(shared, spec.index, "detect")
    cfg = spec.config
    epoch = incarnation(shared, spec.index)
    ends = SourceEnds(shared.ledger, "detect", spec.layouts)
    rings = {name: FrameRing.attach(layout) for name, layout in spec.layouts.items()}
    videos = {name: VideoFaces(cfg) for name in rings}
    detector = FaceDetector(cfg.detector)
    with pyplot_placeholder():  # this process never draws: start 0.85 s sooner
        detector.load()
    aligner = FaceAligner.for_model(spec.manifest)
    if spec.ready is not None:
        spec.ready.set()

    try:
        while ends.open:
            beat(shared, spec.index)
            _drain_feedback(spec.feedback, videos, epoch)
            try:
                msg = spec.inbox.get(timeout=POLL_S)
            except queue.Empty:
                for lost in ends.swallowed(spec.inbox.empty):
                    ends.pass_on(lost, spec.out.put)
                continue
            if isinstance(msg, EndOfSource):
                ends.pass_on(msg, spec.out.put)
                continue
            spec.out.put(_detect_frame(msg, rings[msg.source], detector, aligner, videos[msg.source], epoch))
    finally:
        detector.close()
        for ring in rings.values():
            ring.close()


class VideoFaces:
    """One source's per-frame state in the detect worker: tracker, scene cuts, scan plan, cadence."""

    def __init__(self, cfg: AppConfig) -> None:
        from stream.detect.scan import ScanPlanner
        from stream.track.cadence import EmbeddingCadence
        from stream.track.scene import SceneCutDetector
        from stream.track.sort import SortTracker

        self.tracker = SortTracker(cfg.tracker)
        self.cadence = EmbeddingCadence(cfg.recognition.reembed_every)
        self.scenes = SceneCutDetector()
        self.planner = ScanPlanner(cfg.detector.scan_every)
        self.motion = None
        if cfg.detector.skip_still_tiles:
            from stream.detect.motion import TileMotion

            self.motion = TileMotion(rescan_after=4 * cfg.detector.scan_every)

    def detect(self, image: np.ndarray, frame: int, detector) -> tuple[Faces, list[EndedTrack], np.ndarray]:
        """Tracked faces of a frame, the tracks that ended, and which faces to embed now."""
        from stream.track.cadence import in_doubt

        predicted = self.tracker.predicted_boxes()
        cut = self.scenes.is_cut(image, predicted)
        # No track survives a cut: whoever is at the same place in the next shot is someone else.
        if cut:
            ended = self.tracker.end_all(reason="scene_cut")
            predicted = predicted[:0]
        else:
            ended = []
        full = self.planner.full_scan(frame, len(predicted), cut)
        tiles = None
        if self.motion is not None and detector.config.tiling != "off":
            h, w = image.shape[:2]
            tiles = self.motion.select(self.scenes.gray, self.scenes.scale, detector.tiles(w, h),
                                       detector.scheduled_tiles(w, h, frame, full), frame, force=cut)
        faces = self.tracker.update(detector.detect_frame(image, frame, predicted, full_scan=full, tile_indices=tiles))
        ended += self.tracker.pop_ended()
        for track in ended:
            self.cadence.forget(track.track_id)
        embed = self.cadence.select(faces.track_id, frame, doubt=in_doubt(faces.xyxy))
        return faces, ended, embed


def _detect_frame(msg: FrameMsg, ring: FrameRing, detector, aligner, video: VideoFaces, epoch: int) -> FacesMsg:
    t0 = time.perf_counter()
    image = ring.frame(msg.slot, msg.height, msg.width)
    faces, ended, embed = video.detect(image, msg.index, detector)
    rows = np.flatnonzero(embed)
    limit = ring.layout.max_faces
    if len(rows) > limit:  # keep the largest faces: they recognise best
        rows = rows[np.argsort(-faces.widths[rows], kind="stable")[:limit]]
    if len(rows):
        aligner.align(image, faces[rows], out=ring.crops(msg.slot))
    return FacesMsg(msg, faces, rows, ended, (time.perf_counter() - t0) * 1e3, epoch)


def _drain_feedback(feedback: Any, videos: dict[str, VideoFaces], epoch: int) -> None:
    while True:
        try:
            status: TrackStatus = feedback.get_nowait()
        except queue.Empty:
            return
        video = videos.get(status.source)
        if video is not None and status.epoch == epoch:  # not about a dead predecessor's tracks
            video.cadence.mark(status.track_id, status.confident)


# ---------------------------------------------------------------------------------------------
# embed


def embed_main(spec: EmbedSpec, shared: Shared) -> None:
    from stream.inference.select import create_engine
    from stream.models.store import ModelStore

    init_process(shared, spec.index, "embed")
    cfg = spec.config
    with fatal_errors_exit(shared, "embed"):
        model = ModelStore().get(spec.model_name, verify=False)
        engine = create_engine(cfg.engine, model)
        engine.load()
        largest = min(cfg.batching.max_batch, engine.max_batch)
        warm_s = engine.warmup((1, largest) if engine.warm_large_batches else (1,))
    spec.engine_info.put({"backend": engine.backend, "model": model.name, "max_batch": engine.max_batch,
                          "warmup_s": round(warm_s, 3)})
    spec.ready.set()
    rings = {name: FrameRing.attach(layout) for name, layout in spec.layouts.items()}
    ends = SourceEnds(shared.ledger, "embed", rings)

    def crops_for(msg: FacesMsg) -> np.ndarray:
        return rings[msg.frame.source].crops(msg.frame.slot)[: len(msg.embed_rows)]

    loop = EmbedLoop(engine, ends.open, crops_for, spec.out, max_batch=cfg.batching.max_batch,
                     max_wait_s=cfg.batching.max_wait_ms / 1e3, poll_s=POLL_S, on_end=ends.passed)
    try:
        while not loop.finished:
            beat(shared, spec.index)
            if not loop.step(lambda timeout: spec.inbox.get(timeout=timeout)) and loop.in_flight is None:
                for lost in ends.swallowed(spec.inbox.empty):
                    loop.end_source(lost)
    finally:
        engine.close()
        for ring in rings.values():
            ring.close()


# ---------------------------------------------------------------------------------------------
# track voting + events


def publish_main(spec: PublishSpec, shared: Shared) -> None:
    from stream.pipeline.publishing import Publisher

    init_process(shared, spec.index, "publish")
    rings = {name: FrameRing.attach(layout) for name, layout in spec.layouts.items()}
    with fatal_errors_exit(shared, "publish"):
        publisher = Publisher.open(spec, rings, shared.ledger, incarnation(shared, spec.index))
    if spec.ready is not None:
        spec.ready.set()
    ends = SourceEnds(shared.ledger, "publish", rings)
    try:
        while ends.open:
            beat(shared, spec.index)
            publisher.maybe_heartbeat()
            publisher.maybe_reload_gallery()
            try:
                msg = spec.inbox.get(timeout=POLL_S)
            except queue.Empty:
                for lost in ends.swallowed(spec.inbox.empty):
                    ends.pass_on(lost, publisher.end_source)
                continue
            if isinstance(msg, EndOfSource):
                ends.pass_on(msg, publisher.end_source)
            else:
                publisher.handle(msg)
    finally:
        publisher.close()
        for ring in rings.values():
            ring.close()
        spec.summary.put(publisher.summary())
