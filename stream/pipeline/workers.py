"""Process entry points: thin loops that move messages between the plain stage classes.

Each ``*_main`` runs in a spawned process, takes one picklable spec, and exits 0 when its inputs
have all ended (or the stop event is set and it has drained). Heavy objects (MediaPipe graph,
ONNX session, CUDA context) are created here, inside the process that uses them.
"""

from __future__ import annotations

import logging
import math
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
_ENTERING_FRAMES = 3  # after still frames, these get the whole scan of what moved (a face entering)


# ---------------------------------------------------------------------------------------------
# reader


def reader_main(spec: ReaderSpec, shared: Shared) -> None:
    from stream.sources.live import ReconnectPolicy
    from stream.sources.open import open_source
    from stream.sources.rate import frame_step

    init_process(shared, spec.index, f"reader:{spec.source.name}")
    import cv2

    # The reader's own OpenCV work is small and per frame (the still test's copy, a resize to fit the
    # slot): OpenCV's thread pool waking for it cost more CPU than it saved (0.3 ms a 1080p frame of an
    # idle camera, measured). FFmpeg's decoding threads are its own and stay as they are.
    cv2.setNumThreads(1)
    ledger = shared.ledger.sources[spec.source.name]
    if ledger["end_read"]:
        return  # a predecessor read to the end and was killed on its way out
    cfg = spec.config.sources
    ring = FrameRing.attach(spec.layout)
    slots = SlotPool(spec.free_slots, ledger.holders)
    # A restarted reader goes on from the next frame its predecessor did not send: a file resumes
    # there, a live source numbers on from there, so frame numbers and pts never go back.
    rate = spec.source.rate(cfg.fps)  # frames a second to process; None: every frame
    source = open_source(
        spec.source,
        realtime=cfg.realtime,
        reconnect=ReconnectPolicy(initial_s=cfg.reconnect_initial_s, max_s=cfg.reconnect_max_s),
        open_timeout_s=cfg.open_timeout_s,
        read_timeout_s=cfg.read_timeout_s,
        start_frame=int(ledger["read_next"]),
        give_up_after_s=cfg.give_up_after_s,
        fps=rate,
        hw_decode=cfg.hw_decode,
    )
    # Frames the rate skips leave gaps in a file's frame numbers too: then frames sent are counted, as
    # a live source's are, and only a gap in that count is a frame lost.
    counted = spec.source.live or rate is not None
    # A live camera the detect worker finds idle: its still frames are held back here, before the copy
    # into a slot and the messages through every process (stream/pipeline/still.py).
    still = None
    if spec.source.live and spec.hold_still and spec.config.detector.motion_gate:
        from stream.pipeline.still import StillFrames

        still = StillFrames(resend_s=spec.config.detector.idle_rescan_s / 2)
    frames = dropped = 0
    dropped_before = int(ledger["live_dropped"])
    corrupt_before = int(ledger["corrupt"])
    skipped_before = int(ledger["skipped"])

    def skipped() -> int:  # passed over for the rate, and held back as still, by this reader and those before
        return skipped_before + source.stats.frames_skipped + (still.held if still is not None else 0)

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
            if still is not None and still.hold(frame.image, frame.capture_ts, bool(ledger["idle"])):
                ledger["skipped"] = skipped()
                continue
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
                ledger["frame_step"] = frame_step(rate, source.fps)  # a live source's fps is known once it is up
                if counted:
                    seq = int(ledger["sent"])
                    ledger["sent"] = seq + 1  # before the put, as read_next: a kill between is a frame lost
                spec.out.put(FrameMsg(spec.source.name, slot, frame.index, frame.pts, frame.capture_ts, h, w,
                                      read_ms, seq))
                frames += 1
            ledger["live_dropped"] = dropped_before + dropped + _source_drops(source)
            ledger["corrupt"] = corrupt_before + _source_corrupt(source)
            ledger["skipped"] = skipped()
    except FacestreamError as exc:
        error = str(exc)
        log.error("%s", exc)
    finally:
        ledger["live_dropped"] = dropped_before + dropped + _source_drops(source)
        ledger["corrupt"] = corrupt_before + _source_corrupt(source)
        ledger["skipped"] = skipped()
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
    videos: dict[str, VideoFaces] = {}  # made at a source's first frame, once its reader knows its frame step
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
            video = videos.get(msg.source)
            if video is None:
                step = float(shared.ledger.sources[msg.source]["frame_step"]) or 1.0
                video = videos[msg.source] = VideoFaces(cfg, frame_step=step)
            spec.out.put(_detect_frame(msg, rings[msg.source], detector, aligner, video, epoch))
            idle = int(video.idle)
            if shared.ledger.sources[msg.source]["idle"] != idle:  # tells the reader to hold still frames
                shared.ledger.sources[msg.source]["idle"] = idle
    finally:
        detector.close()
        for ring in rings.values():
            ring.close()


