"""The site's one events endpoint: shards connect in (XSUB), subscribers connect out (XPUB).

Subscriptions travel upstream to every shard's publisher, so a shard only sends what someone
wants; a copy of everything also goes to the driver's own tap (inproc), which follows the shards'
heartbeats for the site status and feeds MQTT. A shard that restarts on another node connects
again to the same address: subscribers never reconnect.
"""

from __future__ import annotations

import logging
import threading

import zmq

from stream.errors import FacestreamError

log = logging.getLogger(__name__)


class EventProxy:
    def __init__(self, inbound: str, outbound: str, sndhwm: int = 1000) -> None:
        self._ctx = zmq.Context.instance()
        self._xsub = self._ctx.socket(zmq.XSUB)
        self._xpub = self._ctx.socket(zmq.XPUB)
        self._capture = self._ctx.socket(zmq.PUB)
        self.tap_endpoint = f"inproc://facestream-site-tap-{id(self)}"
        # zmq sockets belong to one thread: the proxy's are stopped through its control socket
        control = f"inproc://facestream-site-control-{id(self)}"
        self._control_out = self._ctx.socket(zmq.PAIR)
        self._control_out.bind(control)
        self._control_in = self._ctx.socket(zmq.PAIR)
        self._control_in.connect(control)
        self._xpub.setsockopt(zmq.SNDHWM, sndhwm)
        for sock in (self._xsub, self._xpub, self._capture):
            sock.setsockopt(zmq.LINGER, 0)
        try:
            self._xsub.bind(inbound)
            self._xpub.bind(outbound)
            self._capture.bind(self.tap_endpoint)
        except zmq.ZMQError as exc:
            self._close_sockets()
            self._control_out.close(0)
            raise FacestreamError(f"cannot bind the site's event proxy ({inbound} / {outbound}: "
                                  f"{exc.strerror})") from None
        self.inbound = self._xsub.getsockopt_string(zmq.LAST_ENDPOINT)
        self.outbound = self._xpub.getsockopt_string(zmq.LAST_ENDPOINT)
        # the tap subscribes to everything: shards send all events, not only what outside subscribers want
        self._xsub.send(b"\x01")
        self._thread = threading.Thread(target=self._run, name="site-proxy", daemon=True)
        self._thread.start()
        log.info("site events: shards -> %s, subscribers -> %s", self.inbound, self.outbound)

    def _run(self) -> None:
        try:
            zmq.proxy_steerable(self._xsub, self._xpub, self._capture, self._control_in)
        except zmq.ZMQError as exc:
            log.error("site event proxy stopped: %s", exc)
        finally:
            self._close_sockets()

    def tap(self) -> zmq.Socket:
        """A SUB socket receiving a copy of every event (``[topic, json]``), for this process."""
        sock = self._ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.tap_endpoint)
        return sock

    def _close_sockets(self) -> None:
        for sock in (self._xsub, self._xpub, self._capture, self._control_in):
            sock.close(0)

    def close(self) -> None:
        if self._thread.is_alive():
            self._control_out.send(b"TERMINATE")
            self._thread.join(timeout=2)
        self._control_out.close(0)
