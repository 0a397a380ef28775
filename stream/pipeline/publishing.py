"""The publisher process's work: votes per track, events out, annotation, stats, slot release.

Everything the run reports is kept in the run's ledger (shared memory) and track journal, not in
this process: a restarted publisher goes on with the same ``seq``, totals and track ids, first
ending the tracks its killed predecessor left open (``reason: publisher_restarted``). Frames that
never arrive (lost with a killed worker) are counted and listed, and their slots reclaimed. Which
frames were sent is told by the reader's own count (``FrameMsg.seq``), not by gaps in frame
numbers: a live camera's numbers have gaps for every frame the newest-frame policy dropped.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from stream.events.mot import MotWriter
from stream.events.schema import Event
from stream.pipeline.ledger import RELEASED, RunLedger, TrackJournal
from stream.pipeline.messages import EndOfSource, ResultMsg, TrackStatus
from stream.pipeline.shm import FrameRing
from stream.pipeline.stats import LatencyStats
from stream.recognize.appearance import blur_quality

if TYPE_CHECKING:
    from stream.pipeline.specs import PublishSpec

log = logging.getLogger(__name__)


class Publisher:
    def __init__(self, spec: PublishSpec, rings: dict[str, FrameRing], ledger: RunLedger,
                 incarnation: int = 1) -> None:
        from stream.events.sinks import JsonlSink
        from stream.recognize.gallery import Gallery
        from stream.recognize.reload import GalleryWatcher, load_or_last_good
        from stream.recognize.stage import RecognitionStage

        self.spec = spec
        self.rings = rings
        self.ledger = ledger
        self.run = ledger.run
        self.incarnation = incarnation
        cfg = spec.config
        # the last good gallery, kept beside the journal: a restart after a bad save starts from it
        keep = Path(ledger.journal_path).with_name("gallery.last-good.npz")
        gallery = load_or_last_good(cfg.gallery, spec.manifest, keep) if cfg.gallery else Gallery.new(spec.manifest)
        self.stages = {
            name: RecognitionStage(spec.manifest, gallery, cfg.voting, threshold=cfg.model.threshold,
                                   appearance=cfg.appearance,
                                   new_track_id=lambda led=ledger.sources[name]: int(led.add("next_track_id")))
            for name in rings
        }
        # Enrolls and removals while running: the file is polled and swapped into every stage.
        self.gallery_watch = GalleryWatcher(cfg.gallery, spec.manifest, keep=keep) if cfg.gallery else None
        self.epochs: dict[str, int] = {}  # per source: the detect worker incarnation its tracks come from
        restored = TrackJournal.replay(ledger.journal_path)
        self.journal = TrackJournal(ledger.journal_path)
        self.named_tracks = restored.named
        self.lost_ranges = restored.lost
        self.sinks: list = []
        if cfg.output.publish:
            from stream.events.publisher import EventPublisher

            self.zmq = EventPublisher(cfg.output.publish, sndhwm=cfg.output.sndhwm,
                                      linger_ms=int(cfg.output.linger_s * 1000),
                                      server_secret_key_file=cfg.output.publish_server_key,
                                      allowed_clients_dir=cfg.output.publish_client_keys,
                                      connect=cfg.output.publish_connect,
                                      connect_keys=cfg.output.publish_connect_keys)
            self.sinks.append(self.zmq)
        else:
            self.zmq = None
        # What earlier incarnations' sockets counted; this one's counts are added on top.
        self._zmq_base = {k: int(self.run[k]) for k in ("publish_sent", "publish_dropped", "publish_unheard")}
        if cfg.output.events_out:
            self.sinks.append(JsonlSink(cfg.output.events_out))
        self.mqtt = None
        if cfg.output.mqtt:
            from stream.events.mqtt import MqttSink

            self.mqtt = MqttSink(cfg.output.mqtt, prefix=cfg.output.mqtt_prefix, client_id=cfg.output.mqtt_client_id,
                                 reconnect_max_s=cfg.sources.reconnect_max_s)
            self.sinks.append(self.mqtt)
        # As for ZeroMQ: the run's MQTT figures are the earlier publishers' plus this one's.
        self._mqtt_base = {k: int(self.run[f"mqtt_{k}"]) for k in ("published", "acked", "dropped")}
        self.metrics = None
        if cfg.output.metrics_port:
            from stream.pipeline.metrics import PipelineMetrics

            self.metrics = PipelineMetrics(cfg.output.metrics_port)
            self.metrics.resume(ledger)
        self.annotators: dict[str, tuple] = {}
        self.track_writers: dict[str, MotWriter] = {}
        if cfg.output.tracks_out:
            self.track_writers = {name: MotWriter(_per_source(cfg.output.tracks_out, name, len(rings)),
                                                  append=incarnation > 1)
                                  for name in rings}
        self.previews = {}
        if spec.previews:
            from stream.web.preview import PreviewBoard

            self.previews = {name: PreviewBoard.attach(layout) for name, layout in spec.previews.items()}
        if spec.web_feed:
            from stream.web.feed import WebFeedSink

            self.sinks.append(WebFeedSink(spec.web_feed))
        self.unknowns = None
        if cfg.output.save_unknowns:
            from stream.cluster.tracks import UnknownsRecorder

            # The run directory's name tags the tracks: frame indices only co-occur within one run.
            self.unknowns = UnknownsRecorder(cfg.output.save_unknowns, spec.manifest, cfg.output.unknown_crops,
                                             run=ledger.journal_path.parent.name, threshold=cfg.model.threshold,
                                             min_embeddings=cfg.output.unknown_min_embeddings,
                                             min_score=cfg.output.unknown_min_score)
        self.latency = LatencyStats()  # this incarnation's frames: percentiles need the samples
        self.errors: dict[str, str] = {}
        self.last_heartbeat = time.monotonic()
        if restored.open_tracks:
            self._end_orphans(restored.open_tracks)

    def _end_orphans(self, open_tracks: dict[tuple[str, int], dict]) -> None:
        """End the tracks a killed publisher left open: nobody here knows their votes any more."""
        now = time.time()
        log.warning("publisher restarted: ending %d open track(s)", len(open_tracks))
        self._emit([Event(type="track_ended", source=source, track_id=track_id, identity=last.get("identity"),
                          bbox=last.get("bbox"), frame=last.get("frame"), pts=last.get("pts"), ts=now,
                          reason="publisher_restarted")
                    for (source, track_id), last in sorted(open_tracks.items())])

    # -- per frame -------------------------------------------------------------------------------
    def handle(self, msg: ResultMsg) -> None:
        from stream.recognize.stage import FrameResult

        fm = msg.faces_msg
        frame = fm.frame
        src = frame.source
        led = self.ledger.sources[src]
        if frame.index <= led["last_frame"]:  # sent twice by a reader killed right after sending it
            led.add("duplicates")
            self._release(src, frame.slot)
            return
        missing = (frame.seq - int(led["last_seq"]) - 1 if frame.seq >= 0
                   else frame.index - int(led["last_frame"]) - 1)
        if missing > 0:
            self._lost(src, missing, int(led["last_frame"]) + 1, frame.index - 1)
        self._reclaim(src, frame.index, frame.slot)
        led["last_frame"] = frame.index
        led["last_seq"] = max(frame.seq, int(led["last_seq"]))
        led.add("frames")
        stage = self.stages[src]
        if self.epochs.setdefault(src, fm.epoch) != fm.epoch:
            # A new detect worker: its tracker numbers from 1 again, so every open track ends here.
            self._emit(stage.flush(src, reason="worker_restarted"))
            self.epochs[src] = fm.epoch
        faces = fm.faces
        n = len(faces)
        embedded = np.zeros(n, bool)
        embeddings = None
        if len(fm.embed_rows):
            embedded[fm.embed_rows] = True
            embeddings = np.full((n, msg.embeddings.shape[1]), np.nan, np.float32)
            embeddings[fm.embed_rows] = msg.embeddings
        faces = faces.with_(embeddings=embeddings)
        blur = None
        if len(fm.embed_rows):
            blur = np.full(n, np.nan, np.float32)
            blur[fm.embed_rows] = blur_quality(self.rings[src].crops(frame.slot)[: len(fm.embed_rows)])
        if not self.run["first_capture"]:
            self.run["first_capture"] = frame.capture_ts
        t0 = time.perf_counter()
        events = stage.process(FrameResult(src, frame.index, frame.pts, frame.capture_ts,
                                           faces, embedded, list(fm.ended), blur))
        if self.unknowns is not None and len(fm.embed_rows):
            self._observe_unknowns(src, frame, fm.embed_rows, msg.embeddings, faces.score, stage)
        writer = self.track_writers.get(src)
        if writer is not None:
            writer.write(frame.index, faces, stage.frame_tracks)
        for track_id, confident in stage.take_status_updates():
            self.spec.feedback[src].put(TrackStatus(src, int(track_id), bool(confident), fm.epoch))
        self._emit(events)
        if self.spec.annotate is not None:
            self._annotate(frame, faces, stage)
        board = self.previews.get(src)
        if board is not None and board.wanted(self.spec.config.web.max_fps):
            self._preview(board, frame, faces, stage)
        publish_ms = (time.perf_counter() - t0) * 1e3
        run = self.run
        for key, ms in (("ms_read", frame.read_ms), ("ms_detect", fm.detect_ms), ("ms_embed", msg.embed_ms),
                        ("ms_publish", publish_ms)):
            run.add(key, ms)
        run.add("timed_frames")
        done = time.time()
        run["last_done"] = done
        self.latency.add(done - frame.capture_ts)
        if self.metrics is not None:
            m = self.metrics
            m.frames.labels(src).inc()
            m.faces.labels(src).inc(n)
            m.embedded.labels(src).inc(len(fm.embed_rows))
            m.latency.labels(src).observe(done - frame.capture_ts)
        run.add("faces", n)
        run.add("embedded", len(fm.embed_rows))
        if msg.batch_size:
            run.add("batches")
            run.add("batch_crops", msg.batch_size)
        # The frame and its crops are no longer needed: hand the slot back to the reader.
        self._release(src, frame.slot)

    def _observe_unknowns(self, src: str, frame, embed_rows, embeddings: np.ndarray, scores: np.ndarray,
                          stage) -> None:
        # Before this frame's events go out: a track that ends in them has all its frames.
        crops = self.rings[src].crops(frame.slot)
        for k, row in enumerate(embed_rows):
            track_id = stage.frame_tracks[row][0]
            self.unknowns.observe(src, track_id, frame.index, crops[k], embeddings[k],
                                  float(stage.frame_quality[row]), float(scores[row]))

    def _release(self, source: str, slot: int) -> None:
        self.ledger.sources[source].holders[slot] = RELEASED
        self.spec.free_slots[source].put(slot)

    def _reclaim(self, source: str, index: int, keep: int) -> None:
        """Free the slots of frames before ``index`` that will never come (frames arrive in order)."""
        holders = self.ledger.sources[source].holders
        for slot, held in enumerate(holders[:]):
            if slot != keep and 0 <= held <= index:
                self._release(source, slot)

    def _lost(self, source: str, count: int, first: int, last: int) -> None:
        """``count`` frames sent between frames ``first`` and ``last`` never came (the others there, if
        any, were dropped by a live source: never sent)."""
        if count == last - first + 1:
            log.warning("%s: frames %d..%d were lost with a restarted worker", source, first, last)
        else:
            log.warning("%s: %d frame(s) of %d..%d were lost with a restarted worker", source, count, first, last)
        self.ledger.sources[source].add("lost", count)
        self.lost_ranges.setdefault(source, []).append([first, last])
        self.journal.append({"lost": [first, last], "count": count, "source": source})

    def end_source(self, msg: EndOfSource) -> None:
        led = self.ledger.sources[msg.source]
        read = max(msg.frames, int(led["read_next"]))
        # The reader has ended: its count of frames sent is final. Only live readers keep one (a file
        # has no dropped frames, so a gap in its frame numbers is frames lost).
        sent = int(led["sent"])
        missing = sent - 1 - int(led["last_seq"]) if sent else read - 1 - int(led["last_frame"])
        if missing > 0:
            self._lost(msg.source, missing, int(led["last_frame"]) + 1, read - 1)
            led["last_seq"] = max(sent - 1, int(led["last_seq"]))
        if read - 1 > led["last_frame"]:
            led["last_frame"] = read - 1
        self._reclaim(msg.source, read, keep=-1)
        self._emit(self.stages[msg.source].flush(msg.source))
        if self.metrics is not None:
            self.metrics.update(self.ledger)  # dropped, lost and corrupt are final for this source
        if msg.error:
            self.errors[msg.source] = msg.error
        writer = self.annotators.pop(msg.source, None)
        if writer is not None:
            writer[0].close()

    def _emit(self, events: list[Event]) -> None:
        run = self.run
        for event in events:
            # One sequence for every sink, kept in the ledger: it goes on across publisher restarts.
            event.seq = int(run.add("seq"))
            event.origin = self.spec.config.output.origin
            if event.type != "heartbeat":
                # Journaled before it goes out: a successor ends every track a consumer saw start.
                self.journal.append({"type": event.type, "source": event.source, "track_id": event.track_id,
                                     "identity": event.identity, "bbox": event.bbox, "frame": event.frame,
                                     "pts": event.pts})
            if event.type == "track_started":
                run.add("tracks")
            elif event.type == "track_ended" and self.unknowns is not None:
                self.unknowns.end(event.source, int(event.track_id or 0), unknown=event.identity is None)
            elif event.type == "identity" and event.identity is not None:
                names = self.named_tracks.setdefault((event.source, int(event.track_id or 0)), [])
                if not names or names[-1] != event.identity:
                    names.append(event.identity)
            for sink in self.sinks:
                sink.write(event)
            run.add("events")
            if self.zmq is not None:
                base = self._zmq_base
                run["publish_sent"] = base["publish_sent"] + self.zmq.sent
                run["publish_dropped"] = base["publish_dropped"] + self.zmq.dropped
                run["publish_unheard"] = base["publish_unheard"] + self.zmq.unheard
            self._count_mqtt()
            if self.metrics is not None:
                self.metrics.events.labels(event.type).inc()

    def _count_mqtt(self) -> None:
        if self.mqtt is not None:
            for key, base in self._mqtt_base.items():
                self.run[f"mqtt_{key}"] = base + getattr(self.mqtt, key)

    def _annotate(self, frame, faces, stage) -> None:
        from stream.annotate import Annotator, VideoAnnotationWriter

        entry = self.annotators.get(frame.source)
        if entry is None:
            path = _per_source(Path(self.spec.annotate), frame.source, len(self.rings))
            if self.incarnation > 1:  # a restarted publisher must not overwrite what was written
                path = path.with_name(f"{path.stem}-restart{self.incarnation - 1}{path.suffix}")
            fps = self.spec.source_fps.get(frame.source) or 25.0
            entry = (VideoAnnotationWriter(path, fps, (frame.width, frame.height)), Annotator())
            self.annotators[frame.source] = entry
        writer, annotator = entry
        image = self.rings[frame.source].frame(frame.slot, frame.height, frame.width).copy()
        labels = {int(tid): stage.label(int(tid)) for tid in faces.track_id}
        writer.write(annotator.draw(image, faces, labels))

    def _preview(self, board, frame, faces, stage) -> None:
        """The frame and what is on it, for the web view (which draws and encodes it itself)."""
        overlay = [{"box": [round(float(v), 1) for v in faces.xyxy[i]], "track_id": public, "identity": decided,
                    "label": f"#{public} {decided or 'unknown'}"}
                   for i, (public, decided) in enumerate(stage.frame_tracks)]
        board.write(self.rings[frame.source].frame(frame.slot, frame.height, frame.width), overlay, frame.index,
                    frame.capture_ts)

    # -- periodic / final ------------------------------------------------------------------------
    def maybe_heartbeat(self) -> None:
        now = time.monotonic()
        if now - self.last_heartbeat < self.spec.config.output.heartbeat_s:
            return
        self.last_heartbeat = now
        if self.zmq is not None:
            self.zmq.poll()  # apply (un)subscriptions while no event goes out
        stats = self.stats()
        if self.metrics is not None:
            self.metrics.update(self.ledger)
        self._emit([Event(type="heartbeat", source=name, ts=time.time(), stats=stats) for name in self.rings])

    def maybe_reload_gallery(self) -> None:
        """Called every loop, like maybe_heartbeat: a changed gallery file applies within ~0.5 s.

        Each stage re-decides its open tracks (RecognitionStage.set_gallery); the tracks that turn
        unconfident are told to the detect worker now, so it embeds them again from its next frame.
        """
        if self.gallery_watch is None:
            return
        gallery = self.gallery_watch.poll()
        if gallery is None:
            return
        for src, stage in self.stages.items():
            self._emit(stage.set_gallery(gallery, src))
            if src in self.epochs:  # else no frame came yet; the first handle() sends them
                for track_id, confident in stage.take_status_updates():
                    self.spec.feedback[src].put(TrackStatus(src, int(track_id), bool(confident), self.epochs[src]))

    def stats(self) -> dict:
        run = self.run
        wall = max(run["last_done"] - (run["first_capture"] or run["last_done"]), 1e-9)
        frames = sum(int(led["frames"]) for led in self.ledger.sources.values())
        return {
            "frames": frames,
            "faces": int(run["faces"]),
            "embedded": int(run["embedded"]),
            "tracks": int(run["tracks"]),
            "events": int(run["events"]),
            "fps": round(frames / wall, 2),
            "latency_ms": self.latency.summary(),
            "dropped": sum(int(led["live_dropped"]) for led in self.ledger.sources.values()),
            "lost": sum(int(led["lost"]) for led in self.ledger.sources.values()),
            "corrupt": sum(int(led["corrupt"]) for led in self.ledger.sources.values()),
            "published": int(run["publish_sent"]) if self.zmq is not None else None,
            "publish_dropped": int(run["publish_dropped"]) if self.zmq is not None else None,
            "publish_unheard": int(run["publish_unheard"]) if self.zmq is not None else None,
            "subscribers": self.zmq.subscribers if self.zmq is not None else None,
            "mqtt": ({k: int(run[f"mqtt_{k}"]) for k in ("published", "acked", "dropped")}
                     if self.mqtt is not None else None),
            "worker_restarted": self.ledger.restarts(),
            "sources": {name: self._source_state(name) for name in self.rings},
        }

    def summary(self) -> dict:
        out = self.stats()
        out["per_source"] = {name: self._source_summary(name) for name in self.rings}
        run = self.run
        timed = run["timed_frames"]
        out["stage_ms_per_frame"] = ({k: round(run[f"ms_{k}"] / timed, 2) for k in ("read", "detect", "embed",
                                                                                     "publish")}
                                     if timed else {})
        out["mean_batch"] = round(run["batch_crops"] / run["batches"], 2) if run["batches"] else 0.0
        out["named_tracks"] = {f"{s}#{t}": names for (s, t), names in sorted(self.named_tracks.items())}
        out["errors"] = self.errors
        return out

    def _source_state(self, name: str) -> dict:
        """Whether a source is up, as its reader last wrote it: a camera that is down shows here."""
        led = self.ledger.sources[name]
        online, since = bool(led["online"]), float(led["offline_since"])
        return {"online": online, "reconnects": int(led["reconnects"]), "dropped": int(led["live_dropped"]),
                "corrupt": int(led["corrupt"]), "lost": int(led["lost"]),
                "offline_s": round(max(time.time() - since, 0.0), 1) if since and not online else None,
                "last_error": led.last_error()}

    def _source_summary(self, name: str) -> dict:
        led = self.ledger.sources[name]
        return {"read": int(led["read_next"]), "frames": int(led["frames"]), "lost": int(led["lost"]),
                "lost_frames": self.lost_ranges.get(name, []), "duplicates": int(led["duplicates"]),
                "skipped_on_resume": int(led["read_skipped"]), "dropped": int(led["live_dropped"]),
                "corrupt": int(led["corrupt"]), "reconnects": int(led["reconnects"])}

    def close(self) -> None:
        for writer, _ in self.annotators.values():
            writer.close()
        for tracks in self.track_writers.values():
            tracks.close()
        for sink in self.sinks:
            sink.close()
        self._count_mqtt()  # closing said goodbye and counted what never reached the broker
        for board in self.previews.values():
            board.close()
        self.journal.close()


def _per_source(path: Path, source: str, sources: int) -> Path:
    """One output file per source when there are several: ``out.mp4`` -> ``out-<source>.mp4``."""
    return path if sources == 1 else path.with_name(f"{path.stem}-{source}{path.suffix}")