class VideoFaces:
    """One source's per-frame state in the detect worker: tracker, scene cuts, scan plan, cadence."""

    def __init__(self, cfg: AppConfig, frame_step: float = 1.0) -> None:
        """frame_step: source frames per processed frame (sources.fps; 1: every frame). Settings counted
        in frames mean the source's frames: the tracker converts its own, the rolling scan covers the
        frames skipped since the last processed one, and the rest compare frame numbers, which are
        the source's (stream/track/timescale.py)."""
        from stream.detect.scan import ScanPlanner
        from stream.track.cadence import EmbeddingCadence
        from stream.track.scene import SceneCutDetector
        from stream.track.sort import SortTracker

        self.tracker = SortTracker(cfg.tracker, frame_step=frame_step)
        self._span = max(1, math.ceil(frame_step - 1e-6))  # most source frames one processed frame stands for
        self._last_frame: int | None = None
        self.cadence = EmbeddingCadence(cfg.recognition.reembed_every)
        self.scenes = SceneCutDetector()
        self.planner = ScanPlanner(cfg.detector.scan_every)
        self.motion = None
        if cfg.detector.skip_still_tiles:
            from stream.detect.motion import TileMotion

            self.motion = TileMotion(rescan_after=4 * cfg.detector.scan_every)
        self.gate = None
        if cfg.detector.motion_gate:
            from stream.detect.motion import MotionGate, StreamClock

            self.gate = MotionGate(cfg.detector.idle_rescan_s, every_tile_s=cfg.detector.idle_full_rescan_s)
            self.clock = StreamClock()
        self._since_still = _ENTERING_FRAMES  # frames the detector saw since the gate last skipped one
        self._nothing: Faces | None = None  # what a skipped frame returns (empty, never changed)
        self.idle = False  # the last frame was still with no track open: the gate kept it from the detector

    def detect(self, image: np.ndarray, frame: int, detector, pts: float | None = None,
               capture_ts: float = 0.0) -> tuple[Faces, list[EndedTrack], np.ndarray]:
        """Tracked faces of a frame, the tracks that ended, and which faces to embed now.

        pts, capture_ts: the frame's times (seconds), for the motion gate's rescans; without them
        the frame is taken to be ``frame / 30`` s into the stream."""
        from stream.track.cadence import in_doubt

        predicted = self.tracker.predicted_boxes()
        cut = self.scenes.is_cut(image, predicted)
        # No track survives a cut: whoever is at the same place in the next shot is someone else.
        if cut:
            ended = self.tracker.end_all(reason="scene_cut")
            predicted = predicted[:0]
        else:
            ended = []
        full = force_tiles = changed_only = False
        if self.gate is not None:
            tracked = self.tracker.open_tracks > 0
            t = self.clock.advance(frame / 30.0 if pts is None else pts, capture_ts)
            verdict = self.gate.decide(self.scenes.gray, t, tracked, force=cut)
            self.idle = verdict == "skip"
            if verdict == "skip":  # nothing moved, no track open: no detector, tracker, scan or alignment
                self._since_still = 0
                if self._nothing is None or self._nothing.layout != detector.model.layout:
                    self._nothing = Faces.empty(detector.model.layout)
                return self._nothing, ended, np.zeros(0, bool)
            # A face entering a still picture: the whole scan of the tiles that changed, for the
            # first frames after the still ones, so that it is found as soon as it is in view.
            full = force_tiles = verdict == "full"
            # A still picture's periodic scan: the tiles that changed at all since their own last look
            # (light, a drift under the gate's threshold) and where a track was lost (TileMotion.forget).
            changed_only = verdict == "rescan"
            full |= changed_only or (not tracked and self._since_still < _ENTERING_FRAMES)
            self._since_still += 1
        full = self.planner.full_scan(frame, len(predicted), cut) or full
        if self.gate is not None and full:
            self.gate.scanned(self.scenes.gray, t, every_tile=force_tiles)
        tiles = None
        if self.motion is not None and detector.config.tiling != "off":
            h, w = image.shape[:2]
            tiles = self.motion.select(self.scenes.gray, self.scenes.scale, detector.tiles(w, h),
                                       self._scheduled(detector, w, h, frame, full), frame, force=cut or force_tiles,
                                       changed_only=changed_only)
        elif self._span > 1 and detector.config.tiling != "off":
            tiles = self._scheduled(detector, *image.shape[1::-1], frame, full)
        faces = self.tracker.update(detector.detect_frame(image, frame, predicted, full_scan=full, tile_indices=tiles))
        ended += self.tracker.pop_ended()
        self.tracks_ended(ended)
        embed = self.cadence.select(faces.track_id, frame, doubt=in_doubt(faces.xyxy))
        return faces, ended, embed

    def tracks_ended(self, ended: list[EndedTrack]) -> None:
        """Forget what was known of tracks that ended; where one was lost (not cut, not the stream's
        end), its face may still be in view: its tiles are scanned at the next look, idle or not."""
        for track in ended:
            self.cadence.forget(track.track_id)
            if self.motion is not None and track.reason == "lost":
                self.motion.forget(track.last_bbox)

    def _scheduled(self, detector, w: int, h: int, frame: int, full: bool) -> np.ndarray:
        """The rolling scan's tiles due at ``frame`` and at the source frames skipped since the last
        processed one (at most one processed frame's worth): the scan covers the picture in the same
        time at any processing rate. At every frame, the tiles of ``frame`` alone."""
        last, self._last_frame = self._last_frame, frame
        span = 1 if last is None else max(1, min(frame - last, self._span))
        if full or span == 1:
            return detector.scheduled_tiles(w, h, frame, full)
        due = [detector.scheduled_tiles(w, h, f) for f in range(frame - span + 1, frame + 1)]
        return np.unique(np.concatenate(due))


def _detect_frame(msg: FrameMsg, ring: FrameRing, detector, aligner, video: VideoFaces, epoch: int) -> FacesMsg:
    t0 = time.perf_counter()
    image = ring.frame(msg.slot, msg.height, msg.width)
    faces, ended, embed = video.detect(image, msg.index, detector, msg.pts, msg.capture_ts)
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
