"""Events from the publisher to the web view: a ZeroMQ PUB over a local ipc socket, never blocking.

The publisher's side (``WebFeedSink``) is one more event sink: a send that finds the queue full
is dropped, because the web view's timeline is a view, not a consumer of record (that is the
``--publish`` socket, which counts every loss). The web side (``EventFeed``) receives in a
thread, keeps the recent events and each source's last heartbeat, and hands every event to the
page's listeners (asyncio queues), each of which drops its own oldest event when it falls behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections import deque
from typing import Any

import zmq

from stream.events.schema import Event
from stream.events.sinks import SinkStats

log = logging.getLogger(__name__)

RECENT_EVENTS = 200
LISTENER_QUEUE = 500


class WebFeedSink:
    def __init__(self, endpoint: str, sndhwm: int = 1000) -> None:
        self._sock = zmq.Context.instance().socket(zmq.PUB)
        self._sock.setsockopt(zmq.SNDHWM, sndhwm)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(endpoint)
        self.sent = 0
        self.dropped = 0

    def write(self, event: Event) -> None:
        try:
            self._sock.send_string(event.to_json(), zmq.NOBLOCK)
            self.sent += 1
        except zmq.Again:
            self.dropped += 1

    def stats(self) -> SinkStats:
        return SinkStats(self.sent, self.dropped)

    def close(self) -> None:
        self._sock.close(0)


class EventFeed:
    def __init__(self, endpoint: str | None) -> None:
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_EVENTS)
        self.heartbeats: dict[str, dict[str, Any]] = {}  # per source: the last heartbeat's stats
        self._listeners: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._endpoint = endpoint
        if endpoint:
            self._thread = threading.Thread(target=self._receive, name="web-feed", daemon=True)
            self._thread.start()

    def listen(self) -> asyncio.Queue:
        """A queue of events for one page connection, fed from now on; ``forget`` it when done."""
        q: asyncio.Queue = asyncio.Queue(LISTENER_QUEUE)
        with self._lock:
            self._listeners.append((asyncio.get_running_loop(), q))
        return q

    def forget(self, q: asyncio.Queue) -> None:
        with self._lock:
            self._listeners = [(loop, x) for loop, x in self._listeners if x is not q]

    def add(self, event: dict[str, Any]) -> None:
        """Take one event (from the socket, or from the web view itself: a gallery change)."""
        if event.get("type") == "heartbeat":
            self.heartbeats[str(event.get("source"))] = event.get("stats") or {}
        else:
            self.recent.append(event)
        with self._lock:
            listeners = list(self._listeners)
        for loop, q in listeners:
            with contextlib.suppress(RuntimeError):  # that page's loop is closed: it is gone
                loop.call_soon_threadsafe(_offer, q, event)

    def _receive(self) -> None:
        sock = zmq.Context.instance().socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(self._endpoint)
        try:
            while not self._stop.is_set():
                if not sock.poll(200):
                    continue
                try:
                    self.add(json.loads(sock.recv_string()))
                except ValueError:
                    log.debug("web feed: a message that is not JSON; ignored")
        finally:
            sock.close(0)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)


def _offer(q: asyncio.Queue, event: dict[str, Any]) -> None:
    if q.full():  # a page that does not keep up loses its oldest events, not the newest
        q.get_nowait()
    q.put_nowait(event)
