"""The side jobs ``output.*`` and ``--annotate`` ask the publisher for, as frame observers.

Each is what the publisher used to do inline for every frame: MOTChallenge rows per source,
keeping the crops of tracks that may end unknown, and the annotated video. Others (the web
preview) are registered by whoever starts the run (``PublishSpec.observers``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from stream.events.mot import MotWriter
from stream.events.schema import Event
from stream.pipeline.observers import FrameObserver, FrameView, Observer
from stream.pipeline.privacy import UnknownFaces

if TYPE_CHECKING:
    from stream.annotate import Annotator, VideoAnnotationWriter
    from stream.cluster.saved_tracks import UnknownsRecorder
    from stream.pipeline.ledger import RunLedger
    from stream.pipeline.specs import PublishSpec

log = logging.getLogger(__name__)


class MotRows(Observer):
    """``output.tracks_out``: one MOT row per face per frame (stream/events/mot.py)."""

    def __init__(self, path: Path, sources: list[str], append: bool) -> None:
        self.writers = {name: MotWriter(per_source(path, name, len(sources)), append=append) for name in sources}

    def on_frame(self, view: FrameView) -> None:
        self.writers[view.source].write(view.frame.index, view.faces, view.outcome.tracks)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


class UnknownTracks(Observer):
    """``output.save_unknowns``: the best crops and mean embedding of each track that ends unknown."""

    def __init__(self, recorder: UnknownsRecorder) -> None:
        self.recorder = recorder

    def on_frame(self, view: FrameView) -> None:
        if not len(view.embed_rows):
            return
        crops, tracks, quality, scores = view.crops(), view.outcome.tracks, view.outcome.quality, view.faces.score
        for k, row in enumerate(view.embed_rows):
            self.recorder.observe(view.source, tracks[row][0], view.frame.index, crops[k], view.embeddings[k],
                                  float(quality[row]), float(scores[row]))

    def on_event(self, event: Event) -> None:
        if event.type == "track_ended":
            self.recorder.end(event.source, int(event.track_id or 0), unknown=event.identity is None)


class Annotation(Observer):
    """``--annotate``: every frame with its boxes and names, one video per source."""

    def __init__(self, path: Path, sources: int, source_fps: dict[str, float], incarnation: int,
                 hide: UnknownFaces | None = None) -> None:
        # Here, not at the top: OpenCV's import costs every publisher start ~0.1-0.25 s of CPU, and
        # only a run that annotates needs it.
        from stream.annotate import Annotator, VideoAnnotationWriter, blur_boxes

        self._kinds = (VideoAnnotationWriter, Annotator)
        self._blur, self._hide = blur_boxes, hide  # privacy.unknowns: blur
        self.path, self.sources, self.source_fps, self.incarnation = path, sources, source_fps, incarnation
        self.writers: dict[str, tuple[VideoAnnotationWriter, Annotator]] = {}

    def on_frame(self, view: FrameView) -> None:
        frame = view.frame
        entry = self.writers.get(frame.source)
        if entry is None:  # opened at the first frame: its size is the frame's
            path = per_source(self.path, frame.source, self.sources)
            if self.incarnation > 1:  # a restarted publisher must not overwrite what was written
                path = path.with_name(f"{path.stem}-restart{self.incarnation - 1}{path.suffix}")
            fps = self.source_fps.get(frame.source) or 25.0
            writer_kind, annotator_kind = self._kinds
            entry = (writer_kind(path, fps, (frame.width, frame.height)), annotator_kind())
            self.writers[frame.source] = entry
        writer, annotator = entry
        labels = dict(zip((int(t) for t in view.faces.track_id), view.outcome.labels))
        image = view.image().copy()
        if self._hide is not None:
            self._blur(image, self._hide.boxes(view))
        writer.write(annotator.draw(image, view.faces, labels))

    def on_event(self, event: Event) -> None:
        if self._hide is not None:
            self._hide.on_event(event)

    def end_source(self, source: str) -> None:
        if self._hide is not None:
            self._hide.end_source(source)
        entry = self.writers.pop(source, None)
        if entry is not None:
            entry[0].close()

    def close(self) -> None:
        for writer, _ in self.writers.values():
            writer.close()
        self.writers.clear()


def build_side_jobs(spec: PublishSpec, ledger: RunLedger, incarnation: int) -> list[FrameObserver]:
    """The side jobs the run's config asks for, in the order the publisher always ran them."""
    out = spec.config.output
    sources = list(spec.layouts)
    jobs: list[FrameObserver] = []
    if out.tracks_out:
        jobs.append(MotRows(out.tracks_out, sources, append=incarnation > 1))
    private = spec.config.privacy.blur
    if out.save_unknowns and private:
        log.warning("privacy.unknowns is blur: unknown tracks are not saved to %s", out.save_unknowns)
    elif out.save_unknowns:
        from stream.cluster.saved_tracks import UnknownsRecorder  # brings OpenCV: only when asked for

        # The run directory's name tags the tracks: frame indices only co-occur within one run.
        jobs.append(UnknownTracks(UnknownsRecorder(
            out.save_unknowns, spec.manifest, out.unknown_crops, run=ledger.journal_path.parent.name,
            threshold=spec.config.model.threshold, min_embeddings=out.unknown_min_embeddings,
            min_score=out.unknown_min_score)))
    if spec.annotate is not None:
        hide = UnknownFaces(spec.config.tracker.max_age) if private else None
        jobs.append(Annotation(Path(spec.annotate), len(sources), spec.source_fps, incarnation, hide))
    if spec.config.history.url:
        jobs.append(history_recorder(spec, ledger))
    return jobs


def history_recorder(spec: PublishSpec, ledger: RunLedger) -> FrameObserver:
    """``history.url``: every track and decision into the history store; also the run's "history" sink."""
    from stream.history.recorder import HistoryRecorder, TrackModel  # SQLAlchemy: only when asked for

    m = spec.manifest
    return HistoryRecorder(str(spec.config.history.url), spec.config.history,
                           TrackModel(m.name, m.embedding_space, m.embedding_size),
                           run_id=ledger.journal_path.parent.name, origin=spec.config.output.origin,
                           videos=spec.source_files, keep_unknowns=not spec.config.privacy.blur)


def per_source(path: Path, source: str, sources: int) -> Path:
    """One output file per source when there are several: ``out.mp4`` -> ``out-<source>.mp4``."""
    return path if sources == 1 else path.with_name(f"{path.stem}-{source}{path.suffix}")
