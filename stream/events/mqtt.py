"""Events over MQTT, the way home and building automation takes them (Home Assistant, Node-RED).

Topics, under ``output.mqtt_prefix`` (``facestream``):

- ``<prefix>/<source>/<type>``: every event as its JSON (QoS 1), e.g. ``facestream/door/identity``;
- ``<prefix>/<source>/present``: retained, who is in view now:
  ``{"identities": [...], "tracks": N, "ts": ...}``, published when it changes;
- ``<prefix>/status``: retained ``online`` once connected; ``offline`` when the run ends, or
  from the broker (the last will) when the connection dies without a goodbye.

The network runs in paho's own thread (``loop_start``) and ``write`` only queues, so the pipeline
never waits for the broker. paho reconnects with a capped backoff; what was written meanwhile
waits in a queue of ``max_queued`` messages (the oldest are dropped beyond that, and counted) and
goes out, in order, as soon as the connection is back.
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
from urllib.parse import unquote

from stream.errors import FacestreamError
from stream.events.schema import Event
from stream.sources.credentials import expand_env, mask_credentials, split_url

log = logging.getLogger(__name__)

SCHEMES = {"mqtt": 1883, "mqtts": 8883}


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


class MqttSink:
    def __init__(self, url: str, prefix: str = "facestream", client_id: str | None = None, qos: int = 1,
                 max_queued: int = 10_000, reconnect_max_s: float = 30.0, keepalive_s: int = 15) -> None:
        import paho.mqtt.client as mqtt

        self.broker = parse_broker_url(url)
        self.prefix = prefix.rstrip("/")
        self.qos = qos
        self.status_topic = f"{self.prefix}/status"
        self.published = 0
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
            self._client.tls_set_context(ssl.create_default_context())
        self._client.will_set(self.status_topic, "offline", qos=1, retain=True)
        self._client.reconnect_delay_set(min_delay=1, max_delay=int(max(reconnect_max_s, 1)))
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._warned_unreachable = False
        try:
            self._client.connect_async(self.broker.host, self.broker.port, keepalive=keepalive_s)
        except (OSError, ValueError) as exc:
            raise FacestreamError(f"--mqtt {self.broker.shown}: {exc}") from None
        self._client.loop_start()

    # -- paho's thread ---------------------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("mqtt %s: refused (%s)", self.broker.shown, reason_code)
            return
        self.connects += 1
        if self.connects > 1:
            log.warning("mqtt %s: reconnected", self.broker.shown)
        else:
            log.info("mqtt %s: connected", self.broker.shown)
        with self._lock:
            client.publish(self.status_topic, "online", qos=1, retain=True)
            while self._pending:
                topic, payload, retain = self._pending.popleft()
                client.publish(topic, payload, qos=self.qos, retain=retain)
            self._connected.set()

    def _on_connect_fail(self, client, userdata) -> None:
        if not self._warned_unreachable:  # once: paho keeps trying with its backoff, quietly
            self._warned_unreachable = True
            log.warning("mqtt %s: broker unreachable; retrying (events are queued meanwhile)", self.broker.shown)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._lock:
            self._connected.clear()
        if reason_code != 0:
            log.warning("mqtt %s: connection lost (%s); reconnecting", self.broker.shown, reason_code)

    # -- the pipeline's side ---------------------------------------------------------------------
    def write(self, event: Event) -> None:
        self._send(f"{self.prefix}/{event.source}/{event.type}", event.to_json())
        if event.type in ("track_started", "identity", "track_ended"):
            self._update_presence(event)

    def _update_presence(self, event: Event) -> None:
        tracks = self._present.setdefault(event.source, {})
        if event.type == "track_ended":
            tracks.pop(int(event.track_id or 0), None)
        else:
            tracks[int(event.track_id or 0)] = event.identity if event.type == "identity" else \
                tracks.get(int(event.track_id or 0))
        names = sorted({n for n in tracks.values() if n})
        key = json.dumps([names, len(tracks)])
        if self._last_present.get(event.source) == key:
            return
        self._last_present[event.source] = key
        self._send(f"{self.prefix}/{event.source}/present",
                   json.dumps({"identities": names, "tracks": len(tracks), "ts": event.ts}), retain=True)

    def _send(self, topic: str, payload: str, retain: bool = False) -> None:
        with self._lock:
            if not self._connected.is_set():
                if len(self._pending) >= self.max_queued:  # the broker has been away a long time
                    self._pending.popleft()
                    self.dropped += 1
                self._pending.append((topic, payload, retain))
                self.published += 1
                return
            # connected: paho queues it and keeps it (QoS 1) across a connection lost from here on
            self._client.publish(topic, payload, qos=self.qos, retain=retain)
            self.published += 1

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def close(self, timeout_s: float = 2.0) -> None:
        """Say goodbye (retained "offline"), let the queue drain a moment, and stop paho's thread."""
        if self._connected.is_set():
            info = self._client.publish(self.status_topic, "offline", qos=1, retain=True)
            deadline = time.monotonic() + timeout_s
            while not info.is_published() and time.monotonic() < deadline and self._connected.is_set():
                time.sleep(0.02)
        self._client.disconnect()
        self._client.loop_stop()
        log.info("mqtt %s: %d message(s) queued for the broker, %d dropped (queue full)", self.broker.shown,
                 self.published, self.dropped)
