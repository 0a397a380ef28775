"""Strangers remembered: an unknown track gets the stranger id of the nearest earlier unknown track
within a track-to-track threshold, or a new one (``stranger-000123``).

The rule and its threshold were measured (docs/history.md, "Strangers remembered";
``tools/bench_search.py calibrate-strangers``): distances are between unit mean embeddings, as in
search. Two different people sharing an id is the costly mistake (naming one names the other), a
missed merge only splits one person in two, so the cut sits under the nearest pair of different
people seen, not between the two distributions.

The matching runs on the history recorder's writer thread, never the publisher's:
:class:`StrangerMemory` holds the recent unknown tracks' unit means (loaded once from the store,
then only rows with a higher id: so runs writing one PostgreSQL see each other's strangers) and
tags each batch's unknown tracks before it is written.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from stream.errors import FacestreamError
from stream.history import tables as T
from stream.history.search import MIN_DETECTOR_SCORE, MIN_FACES, unit_rows

if TYPE_CHECKING:
    from stream.history.store import HistoryStore, NewTrack

#: Track-to-track thresholds (unit-sphere euclidean distance between two tracks' mean embeddings) under
#: which two unknown tracks are one stranger, measured per model on the shared clips' labelled tracks
#: (tools/bench_search.py calibrate-strangers). Next to search's PHOTO_TO_TRACK_THRESHOLDS, by model name.
TRACK_TO_TRACK_THRESHOLDS: dict[str, float] = {"dlib-resnet-v1": 0.30, "facenet-casia": 0.70}

DAY_S = 86400.0
_ID = re.compile(r"^stranger-(\d{1,12})$")
# Rows re-read below the highest id seen on each refresh: another writer's transaction may commit a lower
# id after a higher one was read (PostgreSQL hands ids out at insert, not at commit).
_OVERLAP = 1000


def stranger_id(number: int) -> str:
    return f"stranger-{int(number):06d}"


def stranger_number(text: str) -> int:
    """``stranger-000123`` -> 123, or one line saying what a stranger id looks like."""
    match = _ID.match(str(text).strip())
    if not match:
        raise FacestreamError(f"{text}: not a stranger id (stranger-000123)")
    return int(match.group(1))


def track_to_track_threshold(model: str, override: float | None = None) -> float | None:
    """The configured threshold, else the one measured for ``model``; None: no stranger ids (a guess
    could tie different people together, which is worse than not remembering them)."""
    if override is not None:
        return float(override)
    return TRACK_TO_TRACK_THRESHOLDS.get(model)


def eligible(track: NewTrack, embedding_space: str) -> bool:
    """An unknown track solid enough to remember: the search filter (a mean of a few poor crops is
    near every face), in this memory's embedding space."""
    return (track.identity is None and track.embedding_space == embedding_space and track.faces >= MIN_FACES
            and track.detector_score >= MIN_DETECTOR_SCORE and bool(np.isfinite(track.mean).all()))


def nearest_within(query: np.ndarray, units: np.ndarray, threshold: float,
                   allowed: np.ndarray | None = None) -> tuple[int, float] | None:
    """The row of ``units`` (unit rows) nearest the unit ``query`` within ``threshold`` and ``allowed``
    (a bool mask), as (row, distance); None when there is none. Ties go to the earlier row."""
    if not len(units):
        return None
    # Unit rows: |q - u|^2 = 2 - 2 q.u, so the nearest is the largest product; one distance is taken.
    dots = np.asarray(units, np.float32) @ np.asarray(query, np.float32)
    if allowed is not None:
        dots = np.where(allowed, dots, -np.inf)
    row = int(np.argmax(dots))
    if not np.isfinite(dots[row]):
        return None
    d = float(np.sqrt(max(2.0 - 2.0 * float(dots[row]), 0.0)))
    return (row, d) if d <= threshold else None


