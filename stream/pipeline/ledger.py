"""What a run knows that must outlive any one worker: counts, positions and slot ownership.

Every worker can be SIGKILLed and restarted at any moment. What it kept in its own memory is then
gone, so the figures a run reports (event ``seq``, frames, totals, restarts) and the positions a
restarted worker resumes from (the next frame of a file, the next track id) live here, in shared
memory created by the supervisor. Each counter has one writing process at a time, so plain
shared words need no locks (a lock held by a killed process would never be released).

The track lifecycle, which needs more than counters to rebuild, goes to an append-only journal
of events (``TrackJournal``): a restarted publisher replays it to end the tracks its predecessor
left open, and to keep the run's list of named tracks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: ``SourceLedger.holders`` value of a slot that is free (its token is in the reader's channel).
RELEASED = -2

_RUN_INTS = ("seq", "events", "faces", "embedded", "tracks", "batches", "batch_crops")
#: Each event sink's totals over every publisher's lifetime, by the sink's place in the registry's
#: order (the same for every publisher of a run): ``"<i>:<total>"``. Gauges (queued) are not kept.
SINK_TOTALS = ("delivered", "dropped", "unheard", "published", "acked")
MAX_SINKS = 32
_RUN_FLOATS = ("first_capture", "last_done", "ms_read", "ms_detect", "ms_embed", "ms_publish", "timed_frames")
_SOURCE_INTS = (
    "read_next",  # reader: index of the next frame to read (a restarted reader resumes there)
    "read_skipped",  # reader: frames a resumed file could not be positioned on
    "live_dropped",  # reader: live frames dropped (newest-frame policy), kept current
    "corrupt",  # reader: live frames that did not decode and were skipped, kept current
    "skipped",  # reader: frames passed over for the processing rate (sources.fps) or held back as still
    # (a live source the detect worker found idle: stream/pipeline/still.py), kept current
    "idle",  # detect worker: 1 while the source's last frame was still with no track open, else 0
    "sent",  # reader of a live source: frames sent into the pipeline (the next FrameMsg.seq)
    "end_read", "end_detect", "end_embed", "end_publish",  # 1 once that stage passed the source's end on
    "frames",  # publisher: frames published
    "last_frame",  # publisher: index of the last frame published (-1: none yet)
    "last_seq",  # publisher: FrameMsg.seq of the last frame published (-1: none yet)
    "lost",  # publisher: frames sent by the reader that never reached it (lost with a killed worker)
    "duplicates",  # publisher: frames that reached it twice (a reader killed just after sending)
    "next_track_id",  # publisher: last published track id of the source
    "online",  # reader: 1 while the source gives frames (a live one: connected), 0 while it is down
    "reconnects",  # reader: a live source's connection attempts after its first
)
_SOURCE_FLOATS = (
    "offline_since",  # reader: wall-clock time a live source went down (0: it is up)
    "frame_step",  # reader, once open: source frames per processed frame (1: every frame), for the
    # workers that convert settings counted in the source's frames (stream/sources/rate.py frame_step)
)
ERROR_BYTES = 160  # a source's last error, UTF-8, NUL-padded: enough for one line naming the problem
END_MARKERS = {"reader": "end_read", "detect": "end_detect", "embed": "end_embed", "publish": "end_publish"}


class Counters:
    """Named int64 and float64 words in shared memory (``RawArray``: no lock, one writer at a time)."""

    def __init__(self, ctx: Any, ints: Iterable[str], floats: Iterable[str] = (), initial: dict | None = None) -> None:
        ints, floats = tuple(ints), tuple(floats)
        self._slots = {name: (0, i) for i, name in enumerate(ints)} | {name: (1, i) for i, name in enumerate(floats)}
        self._arrays = (ctx.RawArray("q", max(len(ints), 1)), ctx.RawArray("d", max(len(floats), 1)))
        for name, value in (initial or {}).items():
            self[name] = value

    def __getitem__(self, name: str) -> Any:
        kind, i = self._slots[name]
        return self._arrays[kind][i]

    def __setitem__(self, name: str, value: float) -> None:
        kind, i = self._slots[name]
        self._arrays[kind][i] = value

    def add(self, name: str, amount: float = 1) -> Any:
        """Add and return the new value (only the counter's one writer may call this)."""
        kind, i = self._slots[name]
        self._arrays[kind][i] += amount
        return self._arrays[kind][i]

    def as_dict(self) -> dict[str, Any]:
        return {name: self[name] for name in self._slots}


@dataclass
class SourceLedger:
    counters: Counters
    holders: Any  # RawArray('q', slots): frame index held by each slot, or RELEASED
    error_text: Any = None  # RawArray('c', ERROR_BYTES): the reader's last error about the source

    def set_last_error(self, text: str | None) -> None:
        """Reader only. A reader may see a half-written text for a moment: it is for display only."""
        data = (text or "").encode("utf-8", "replace")[: ERROR_BYTES - 1]
        self.error_text.raw = data.ljust(ERROR_BYTES, b"\0")

    def last_error(self) -> str | None:
        if self.error_text is None:
            return None
        return self.error_text.value.decode("utf-8", "ignore") or None  # a cut may split a character

    def __getitem__(self, name: str) -> Any:
        return self.counters[name]

    def __setitem__(self, name: str, value: float) -> None:
        self.counters[name] = value

    def add(self, name: str, amount: float = 1) -> Any:
        return self.counters.add(name, amount)

    def ended_before(self, stage: str) -> bool:
        """Whether the stage upstream of ``stage`` has passed this source's end on."""
        upstream = {"detect": "reader", "embed": "detect", "publish": "embed"}[stage]
        return bool(self[END_MARKERS[upstream]])

    def mark_ended(self, stage: str) -> None:
        self[END_MARKERS[stage]] = 1


@dataclass
class RunLedger:
    run: Counters
    sources: dict[str, SourceLedger]
    workers: list[str]  # process names by heartbeat index
    incarnations: Any  # RawArray('q'): starts of each process (0 before its first start)
    journal_path: Path
    sinks: Counters | None = None  # SINK_TOTALS per event sink

    @classmethod
    def create(cls, ctx: Any, slots: dict[str, int], workers: list[str], journal_path: Path) -> RunLedger:
        sources = {}
        for name, n in slots.items():
            holders = ctx.RawArray("q", n)
            holders[:] = [RELEASED] * n
            counters = Counters(ctx, _SOURCE_INTS, _SOURCE_FLOATS, initial={"last_frame": -1, "last_seq": -1})
            sources[name] = SourceLedger(counters, holders, ctx.RawArray("c", ERROR_BYTES))
        sinks = Counters(ctx, [f"{i}:{total}" for i in range(MAX_SINKS) for total in SINK_TOTALS])
        return cls(Counters(ctx, _RUN_INTS, _RUN_FLOATS), sources, list(workers), ctx.RawArray("q", len(workers)),
                   Path(journal_path), sinks)

    def restarts(self) -> dict[str, int]:
        """Restarts per process so far (starts after the first)."""
        return {name: max(int(self.incarnations[i]) - 1, 0) for i, name in enumerate(self.workers)}


@dataclass
class JournalState:
    """What a publisher rebuilds from the journal."""

    open_tracks: dict[tuple[str, int], dict] = field(default_factory=dict)  # last event of each open track
    named: dict[tuple[str, int], list[str]] = field(default_factory=dict)  # identities each track was given
    lost: dict[str, list[list[int]]] = field(default_factory=dict)  # per source: [first, last] frame ranges


class TrackJournal:
    """Append-only JSON lines: track events and lost-frame ranges, one ``write`` each.

    A line is written before the event goes out, so a restarted publisher ends every track a
    consumer may have seen start. A kill mid-line leaves a torn last line, which replay skips.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def append(self, record: dict) -> None:
        os.write(self._fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())

    def close(self) -> None:
        os.close(self._fd)

    @staticmethod
    def replay(path: Path) -> JournalState:
        state = JournalState()
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            return state
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # the line a killed publisher was writing
            if "lost" in record:
                state.lost.setdefault(record["source"], []).append(record["lost"])
                continue
            key = (record["source"], int(record["track_id"]))
            if record["type"] == "track_ended":
                state.open_tracks.pop(key, None)
            else:
                state.open_tracks[key] = record
            name = record.get("identity")
            if record["type"] == "identity" and name:
                names = state.named.setdefault(key, [])
                if not names or names[-1] != name:
                    names.append(name)
        return state


class SourceEnds:
    """Which of a stage's sources are still open, and the ends a killed predecessor swallowed.

    A source's end travels down the pipeline as an ``EndOfSource`` message; each stage marks the
    ledger once it has passed it on. A worker killed between taking that message and passing it on
    would leave every later stage waiting forever, so when a stage is idle it checks: upstream
    has marked the end, and nothing is left in the inbox, so the message was lost with the worker
    before it, and the stage makes it again.
    """

    def __init__(self, ledger: RunLedger, stage: str, sources: Iterable[str]) -> None:
        self.stage = stage
        self.ledgers = {name: ledger.sources[name] for name in sources}
        self.open = {name for name, led in self.ledgers.items() if not led[END_MARKERS[stage]]}

    def passed(self, source: str) -> None:
        """Call after the source's end has been passed downstream."""
        self.open.discard(source)
        self.ledgers[source].mark_ended(self.stage)

    def pass_on(self, msg: Any, forward: Any) -> None:
        """``forward(msg)`` and mark the end passed, once per source: a second end (from a worker
        upstream killed on its way out) goes no further."""
        if msg.source in self.open:
            forward(msg)
            self.passed(msg.source)

    def swallowed(self, inbox_empty: Any) -> list:
        """Ends to make again; ``inbox_empty()`` is asked after the markers are read (the order matters:
        upstream sends the message before it sets the marker)."""
        from stream.pipeline.messages import EndOfSource

        ended = [name for name in sorted(self.open) if self.ledgers[name].ended_before(self.stage)]
        if not ended or not inbox_empty():
            return []
        return [EndOfSource(name, int(self.ledgers[name]["read_next"]), int(self.ledgers[name]["live_dropped"]),
                            None) for name in ended]
