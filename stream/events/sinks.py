"""Where events go: the sink interface, the JSON-lines file, and a base for sinks that may block.

Every sink has ``write`` (never blocks the pipeline for long), ``close`` and ``stats()``: what it
delivered, dropped and still holds. The publisher adds each sink's counters to the run's totals,
its heartbeats and its metrics, so no sink's losses are only in a log line.

A sink whose delivery may block (a network peer that is slow or down) derives from
``QueuedSink``: ``write`` puts the event in a bounded queue and returns; one thread of the sink
delivers the queue in order. A full queue drops its oldest event (the newest are what a receiver
most needs), counted; what is still queued when the sink closes after its drain time is counted
dropped too, so every written event ends in exactly one of ``delivered`` and ``dropped``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from stream.errors import FacestreamError
from stream.events.schema import Event

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SinkStats:
    delivered: int = 0  # reached the sink's consumer (written, sent, acknowledged: the sink says which)
    dropped: int = 0  # lost, and counted as lost
    queued: int = 0  # written but not yet delivered or dropped (a gauge, not a total)
    extra: dict[str, int] = field(default_factory=dict)  # the sink's own totals (e.g. ZeroMQ's "unheard")

    def as_dict(self) -> dict[str, int]:
        return {"delivered": self.delivered, "dropped": self.dropped, "queued": self.queued, **self.extra}


class EventSink(Protocol):
    """``write`` takes one event (never waits long for a consumer), ``close`` once at the end,
    ``stats`` at any time. A sink may also have ``service()``, which the publisher calls with each
    heartbeat for upkeep while no event goes out (ZeroMQ applies (un)subscriptions there)."""

    def write(self, event: Event) -> None: ...

    def close(self) -> None: ...

    def stats(self) -> SinkStats: ...


class JsonlSink:
    """Appends one JSON object per line and flushes each line, so an accepted event survives a crash."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives with the sink
        except OSError as exc:
            raise FacestreamError(f"{self.path}: cannot write events ({exc.strerror})") from None
        self.written = 0

    def write(self, event: Event) -> None:
        self._file.write(event.to_json() + "\n")
        self.written += 1

    def stats(self) -> SinkStats:
        return SinkStats(delivered=self.written)

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


class QueuedSink:
    """A bounded queue and one delivering thread, for a sink whose delivery may block.

    A subclass implements ``deliver(event) -> bool`` (True: delivered, False: given up on, counted
    dropped). It may retry inside; while it waits between tries it should call ``wait(seconds)``,
    which returns True once the sink is closing and its drain time is over (time to give up).
    """

    def __init__(self, name: str, queue: int = 1000, drain_s: float = 5.0) -> None:
        self.name = name
        self.max_queued = queue
        self.drain_s = drain_s
        self.delivered = 0
        self.dropped = 0
        self._queue: deque[Event] = deque()
        self._busy = 0  # 1 while the thread holds an event taken off the queue
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._deadline = float("inf")  # monotonic time the drain at close ends
        self._thread = threading.Thread(target=self._run, name=f"sink-{name}", daemon=True)
        self._thread.start()

    def deliver(self, event: Event) -> bool:
        raise NotImplementedError

    # -- the pipeline's side ---------------------------------------------------------------------
    def write(self, event: Event) -> None:
        with self._cond:
            if self._closing.is_set():
                self.dropped += 1
                return
            if len(self._queue) >= self.max_queued:  # the consumer is slow or away: lose the oldest
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(event)
            self._cond.notify()

    def stats(self) -> SinkStats:
        with self._cond:
            return SinkStats(self.delivered, self.dropped, len(self._queue) + self._busy)

    def close(self) -> None:
        """Let the queue drain for up to ``drain_s``, then stop; what is left is counted dropped."""
        with self._cond:
            self._deadline = time.monotonic() + self.drain_s
            self._closing.set()
            self._cond.notify_all()
        self._thread.join(self.drain_s + 1.0)
        with self._cond:
            left = len(self._queue) + self._busy
            self.dropped += left
            self._queue.clear()
            self._busy = 0
        log.log(logging.WARNING if self.dropped else logging.INFO, "%s: %d event(s) delivered, %d dropped",
                self.name, self.delivered, self.dropped)

    # -- the sink's thread -----------------------------------------------------------------------
    def wait(self, seconds: float) -> bool:
        """Pause up to ``seconds`` (e.g. between tries); True once closing and the drain time is over."""
        end = time.monotonic() + seconds
        if not self._closing.wait(seconds):
            return False
        # Closing: pause on until the pause ends or the drain time is over, whichever comes first.
        remaining = min(end, self._deadline) - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
        return time.monotonic() >= self._deadline

    def giving_up(self) -> bool:
        """Whether the sink is closing and its drain time is over (a deliver loop should stop)."""
        return self._closing.is_set() and time.monotonic() >= self._deadline

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    if self._closing.is_set():
                        return
                    self._cond.wait()
                if self._closing.is_set() and time.monotonic() >= self._deadline:
                    return  # close counts what is left
                event = self._queue.popleft()
                self._busy = 1
            try:
                ok = self.deliver(event)
            except Exception:  # a bug in a sink must not end its thread silently with events queued
                log.exception("%s: delivering event %s failed", self.name, event.seq)
                ok = False
            with self._cond:
                if self._busy:  # else close already counted it
                    self._busy = 0
                    if ok:
                        self.delivered += 1
                    else:
                        self.dropped += 1
