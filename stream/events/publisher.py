"""ZeroMQ PUB: each event as ``[topic, json]``; never blocks the pipeline.

Back-pressure policy: the socket has a send high-water mark per subscriber. A subscriber that
falls behind loses messages beyond its HWM; others are unaffected (plain PUB semantics), and
every message carries a per-publisher ``seq`` so a consumer sees and counts its own gaps
(`facestream subscribe` reports them). Sends are non-blocking; if libzmq ever refuses one
(``zmq.Again``), the event is dropped and counted in ``dropped``.
"""

from __future__ import annotations

import logging

import zmq

from stream.errors import FacestreamError
from stream.events.schema import Event

log = logging.getLogger(__name__)


class EventPublisher:
    def __init__(self, endpoint: str, sndhwm: int = 1000, linger_ms: int = 200) -> None:
        self.endpoint = endpoint
        self._ctx = zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.PUB)
        self._sock.setsockopt(zmq.SNDHWM, sndhwm)
        self._sock.setsockopt(zmq.LINGER, linger_ms)
        try:
            self._sock.bind(endpoint)
        except zmq.ZMQError as exc:
            self._sock.close(0)
            raise FacestreamError(f"{endpoint}: cannot bind the event publisher ({exc.strerror})") from None
        self.bound = self._sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.seq = 0
        self.sent = 0
        self.dropped = 0
        log.info("publishing events on %s", self.bound)

    def publish(self, event: Event) -> bool:
        self.seq += 1
        event.seq = self.seq
        try:
            self._sock.send_multipart([event.topic.encode(), event.to_json().encode()], flags=zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
            return False
        self.sent += 1
        return True

    write = publish  # the EventSink interface

    def close(self) -> None:
        if not self._sock.closed:
            self._sock.close()
