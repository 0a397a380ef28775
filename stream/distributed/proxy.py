"""The site's one events endpoint: shards connect in (XSUB), subscribers connect out (XPUB).

Subscriptions travel upstream to every shard's publisher, so a shard only sends what someone
wants; a copy of everything also goes to the driver's own tap (inproc), which follows the shards'
heartbeats for the site status and feeds MQTT. A shard that restarts on another node connects
again to the same address: subscribers never reconnect.

Security: the inbound side binds beyond loopback (shards on other nodes reach it), so it is a
CURVE server that admits only the site's shard keys (``SiteKeys``, made by the driver for each run
and handed to its shards): nobody else can inject events, and who-was-where crosses the network
encrypted. The outbound side is a CURVE server too when the site's ``output.publish_server_key`` /
``publish_client_keys`` are set (subscribers then use `subscribe --server-key/--client-key`);
plaintext otherwise, with a warning when it is not loopback. The two sides have their own ZAP
domains, so each admits only its own clients.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import zmq
from zmq.auth.thread import ThreadAuthenticator

from stream.errors import FacestreamError
from stream.events.curve import (
    CONNECT_CLIENT_KEY,
    CONNECT_SERVER_KEY,
    client_key_files,
    connect_client_options,
    generate,
    is_loopback,
    load_keypair,
)

log = logging.getLogger(__name__)


@dataclass
class SiteKeys:
    """One run's keys for the shards' side: the proxy's server keypair and the shards' client keypair,
    in a 0700 folder of the driver's that lives as long as the run."""

    folder: Path

    @classmethod
    def make(cls) -> SiteKeys:
        folder = Path(tempfile.mkdtemp(prefix="facestream-site-keys-"))
        generate(folder, "proxy")
        generate(folder / "shards", "shard")
        return cls(folder)

    @property
    def server_secret(self) -> Path:
        return self.folder / "proxy.key_secret"

    @property
    def shard_clients(self) -> Path:
        return self.folder / "shards"  # the allow-list: shard.key

    def for_shard(self) -> dict[str, bytes]:
        """What a shard writes into its own keys folder (``output.publish_connect_keys``)."""
        return {CONNECT_SERVER_KEY: (self.folder / "proxy.key").read_bytes(),
                CONNECT_CLIENT_KEY: (self.shard_clients / "shard.key_secret").read_bytes()}

    def client_options(self) -> dict[int, bytes]:
        """For a publisher in the driver itself (the site's own heartbeats)."""
        folder = self.folder / "driver"
        folder.mkdir(mode=0o700, exist_ok=True)
        for name, data in self.for_shard().items():
            (folder / name).write_bytes(data)
            (folder / name).chmod(0o600)
        return connect_client_options(folder)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class EventProxy:
    def __init__(self, inbound: str, outbound: str, sndhwm: int = 1000, shard_keys: SiteKeys | None = None,
                 server_key: Path | None = None, client_keys: Path | None = None) -> None:
        # A context of its own: ZAP handlers are per context, and this one serves two domains.
        self._ctx = zmq.Context()
        self._auth: ThreadAuthenticator | None = None
        self._xsub = self._ctx.socket(zmq.XSUB)
        self._xpub = self._ctx.socket(zmq.XPUB)
        try:
            self._secure(shard_keys, server_key, client_keys, outbound)
        except FacestreamError:
            for sock in (self._xsub, self._xpub):
                sock.close(0)
            self._stop_auth()
            raise
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
            self._stop_auth()
            raise FacestreamError(f"cannot bind the site's event proxy ({inbound} / {outbound}: "
                                  f"{exc.strerror})") from None
        self.inbound = self._xsub.getsockopt_string(zmq.LAST_ENDPOINT)
        self.outbound = self._xpub.getsockopt_string(zmq.LAST_ENDPOINT)
        # the tap subscribes to everything: shards send all events, not only what outside subscribers want
        self._xsub.send(b"\x01")
        self._thread = threading.Thread(target=self._run, name="site-proxy", daemon=True)
        self._thread.start()
        log.info("site events: shards -> %s, subscribers -> %s", self.inbound, self.outbound)

    def _secure(self, shard_keys: SiteKeys | None, server_key: Path | None, client_keys: Path | None,
                outbound: str) -> None:
        sides = []
        if shard_keys is not None:
            sides.append((self._xsub, "shards", load_keypair(shard_keys.server_secret), shard_keys.shard_clients))
        if server_key is not None and client_keys is not None:
            client_key_files(client_keys)  # an empty or broken folder is named now
            sides.append((self._xpub, "subscribers", load_keypair(server_key), Path(client_keys)))
        elif not is_loopback(outbound):
            log.warning("%s: site events are plaintext and unauthenticated for subscribers (set "
                        "output.publish_server_key and output.publish_client_keys)", outbound)
        if not sides:
            return
        self._auth = ThreadAuthenticator(self._ctx, log=logging.getLogger("stream.events.zap"))
        self._auth.start()
        for sock, domain, keys, clients in sides:
            self._auth.configure_curve(domain=domain, location=str(clients))
            sock.setsockopt_string(zmq.ZAP_DOMAIN, domain)
            sock.setsockopt(zmq.CURVE_SERVER, 1)
            sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret)
            sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.public)

    def _stop_auth(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None

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
        self._stop_auth()
