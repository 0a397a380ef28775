"""Events over MQTT, the way home and building automation takes them (Home Assistant, Node-RED).

Topics, under ``output.mqtt_prefix`` (``facestream``):

- ``<prefix>/<source>/<type>``: every event as its JSON (QoS 1), e.g. ``facestream/door/identity``;
- ``<prefix>/<source>/present``: retained, who is in view now:
  ``{"identities": [...], "tracks": N, "ts": ...}``, published when it changes;
- ``<prefix>/status``: retained ``online`` once connected; ``offline`` when the run ends, or
  from the broker (the last will) when the connection dies without a goodbye.

The network runs in paho's own thread (``loop_start``) and ``write`` only queues, so the pipeline
never waits for the broker (paho already owns a thread and a queue, so this sink does not take
``QueuedSink``'s: a second queue in front of paho's would only add a hop). paho reconnects with a
capped backoff; what was written meanwhile waits in a queue of ``max_queued`` messages (the oldest
are dropped beyond that, and counted) and goes out, in order, as soon as the connection is back.
While connected, paho's own queue is capped at ``max_queued`` too (``max_queued_messages_set``), so
a broker that accepts the connection but stops acknowledging costs bounded memory as well.

Counters: ``published`` (handed to paho: on the wire or in its QoS 1 queue), ``acked`` (the broker
acknowledged it), ``dropped`` (lost to a full queue, or still waiting for a broker when the run
ended); each written message ends in ``published`` or ``dropped``.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from stream.errors import FacestreamError
from stream.events.schema import Event
from stream.events.sinks import SinkStats
from stream.sources.credentials import expand_env, mask_credentials, split_url

if TYPE_CHECKING:  # paho is imported when a sink is made, not with this module
    from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)

SCHEMES = {"mqtt": 1883, "mqtts": 8883}
_FLUSH_BATCH = 200  # on reconnect, messages moved to paho per hold of the lock (write() waits at most this long)


@dataclass(frozen=True)
class BrokerUrl:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None
    shown: str  # the URL with its password masked, for anything printed


def parse_broker_url(url: str) -> BrokerUrl:
    """``mqtt[s]://[user[:password]@]host[:port]``; ``${VAR}`` from the environment."""
    shown = mask_credentials(url)
    parts = split_url(url)
    if parts is None or parts.scheme not in SCHEMES:
        raise FacestreamError(f"--mqtt {shown}: expected mqtt://[user:password@]host[:port] (or mqtts://)")
    match = re.fullmatch(r"(\[[^\]]*\]|[^:]*)(?::(\d*))?", parts.host_port)
    host, port_text = (match.group(1).strip("[]"), match.group(2)) if match else ("", None)
    if not host:
        raise FacestreamError(f"--mqtt {shown}: no broker host")
    try:
        port = int(port_text) if port_text else SCHEMES[parts.scheme]
        if not 0 < port < 65536:
            raise ValueError
    except ValueError:
        raise FacestreamError(f"--mqtt {shown}: port must be 1-65535") from None
    user = password = None
    if parts.userinfo is not None:
        user, _, secret = parts.userinfo.partition(":")
        user = unquote(expand_env(user, f"--mqtt {shown} (user)"))
        password = unquote(expand_env(secret, f"--mqtt {shown} (password)")) if secret else None
    return BrokerUrl(host, port, parts.scheme == "mqtts", user or None, password, shown)


def topic_level(name: str) -> str:
    """``name`` as one topic level: '/' would add levels, and '+' or '#' make paho refuse the publish."""
    return re.sub(r"[/+#\x00]", "_", name) or "_"


