"""A recorded video's history carried from where it was recognised to the one store: `site batch`.

Each Ray task runs `facestream run` with its own SQLite history in its scratch folder (no stranger
ids, no pruning there: both belong to the one store), reads it back with :func:`read_run` and returns
the rows with its other outputs. The driver writes them with :func:`write_run`, one video at a time.

Why the driver writes, not the tasks: a task's node may not see the driver's disk (SQLite is a file
there) nor reach its database, and SQLite takes one writer at a time; one writer also keeps
PostgreSQL to one connection however many tasks run, and the driver already writes each video's
outputs as its task returns. Written before the video's summary, and replacing rows an earlier
attempt wrote under the same run id, so a batch killed between the two writes the video again on
its next run without doubling its tracks.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from stream.history import tables as T
from stream.history.config import HistoryConfig
from stream.history.recorder import file_start
from stream.history.store import Decision, HistoryStore, NewTrack, RunRow, from_blob
from stream.history.strangers import StrangerMemory, track_to_track_threshold

log = logging.getLogger(__name__)

_TRACK_FIELDS = tuple(f.name for f in fields(NewTrack))
_DECISION_FIELDS = tuple(f.name for f in fields(Decision))
WRITE_CHUNK = 500  # tracks per transaction: a long video's history is not one huge commit


@dataclass
class RunRecords:
    """One run's rows, as a task returns them (picklable: numpy arrays and bytes)."""

    model: str | None = None
    tracks: list[NewTrack] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)


def task_history(history: dict[str, Any], path: Path) -> dict[str, Any]:
    """The ``history`` section a batch task runs with: its own store at ``path``, times as the pts
    (the driver adds the file's start), and nothing that needs the one store (strangers, pruning)."""
    return {**history, "url": str(path), "file_start": "none", "strangers": False, "keep_days": None,
            "max_mb": None}


def read_run(url: str | Path) -> RunRecords:
    """Every track (with its embeddings and thumbnail) and decision of a task's own store."""
    out = RunRecords()
    with HistoryStore.open(url, create=False) as store, store.engine.connect() as conn:
        runs = store.runs()
        out.model = runs[0].model if runs else None
        for row in conn.execute(select(T.tracks).order_by(T.tracks.c.id)):
            m = row._mapping
            values = {name: m[name] for name in _TRACK_FIELDS if name not in ("mean", "best", "thumbnail")}
            out.tracks.append(NewTrack(**values, mean=from_blob(m["mean"], m["dim"])[0].copy(),
                                       best=from_blob(m["best"], m["dim"]).copy(),
                                       thumbnail=None if m["thumbnail"] is None else bytes(m["thumbnail"])))
        for row in conn.execute(select(T.decisions).order_by(T.decisions.c.id)):
            out.decisions.append(Decision(**{name: row._mapping[name] for name in _DECISION_FIELDS}))
    return out


def archive_run_id(video: Path) -> str:
    """The same id for the same file (path, size, modification time) however often it is batched."""
    try:
        st = video.stat()
        key = f"{video.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    except OSError:
        key = str(video)
    return f"batch-{video.stem[:120]}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"


class ArchiveWriter:
    """The driver's one connection to the store: each video's rows as its task returns them."""

    def __init__(self, url: str, config: HistoryConfig) -> None:
        self.url, self.config = url, config
        self.store = HistoryStore.open(url)
        self._memories: dict[str, StrangerMemory | None] = {}  # by embedding space
        self.tracks = self.decisions = 0

    def write_run(self, records: RunRecords, *, run_id: str, source: str, video: Path,
                  started_at: float | None = None) -> int:
        """Replace what ``run_id`` holds by ``records``, re-labelled for the store: the source, the
        driver's path of the video, times shifted by the file's start. The tracks written."""
        start = file_start(self.config.file_start, str(video))
        tracks = [replace(t, run_id=run_id, source=source, video=str(video), started_at=t.started_at + start,
                          ended_at=t.ended_at + start, stranger_id=None, origin=None) for t in records.tracks]
        decisions = [replace(d, run_id=run_id, source=source, ts=d.ts + start) for d in records.decisions]
        self._forget_run(run_id)
        self.store.begin_run(RunRow(run_id, started_at or time.time(), None, None, "archive", records.model))
        for k in range(0, max(len(tracks), len(decisions)), WRITE_CHUNK):
            chunk = tracks[k:k + WRITE_CHUNK]
            memory = self._memory(chunk[0]) if chunk else None
            if memory is not None:
                self._tag(memory, chunk)
            ids = self.store.write(chunk, decisions[k:k + WRITE_CHUNK])
            if memory is not None:
                memory.written(ids, chunk)
        self.store.end_run(run_id, time.time())
        self.tracks += len(tracks)
        self.decisions += len(decisions)
        return len(tracks)

    def _tag(self, memory: StrangerMemory, chunk: list[NewTrack]) -> None:
        """As the recorder does: the store being away fails the video (tried again on the next run);
        anything else turns stranger ids off rather than holding back the rows."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            memory.tag(self.store, chunk, time.time())
        except SQLAlchemyError:
            raise
        except Exception:
            log.exception("history: stranger ids turned off for this batch")
            self._memories = dict.fromkeys(self._memories)
            for track in chunk:
                track.stranger_id = None

    def _forget_run(self, run_id: str) -> None:
        """An earlier attempt's rows of this run (killed before its summary): gone, in one transaction."""
        t = T.tracks.c
        with self.store.engine.begin() as conn:
            ids = select(t.id).where(t.run_id == run_id).scalar_subquery()
            conn.execute(delete(T.track_means).where(T.track_means.c.id.in_(ids)))
            conn.execute(delete(T.tracks).where(t.run_id == run_id))
            conn.execute(delete(T.decisions).where(T.decisions.c.run_id == run_id))
            conn.execute(delete(T.runs).where(T.runs.c.id == run_id))

    def _memory(self, track: NewTrack) -> StrangerMemory | None:
        """Stranger ids as a run's recorder gives them (stream/history/recorder.py), one memory per space."""
        space = track.embedding_space
        if space not in self._memories:
            config = self.config
            threshold = track_to_track_threshold(track.model, config.strangers_threshold) if config.strangers \
                else None
            days = min(config.strangers_days, config.keep_days) if config.keep_days else config.strangers_days
            self._memories[space] = (StrangerMemory(space, threshold, days, config.strangers_cache)
                                     if threshold is not None else None)
        return self._memories[space]

    def close(self) -> None:
        self.store.close()

