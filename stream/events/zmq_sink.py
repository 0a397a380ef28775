"""The ZeroMQ sink, an XPUB: each event as ``[topic, json]``; never blocks the pipeline, and counts what it lost.

Back-pressure policy: all or nothing, and every loss counted. The socket is an XPUB with
``ZMQ_XPUB_NODROP`` and every send is non-blocking. Each subscriber has its own send queue of
``sndhwm`` messages (plus what the kernel's socket buffers and its own receive queue hold). When the
queue of any subscriber whose subscription matches the event is full, libzmq refuses the send with
``EAGAIN`` and the event goes to *nobody*, not to the subscribers that kept up: it is counted in
``dropped``. So one stalled subscriber makes every subscriber lose the same events while it stalls;
each of them sees those losses as gaps in ``seq`` (`facestream subscribe` counts them), and the sum
of the gaps a subscriber sees equals ``dropped`` for the time it was subscribed.

A plain PUB (and XPUB without NODROP) instead drops per subscriber, silently, so nothing on the
publisher's side can count the losses; that is why it is not used.

Counters, each event in exactly one:

- ``sent``: accepted while at least one subscription matched its topic (queued for each of those;
  what is still queued for a subscriber when it disconnects is lost with it, uncounted);
- ``dropped``: refused at a subscriber's high-water mark (delivered to nobody);
- ``unheard``: no subscription matched (nobody listening; not a consumer's fault).

The subscription state comes from the messages XPUB hands up (``\\x01topic`` subscribe, ``\\x00topic``
unsubscribe; ``XPUB_VERBOSER`` so every one of them arrives, not only the first and last per topic).
``publish`` reads them before each send; an owner that may go quiet should also call ``poll()`` now
and then (e.g. with its heartbeats), so that joins and leaves are applied and the queue of
notifications does not grow while no event is sent. ``subscribers`` counts live subscriptions, one
per subscription message: a subscriber with two topics counts twice (simple, and enough to tell "no
one" from "someone"). A SUB that subscribes the same topic twice is counted twice but unsubscribed
once when it leaves (`EventSubscriber` subscribes each topic once). An event sent in the instant a
subscriber joins may be counted ``unheard`` though it reached it.

Security: with ``server_secret_key_file`` and ``allowed_clients_dir`` the socket is a CURVE server
(see `stream.events.curve`): traffic is encrypted and only the clients whose public keys are in the
folder can subscribe; a plaintext or unlisted peer is refused during the handshake, before it can
subscribe, so it never shows in the counters. Without keys, events are plaintext: binding anything
but loopback then logs a warning.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import zmq

from stream.errors import FacestreamError
from stream.events.curve import CurveServer, connect_client_options, is_loopback
from stream.events.schema import Event
from stream.events.sinks import SinkStats

log = logging.getLogger(__name__)

_SUBSCRIBE, _UNSUBSCRIBE = 1, 0


class ZmqSink:
    def __init__(self, endpoint: str, sndhwm: int = 1000, linger_ms: int = 200,
                 server_secret_key_file: Path | None = None, allowed_clients_dir: Path | None = None,
                 connect: bool = False, connect_keys: Path | None = None) -> None:
        self.endpoint = endpoint
        self._ctx = zmq.Context.instance()
        # Keys first: a bad key file fails before anything is bound.
        client = connect_client_options(connect_keys) if connect_keys is not None else {}
        self._curve = CurveServer.start(self._ctx, server_secret_key_file, allowed_clients_dir)
        self._sock = self._ctx.socket(zmq.XPUB)
        for option, value in client.items():  # a CURVE client of a site's proxy
            self._sock.setsockopt(option, value)
        if self._curve is not None:
            self._curve.apply(self._sock)  # before bind: CURVE options are read when a peer connects
        elif not client and not is_loopback(endpoint):
            log.warning("%s: events are plaintext and unauthenticated (set output.publish_server_key "
                        "and output.publish_client_keys, or --publish-key/--publish-clients)", endpoint)
        self._sock.setsockopt(zmq.SNDHWM, sndhwm)
        self._sock.setsockopt(zmq.LINGER, linger_ms)
        # NODROP: at the HWM the send fails with EAGAIN (which we count) instead of a silent drop.
        self._sock.setsockopt(zmq.XPUB_NODROP, 1)
        # Every (un)subscription, so the count follows each subscriber, not each distinct topic.
        self._sock.setsockopt(zmq.XPUB_VERBOSER, 1)
        try:
            # connect: a site's proxy (XSUB) binds, and every shard's publisher connects to it
            if connect:
                self._sock.connect(endpoint)
            else:
                self._sock.bind(endpoint)
        except zmq.ZMQError as exc:
            self._sock.close(0)
            if self._curve is not None:
                self._curve.stop()
            verb = "connect" if connect else "bind"
            raise FacestreamError(f"{endpoint}: cannot {verb} the event publisher ({exc.strerror})") from None
        self.bound = endpoint if connect else self._sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.seq = 0
        self.sent = 0
        self.dropped = 0
        self.unheard = 0
        self._topics: Counter[bytes] = Counter()  # live subscriptions per topic prefix
        self._warned_seq = False
        log.info("publishing events on %s%s", self.bound, " (CURVE)" if self._curve is not None or client else "")

    @property
    def subscribers(self) -> int:
        """Live subscriptions (one per topic per subscriber)."""
        return sum(self._topics.values())

    def poll(self, timeout_s: float = 0.0) -> int:
        """Apply pending (un)subscriptions, waiting up to ``timeout_s`` for the first; returns how many."""
        if timeout_s > 0 and not self._sock.poll(int(timeout_s * 1000), zmq.POLLIN):
            return 0
        applied = 0
        while True:
            try:
                msg = self._sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return applied
            if not msg or msg[0] not in (_SUBSCRIBE, _UNSUBSCRIBE):
                continue  # only an XSUB peer can send anything else; events flow one way
            topic = msg[1:]
            if msg[0] == _SUBSCRIBE:
                self._topics[topic] += 1
            elif self._topics[topic] > 1:
                self._topics[topic] -= 1
            else:
                # Also an unsubscribe we never saw subscribed (libzmq passes those on): never below 0.
                self._topics.pop(topic, None)
            applied += 1

    service = poll  # for an owner that thinks of it as periodic upkeep

    def _heard(self, topic: bytes) -> bool:
        # The same prefix match XPUB does; few distinct topics, so a scan is cheap.
        return any(topic.startswith(prefix) for prefix in self._topics)

    def publish(self, event: Event) -> bool:
        """Send one event; False only when a subscriber's queue was full (counted in ``dropped``)."""
        # The caller may own seq (run-wide, across restarts); 0/None (the schema's default) means unset.
        if not event.seq:
            self.seq += 1
            event.seq = self.seq
        else:
            if event.seq <= self.seq and not self._warned_seq:
                self._warned_seq = True
                log.warning("event seq %d is not above the last one (%d); consumers will see a restart",
                            event.seq, self.seq)
            self.seq = max(self.seq, event.seq)  # our own numbering never goes back or repeats
        self.poll()
        topic = event.topic.encode()
        heard = self._heard(topic)
        try:
            # With NODROP only the first part can fail (libzmq checks the HWM of every matching
            # subscriber before it; a queue counts whole messages), so a message is never half sent.
            self._sock.send_multipart([topic, event.to_json().encode()], flags=zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
            return False
        if heard:
            self.sent += 1
        else:
            # Sent anyway: a subscriber whose subscription libzmq applied during this send gets it.
            self.unheard += 1
        return True

    write = publish  # the EventSink interface

    def stats(self) -> SinkStats:
        # Never queued on our side: a send is accepted by libzmq (sent/unheard) or refused (dropped).
        return SinkStats(self.sent, self.dropped, 0, {"unheard": self.unheard})

    def close(self) -> None:
        if not self._sock.closed:
            log.info("zmq sink: %d sent, %d dropped at the high-water mark, %d with no subscriber",
                     self.sent, self.dropped, self.unheard)
            self._sock.close()
        if self._curve is not None:
            self._curve.stop()
            self._curve = None
