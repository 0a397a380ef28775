"""A ZeroMQ SUB client that validates events and counts what it missed."""

from __future__ import annotations

import logging
from pathlib import Path

import zmq
from pydantic import ValidationError

from stream.errors import FacestreamError
from stream.events.curve import client_options
from stream.events.schema import Event

log = logging.getLogger(__name__)


class EventSubscriber:
    def __init__(self, connect: str, topics: tuple[str, ...] = ("",), rcvhwm: int = 10_000,
                 server_key_file: Path | None = None, client_key_file: Path | None = None) -> None:
        # Keys first, so a bad key file fails before a socket exists. With a wrong key the handshake
        # fails and libzmq retries quietly: such a subscriber just receives nothing.
        curve = client_options(server_key_file, client_key_file)
        self._ctx = zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.SUB)
        for option, value in curve.items():
            self._sock.setsockopt(option, value)
        self._sock.setsockopt(zmq.RCVHWM, rcvhwm)
        self._sock.setsockopt(zmq.LINGER, 0)
        # Each topic once: the publisher counts a repeated one twice but sees one unsubscribe at the end.
        for topic in dict.fromkeys(topics or ("",)):
            self._sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
        try:
            self._sock.connect(connect)
        except zmq.ZMQError as exc:
            self._sock.close(0)
            raise FacestreamError(f"{connect}: cannot connect ({exc.strerror})") from None
        self.received = 0
        self.gaps = 0  # messages missed, from seq jumps
        self.invalid = 0
        self.restarts = 0
        self._last_seq: dict[str | None, int] = {}  # per origin: each shard of a site numbers its own
        # seq counts every message of the publisher: with a topic filter, jumps are expected.
        self._count_gaps = all(t == "" for t in topics or ("",))

    def receive(self, timeout_s: float | None = None) -> Event | None:
        """The next valid event, or None when ``timeout_s`` passes without one."""
        timeout_ms = None if timeout_s is None else int(timeout_s * 1000)
        while True:
            if not self._sock.poll(timeout_ms):
                return None
            parts = self._sock.recv_multipart()
            event = self._parse(parts)
            if event is not None:
                self._track_seq(event.seq, event.origin)
                self.received += 1
                return event

    def _parse(self, parts: list[bytes]) -> Event | None:
        if len(parts) != 2:
            self.invalid += 1
            log.warning("ignoring a %d-part message (expected [topic, json])", len(parts))
            return None
        try:
            return Event.from_json(parts[1])
        except ValidationError as exc:
            self.invalid += 1
            log.warning("ignoring an invalid event on %r: %s", parts[0][:64], exc.errors()[0]["msg"])
            return None

    def _track_seq(self, seq: int, origin: str | None = None) -> None:
        last = self._last_seq.get(origin)
        where = f" of {origin}" if origin else ""
        if last is not None and self._count_gaps:
            if seq <= last:
                self.restarts += 1
                log.warning("publisher%s restarted (seq %d after %d)", where, seq, last)
            elif seq > last + 1:
                missed = seq - last - 1
                self.gaps += missed
                log.warning("missed %d event(s)%s (seq %d -> %d)", missed, where, last, seq)
        self._last_seq[origin] = seq

    def close(self) -> None:
        if not self._sock.closed:
            self._sock.close()