class MqttSink:
    def __init__(self, url: str, prefix: str = "facestream", client_id: str | None = None, qos: int = 1,
                 max_queued: int = 10_000, reconnect_max_s: float = 30.0, keepalive_s: int = 15) -> None:
        import paho.mqtt.client as mqtt

        self.broker = parse_broker_url(url)
        self.prefix = prefix.rstrip("/")
        self.qos = qos
        self.status_topic = f"{self.prefix}/status"
        self.published = 0
        self.acked = 0
        self.dropped = 0
        self.connects = 0
        self._present: dict[str, dict[int, str | None]] = {}  # per source: open track -> decided name
        self._last_present: dict[str, str] = {}
        self._connected = threading.Event()
        # While there is no connection, messages wait here and go out when on_connect runs: paho's
        # own queue loses what is published in the moment between a reconnect and its CONNACK.
        self._lock = threading.Lock()
        self._pending: deque[tuple[str, str, bool]] = deque()
        self.max_queued = max_queued
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "",
                                   clean_session=True)
        if self.broker.username:
            self._client.username_pw_set(self.broker.username, self.broker.password)
        if self.broker.tls:
            self._client.tls_set_context(ssl.create_default_context())  # the system's CAs
        self._client.will_set(self.status_topic, "offline", qos=1, retain=True)
        # Room for a full pending queue flushed on reconnect on top of what was in flight.
        self._client.max_queued_messages_set(2 * max_queued)
        self._client.reconnect_delay_set(min_delay=1, max_delay=int(max(reconnect_max_s, 1)))
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_publish = self._on_publish
        self._warned: set[str] = set()
        try:
            self._client.connect_async(self.broker.host, self.broker.port, keepalive=keepalive_s)
        except (OSError, ValueError) as exc:
            raise FacestreamError(f"--mqtt {self.broker.shown}: {exc}") from None
        self._client.loop_start()

    def _warn_once(self, key: str, msg: str, *args: Any) -> None:
        # paho retries every few seconds for as long as the broker is away: one line, not one per try
        if key not in self._warned:
            self._warned.add(key)
            log.warning(msg, *args)

    # -- paho's thread ---------------------------------------------------------------------------
    def _on_connect(self, client: Client, userdata: Any, flags: ConnectFlags, reason_code: ReasonCode,
                    properties: Properties | None) -> None:
        if reason_code.is_failure:
            self._warn_once(f"refused {reason_code}", "mqtt %s: refused (%s); retrying", self.broker.shown,
                            reason_code)
            return
        self.connects += 1
        if self.connects > 1:
            log.warning("mqtt %s: reconnected", self.broker.shown)
        else:
            log.info("mqtt %s: connected", self.broker.shown)
        self._warned.clear()  # a later outage is worth a line again
        self._publish(self.status_topic, "online", retain=True)
        while True:  # in batches, so write() is never held up for the whole backlog
            with self._lock:
                for _ in range(min(_FLUSH_BATCH, len(self._pending))):
                    self._publish(*self._pending.popleft())
                if not self._pending:
                    self._connected.set()  # under the lock: no write can slip in ahead of the backlog
                    return

    def _on_connect_fail(self, client: Client, userdata: Any) -> None:
        self._warn_once("unreachable", "mqtt %s: broker unreachable; retrying (events are queued meanwhile)",
                        self.broker.shown)

    def _on_disconnect(self, client: Client, userdata: Any, flags: DisconnectFlags, reason_code: ReasonCode,
                       properties: Properties | None) -> None:
        with self._lock:
            self._connected.clear()
        if reason_code != 0:
            self._warn_once("lost", "mqtt %s: connection lost (%s); reconnecting", self.broker.shown, reason_code)

    def _on_publish(self, client: Client, userdata: Any, mid: int, reason_code: ReasonCode,
                    properties: Properties | None) -> None:
        self.acked += 1  # only paho's thread counts here (and it holds paho's lock: take no other)

    # -- the pipeline's side ---------------------------------------------------------------------
    def write(self, event: Event) -> None:
        source = topic_level(event.source)
        self._send(f"{self.prefix}/{source}/{event.type}", event.to_json())
        if event.type in ("track_started", "identity", "track_ended"):
            self._update_presence(source, event)

    def _update_presence(self, source: str, event: Event) -> None:
        tracks = self._present.setdefault(source, {})
        track = int(event.track_id or 0)
        if event.type == "track_ended":
            tracks.pop(track, None)
        elif event.type == "identity":
            tracks[track] = event.identity  # None again when a name was taken back
        else:
            tracks.setdefault(track, None)  # unknown until an identity event names it
        names = sorted({n for n in tracks.values() if n})
        key = json.dumps([names, len(tracks)])
        if self._last_present.get(source) == key:
            return
        self._last_present[source] = key
        self._send(f"{self.prefix}/{source}/present",
                   json.dumps({"identities": names, "tracks": len(tracks), "ts": event.ts}), retain=True)

    def _send(self, topic: str, payload: str, retain: bool = False) -> None:
        with self._lock:
            if self._connected.is_set():
                # paho queues it and keeps it (QoS 1) across a connection lost from here on
                self._publish(topic, payload, retain)
                return
            if len(self._pending) >= self.max_queued:  # the broker has been away a long time
                self._pending.popleft()
                self.dropped += 1
            self._pending.append((topic, payload, retain))

    def _publish(self, topic: str, payload: str, retain: bool = False) -> None:
        import paho.mqtt.client as mqtt

        info = self._client.publish(topic, payload, qos=self.qos, retain=retain)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:  # connected, but the broker stopped acknowledging
            self.dropped += 1
        else:  # SUCCESS, or NO_CONN with QoS 1: kept by paho and sent on reconnect
            self.published += 1

    def stats(self) -> SinkStats:
        """Messages (events, presence, status): delivered once the broker acknowledged them."""
        with self._lock:
            waiting = len(self._pending)
        in_flight = max(self.published - self.acked, 0)  # with paho: on the wire or in its QoS 1 queue
        return SinkStats(self.acked, self.dropped, waiting + in_flight,
                         {"published": self.published, "acked": self.acked})

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def close(self, timeout_s: float = 2.0) -> None:
        """Say goodbye (retained "offline"), let the queue drain a moment, and stop paho's thread."""
        if self._connected.is_set():
            # QoS 1 messages are acknowledged in order: once "offline" is, the events before it were
            info = self._client.publish(self.status_topic, "offline", qos=1, retain=True)
            self.published += 1
            deadline = time.monotonic() + timeout_s
            while not info.is_published() and time.monotonic() < deadline and self._connected.is_set():
                time.sleep(0.02)
        self._client.disconnect()
        self._client.loop_stop()
        with self._lock:
            self.dropped += len(self._pending)  # never reached a broker
            self._pending.clear()
        # a loss is worth a line at the default level; a clean run says it only with --verbose
        log.log(logging.WARNING if self.dropped else logging.INFO,
                "mqtt %s: %d message(s) published (%d acknowledged by the broker), %d dropped", self.broker.shown,
                self.published, self.acked, self.dropped)