class StrangerMemory:
    """The recent unknown tracks of one embedding space that carry a stranger id, bounded: the
    ``capacity`` highest row ids. Used by one thread (the recorder's writer).

    Besides the distance, one rule needs no measuring: two tracks of one run and source that overlap in
    time are two faces on screen at once, so two people (the nearest different people of the clips were
    such a pair, 0.314 apart)."""

    _COLUMNS = ("ids", "strangers", "started", "ended", "places")

    def __init__(self, embedding_space: str, threshold: float, days: float, capacity: int) -> None:
        self.embedding_space, self.threshold = embedding_space, float(threshold)
        self.window_s = float(days) * DAY_S
        self.capacity = int(capacity)
        # Buffers grown by doubling, the first ``n`` rows in use, ascending by track row id: a batch
        # appends (its ids are the newest) instead of copying every remembered mean.
        self.n = 0
        self._cols: dict[str, np.ndarray] = {
            "ids": np.zeros(0, np.int64), "strangers": np.zeros(0, np.int64), "started": np.zeros(0, np.float64),
            "ended": np.zeros(0, np.float64), "places": np.zeros(0, np.int64)}
        self._units: np.ndarray | None = None  # (rows, dim) float32 unit means
        self._places: dict[tuple[str, str], int] = {}  # (run, source) -> a small number
        self.loaded = False
        self.last = 0  # the highest row id read from the store
        self._census: tuple[int, int] = (0, 0)  # (highest stranger number, strangers at or below it) last seen

    @property
    def ids(self) -> np.ndarray:
        return self._cols["ids"][:self.n]

    def __len__(self) -> int:
        return self.n

    def place(self, run_id: str, source: str) -> int:
        return self._places.setdefault((run_id, source), len(self._places))

    # -- the store's side ----------------------------------------------------------------------
    def refresh(self, store: HistoryStore) -> int:
        """Read the tagged unknown tracks written since the last refresh (by anyone); rows added."""
        from sqlalchemy import desc

        if self.loaded and self._strangers_deleted(store):  # forget or prune ran: hold nothing of theirs
            self.clear()
        if not self.loaded:
            self._strangers_deleted(store)  # the census a load starts from
        t = T.tracks.c
        query = (T.tracks.select()
                 .with_only_columns(t.id, t.stranger_id, t.run_id, t.source, t.started_at, t.ended_at, t.dim, t.mean)
                 .where(t.embedding_space == self.embedding_space, t.stranger_id.is_not(None)))
        if not self.loaded:  # the newest ``capacity`` only: older strangers are not matched again
            query = query.order_by(desc(t.id)).limit(self.capacity)
        else:
            query = query.where(t.id > max(self.last - _OVERLAP, 0)).order_by(t.id)
        with store.engine.connect() as conn:
            rows = conn.execute(query).all()
        self.loaded = True
        if rows:
            known = set(self.ids[np.searchsorted(self.ids, self.last - _OVERLAP):].tolist())
            self.last = max(self.last, max(int(r.id) for r in rows))
            numbered = [(r, _number_or_none(r.stranger_id)) for r in rows if r.id not in known]
            rows = [r for r, number in numbered if number is not None]
            numbers = [number for _, number in numbered if number is not None]
        if not rows:
            return 0
        self.add(np.array([r.id for r in rows], np.int64), np.array(numbers, np.int64),
                 np.array([r.started_at for r in rows], np.float64), np.array([r.ended_at for r in rows], np.float64),
                 np.array([self.place(r.run_id, r.source) for r in rows], np.int64),
                 np.stack([np.frombuffer(r.mean, dtype="<f4")[:r.dim] for r in rows]))
        return len(rows)

    def _strangers_deleted(self, store: HistoryStore) -> bool:
        """Whether stranger rows were deleted since the last look (``forget``, or a prune that left a
        stranger without tracks): two small reads of ``strangers``."""
        from sqlalchemy import func, select

        s = T.strangers.c
        top, counted = self._census
        with store.engine.connect() as conn:
            newest = int(conn.execute(select(func.max(s.id))).scalar_one() or 0)
            below = int(conn.execute(select(func.count()).where(s.id <= newest)).scalar_one())
            still = int(conn.execute(select(func.count()).where(s.id <= top)).scalar_one()) if top else 0
        self._census = (newest, below)
        return still < counted

    def clear(self) -> None:
        """Forget every remembered row: the next refresh loads afresh from the store."""
        self.n = 0
        self.loaded = False
        self.last = 0

    def add(self, ids: np.ndarray, strangers: np.ndarray, started: np.ndarray, ended: np.ndarray,
            places: np.ndarray, means: np.ndarray) -> None:
        """Rows (any order, any norms) into the memory; past ``capacity`` the lowest ids go."""
        ids = np.asarray(ids, np.int64)
        if not len(ids):
            return
        units = unit_rows(np.atleast_2d(means))
        if self._units is None:
            self._units = np.zeros((0, units.shape[1]), np.float32)
        cols = self._cols
        need = self.n + len(ids)
        if need > len(cols["ids"]):  # grow by doubling, up to a little past capacity
            size = max(need, min(2 * len(cols["ids"]), self.capacity + self.capacity // 8 + len(ids)), 64)
            for name in self._COLUMNS:
                cols[name] = np.resize(cols[name], size)
            grown = np.zeros((size, units.shape[1]), np.float32)
            grown[:self.n] = self._units[:self.n]
            self._units = grown
        newest = cols["ids"][self.n - 1] if self.n else np.iinfo(np.int64).min
        end = slice(self.n, need)
        for name, values in zip(self._COLUMNS, (ids, strangers, started, ended, places)):
            cols[name][end] = values
        self._units[end] = units
        self.n = need
        arrays = [*(cols[name] for name in self._COLUMNS), self._units]
        if ids.min() <= newest or (np.diff(ids) < 0).any():
            order = np.argsort(cols["ids"][:self.n], kind="stable")  # older rows arrived late: ids ascending
            for a in arrays:
                a[:self.n] = a[:self.n][order]
        if self.n > self.capacity + self.capacity // 8:  # forget the oldest now and then, not on every add
            drop = self.n - self.capacity
            for a in arrays:
                a[:self.capacity] = a[drop:self.n].copy()
            self.n = self.capacity

    # -- tagging a batch -----------------------------------------------------------------------
    def allowed(self, started: np.ndarray, ended: np.ndarray, places: np.ndarray, track: NewTrack) -> np.ndarray:
        """Which rows ``track`` may join: ended at most ``strangers_days`` before it started, and not on
        screen with it (same run and source, overlapping times)."""
        together = ((places == self.place(track.run_id, track.source)) & (started <= track.ended_at)
                    & (ended >= track.started_at))
        return (ended >= track.started_at - self.window_s) & ~together

    def match(self, track: NewTrack) -> tuple[int, float] | None:
        """(stranger number, distance) of the nearest remembered track ``track`` may join within the
        threshold; None when there is none."""
        if self._units is None or not self.n:
            return None
        c = {name: self._cols[name][:self.n] for name in self._COLUMNS}
        found = nearest_within(unit_rows(track.mean), self._units[:self.n], self.threshold,
                               self.allowed(c["started"], c["ended"], c["places"], track))
        return None if found is None else (int(c["strangers"][found[0]]), found[1])

    def tag(self, store: HistoryStore, tracks: Sequence[NewTrack], now: float) -> int:
        """Give each eligible, untagged track of ``tracks`` a stranger id (a new ``strangers`` row when
        no remembered track is near); tracks of one batch match each other too. New strangers made."""
        todo = [t for t in tracks if t.stranger_id is None and eligible(t, self.embedding_space)]
        if not todo:
            return 0
        self.refresh(store)
        made = 0
        done: list[tuple[NewTrack, int]] = []  # this batch's tagged tracks, with their numbers
        for track in sorted(todo, key=lambda t: t.started_at):
            found = self.match(track)
            if done:
                near = nearest_within(
                    unit_rows(track.mean), unit_rows(np.stack([t.mean for t, _ in done])), self.threshold,
                    self.allowed(np.array([t.started_at for t, _ in done]), np.array([t.ended_at for t, _ in done]),
                                 np.array([self.place(t.run_id, t.source) for t, _ in done]), track))
                if near is not None and (found is None or near[1] < found[1]):
                    found = (done[near[0]][1], near[1])
            if found is None:
                number = store.new_stranger(self.embedding_space, now)
                made += 1
                top, counted = self._census  # counted in, so that its deletion is seen too
                self._census = (max(top, number), counted + 1)
            else:
                number = found[0]
            track.stranger_id = stranger_id(number)
            done.append((track, number))
        return made

    def written(self, ids: Sequence[int], tracks: Sequence[NewTrack]) -> None:
        """The batch is in the store: remember its tagged tracks (they are not read back)."""
        pairs = [(i, t) for i, t in zip(ids, tracks) if t.stranger_id is not None
                 and t.embedding_space == self.embedding_space]
        if not pairs:
            return
        self.add(np.array([i for i, _ in pairs], np.int64),
                 np.array([stranger_number(t.stranger_id) for _, t in pairs], np.int64),
                 np.array([t.started_at for _, t in pairs], np.float64),
                 np.array([t.ended_at for _, t in pairs], np.float64),
                 np.array([self.place(t.run_id, t.source) for _, t in pairs], np.int64),
                 np.stack([t.mean for _, t in pairs]))


# -- the store's queries (HistoryStore.new_stranger, strangers, name_stranger delegate here) ------------

def new_stranger(engine, embedding_space: str, created_at: float) -> int:
    with engine.begin() as conn:
        row = conn.execute(T.strangers.insert().values(embedding_space=embedding_space, created_at=float(created_at))
                           .returning(T.strangers.c.id)).first()
    return int(row[0])


def summaries(engine, *, since: float | None = None, until: float | None = None,
              named: bool | None = None) -> list[dict]:
    """See ``HistoryStore.strangers`` (which makes each dict a StrangerSummary): aggregates in SQL, one
    row per stranger plus their cameras."""
    from sqlalchemy import func, select

    t = T.tracks.c
    where = [t.stranger_id.is_not(None)]
    if since is not None:
        where.append(t.ended_at >= since)
    if until is not None:
        where.append(t.started_at <= until)
    aggregate = (select(t.stranger_id, func.min(t.started_at), func.max(t.ended_at), func.count())
                 .where(*where).group_by(t.stranger_id))
    with engine.connect() as conn:
        found = {r[0]: (float(r[1]), float(r[2]), int(r[3])) for r in conn.execute(aggregate)}
        if not found:
            return []
        numbers = {sid: _number_or_none(sid) for sid in found}
        names: dict[int, str | None] = {}
        wanted = [n for n in numbers.values() if n is not None]
        for start in range(0, len(wanted), 900):  # SQLite's bound-parameter limit
            chunk = wanted[start:start + 900]
            for r in conn.execute(select(T.strangers.c.id, T.strangers.c.name).where(T.strangers.c.id.in_(chunk))):
                names[int(r[0])] = r[1]
        sources: dict[str, set[str]] = {}
        for r in conn.execute(select(t.stranger_id, t.source).where(*where).distinct()):
            sources.setdefault(r[0], set()).add(r[1])
        best: dict[str, tuple[int, float, int]] = {}  # stranger -> (faces, detector score, -row id) at its max
        for r in conn.execute(select(t.stranger_id, t.id, t.faces, t.detector_score).where(*where)):
            key = (int(r[2]), float(r[3]), -int(r[1]))
            if r[0] not in best or key > best[r[0]]:
                best[r[0]] = key
    out = []
    for sid, (first, last, count) in found.items():
        name = names.get(numbers[sid]) if numbers[sid] is not None else None
        if (named is True and name is None) or (named is False and name is not None):
            continue
        out.append({"stranger_id": sid, "name": name, "first_seen": first, "last_seen": last, "tracks": count,
                    "sources": sorted(sources.get(sid, ())), "best_track_id": -best[sid][2]})
    out.sort(key=lambda s: (-s["last_seen"], s["stranger_id"]))
    return out


def _number_or_none(text: str) -> int | None:
    try:
        return stranger_number(text)
    except FacestreamError:
        return None


def name_stranger(engine, stranger: str, name: str) -> int:
    """See ``HistoryStore.name_stranger``: one transaction, so a name is on all of their tracks or none."""
    from stream.recognize.names import check_name

    number = stranger_number(stranger)
    name = check_name(name)
    sid = stranger_id(number)  # the canonical spelling: stranger-123 names stranger-000123
    with engine.begin() as conn:
        done = conn.execute(T.strangers.update().where(T.strangers.c.id == number).values(name=name)).rowcount
        if not done:
            raise FacestreamError(f"{stranger}: no such stranger in this history store")
        return int(conn.execute(T.tracks.update().where(T.tracks.c.stranger_id == sid)
                                .values(identity=name)).rowcount)


def stranger_embeddings(store: HistoryStore, stranger: str,
                        most_tracks: int = 10) -> tuple[np.ndarray, list[str], str]:
    """The stored best embeddings of a stranger's ``most_tracks`` most embedded tracks, for enrolling them:
    rows (n, dim) on the model's scale, one source label per row, and the model that made them."""
    from sqlalchemy import desc, select

    sid = stranger_id(stranger_number(stranger))
    t = T.tracks.c
    query = (select(t.id, t.model).where(t.stranger_id == sid)
             .order_by(desc(t.faces), desc(t.detector_score), t.id).limit(most_tracks))
    with store.engine.connect() as conn:
        found = [(int(r[0]), str(r[1])) for r in conn.execute(query)]
    rows, labels = [], []
    for i, _ in found:
        got = store.embeddings(i)
        if got is not None:
            rows.append(got[1])
            labels += [f"history:{sid}:track-{i}"] * len(got[1])
    if not rows:
        raise FacestreamError(f"{stranger}: no tracks of this stranger in the history store")
    return np.concatenate(rows).astype(np.float32), labels, found[0][1]
