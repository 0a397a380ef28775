"""A ZeroMQ SUB client that validates events, counts what it missed, and says why nothing comes.

libzmq retries a refused or failed handshake quietly forever, so a subscriber with the wrong keys
used to print only "0 events". A socket monitor reports each handshake's outcome: a refusal is
known at once (``refused``), and a publisher that never answers is told apart from one that does
(``silence``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import zmq
from pydantic import ValidationError
from zmq.utils.monitor import recv_monitor_message

from stream.errors import FacestreamError
from stream.events.curve import client_options
from stream.events.schema import Event

log = logging.getLogger(__name__)

_WATCHED = (zmq.EVENT_CONNECTED | zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_HANDSHAKE_SUCCEEDED
            | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
            | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)


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
        self._curve = bool(curve)
        self.connect = connect
        self._monitor = self._sock.get_monitor_socket(_WATCHED)  # before connect: its first events count
        self.refused: str | None = None  # why the publisher's end refused the handshake, once it has
        self.handshakes = 0  # handshakes completed (a publisher that restarts is greeted again)
        self._tcp_connected = False
        self._retries = 0
        # Each topic once: the publisher counts a repeated one twice but sees one unsubscribe at the end.
        for topic in dict.fromkeys(topics or ("",)):
            self._sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
        try:
            self._sock.connect(connect)
        except zmq.ZMQError as exc:
            self._close_monitor()
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
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        while True:
            left_ms = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            ready = dict(poller.poll(left_ms))
            if self._monitor in ready:
                self._watch()
            if self._sock not in ready:
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                continue
            parts = self._sock.recv_multipart()
            event = self._parse(parts)
            if event is not None:
                self._track_seq(event.seq, event.origin)
                self.received += 1
                return event

    def _watch(self) -> None:
        """Take the monitor's pending events: what became of the connection and its handshakes."""
        while self._monitor.poll(0):
            kind = recv_monitor_message(self._monitor)["event"]
            if kind == zmq.EVENT_CONNECTED:
                self._tcp_connected = True
            elif kind == zmq.EVENT_CONNECT_RETRIED:
                self._retries += 1
            elif kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.handshakes += 1
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                self.refused = "the publisher refused this subscriber's key (its .key is not in the publisher's " \
                               "client folder)"
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                self.refused = ("the publisher is not CURVE-secured: leave out --server-key and --client-key"
                                if self._curve else "the publisher is CURVE-secured: give --server-key and "
                                                    "--client-key")
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
                self.refused = ("the CURVE handshake failed: is --server-key the publisher's public key, and is "
                                "the publisher CURVE-secured?"
                                if self._curve else "the ZeroMQ handshake failed (a CURVE-secured publisher? "
                                                    "give --server-key and --client-key)")

    def silence(self) -> str | None:
        """Why nothing may have come, when no handshake ever succeeded; None once one has."""
        self._watch()
        if self.refused:
            return self.refused
        if self.handshakes:
            return None
        if self._tcp_connected:
            return "something accepted the connection but never completed a ZeroMQ handshake"
        return "no publisher is listening there"

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

    def _close_monitor(self) -> None:
        if not self._monitor.closed:
            self._sock.disable_monitor()
            self._monitor.close(0)

    def close(self) -> None:
        if not self._sock.closed:
            self._close_monitor()
            self._sock.close()
