"""ZeroMQ CURVE for the event socket: key files, the ZAP authenticator, and the client's options.

Keys are ZeroMQ certificate files, as `zmq.auth.create_certificates` writes them: ``NAME.key`` holds
the public key (share it), ``NAME.key_secret`` the public and the secret key (keep it; mode 0600).
The publisher is the CURVE server: it needs its own ``.key_secret`` and a folder of the ``.key``
files of the clients it lets in. A subscriber needs the server's ``.key`` and its own ``.key_secret``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from stream.errors import FacestreamError

log = logging.getLogger(__name__)

PUBLIC_SUFFIX, SECRET_SUFFIX = ".key", ".key_secret"


@dataclass(frozen=True)
class KeyPair:
    public: bytes
    secret: bytes


def load_public_key(path: Path) -> bytes:
    """The public key of a certificate file (``.key`` or ``.key_secret``)."""
    return _load(path)[0]


def load_keypair(path: Path) -> KeyPair:
    """Both keys of a ``.key_secret`` file; a public-only file is refused (it cannot authenticate)."""
    public, secret = _load(path)
    if secret is None:
        raise FacestreamError(f"{path}: no secret key in it (pass the {SECRET_SUFFIX} file, not the {PUBLIC_SUFFIX})")
    if Path(path).stat().st_mode & 0o077:
        # Like ssh, say so; unlike ssh, still run (a shared-folder deployment may need it).
        log.warning("%s: secret key is readable by other users (chmod 600 it)", path)
    return KeyPair(public, secret)


def _load(path: Path) -> tuple[bytes, bytes | None]:
    path = Path(path)
    if not path.is_file():
        raise FacestreamError(f"{path}: key file not found")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise FacestreamError(f"{path}: not a ZeroMQ certificate file ({exc})") from None
    # z85 text of a 32-byte key is 40 characters; anything else would fail later, inside libzmq.
    if len(public) != 40 or (secret is not None and len(secret) != 40):
        raise FacestreamError(f"{path}: malformed CURVE key (expected 40 Z85 characters)")
    return public, secret


def client_key_files(folder: Path) -> list[Path]:
    """The clients' public keys in ``folder``; an empty folder is refused (it would let no one in)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FacestreamError(f"{folder}: client keys folder not found")
    files = sorted(folder.glob(f"*{PUBLIC_SUFFIX}"))  # the glob does not match *.key_secret
    if not files:
        raise FacestreamError(f"{folder}: no client public keys (*{PUBLIC_SUFFIX}) in it")
    for f in files:
        load_public_key(f)  # a broken file is named now, not skipped silently by the authenticator
    return files


def generate(folder: Path, name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` and ``NAME.key_secret`` (0600) into ``folder``; existing files are kept."""
    if not name or "/" in name or name in (".", ".."):
        raise FacestreamError(f"{name!r}: not a usable key name")
    folder = Path(folder)
    public, secret = folder / f"{name}{PUBLIC_SUFFIX}", folder / f"{name}{SECRET_SUFFIX}"
    for f in (public, secret):
        if f.exists():
            raise FacestreamError(f"{f}: already exists (remove it or choose another --name)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Written in a 0700 folder and moved in: the secret is never readable by others, not even
        # for the moment between create_certificates writing it and the chmod.
        with tempfile.TemporaryDirectory(dir=folder, prefix=".keys-") as tmp:
            tmp_public, tmp_secret = zmq.auth.create_certificates(tmp, name)
            os.chmod(tmp_secret, 0o600)
            os.chmod(tmp_public, 0o644)
            os.replace(tmp_secret, secret)
            os.replace(tmp_public, public)
    except OSError as exc:
        raise FacestreamError(f"{folder}: cannot write keys ({exc.strerror or exc})") from None
    return public, secret


class CurveServer:
    """The server's keys and the ZAP handler that admits only the listed clients.

    libzmq asks the ZAP handler of the socket's context about every connecting peer; there is one
    handler per context, so one secured publisher per process.
    """

    def __init__(self, keys: KeyPair, auth: ThreadAuthenticator) -> None:
        self.keys = keys
        self._auth: ThreadAuthenticator | None = auth

    @classmethod
    def start(cls, ctx: zmq.Context, secret_key_file: Path | None,
              clients_dir: Path | None) -> CurveServer | None:
        """None without keys; both or neither (a server that admits anyone is not what was asked)."""
        if secret_key_file is None and clients_dir is None:
            return None
        if secret_key_file is None or clients_dir is None:
            raise FacestreamError("CURVE needs both the server's secret key file and the client keys folder")
        keys = load_keypair(Path(secret_key_file))
        clients = client_key_files(Path(clients_dir))
        auth = ThreadAuthenticator(ctx, log=logging.getLogger("stream.events.zap"))
        try:
            auth.start()
        except zmq.ZMQError as exc:
            raise FacestreamError(f"cannot start the CURVE authenticator ({exc.strerror}); "
                                  "one secured publisher per process") from None
        auth.configure_curve(domain="*", location=str(clients_dir))
        log.info("CURVE: %d client key(s) allowed from %s", len(clients), clients_dir)
        return cls(keys, auth)

    def apply(self, sock: zmq.Socket) -> None:
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.keys.secret)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.keys.public)

    def stop(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None


def client_options(server_key_file: Path | None, client_key_file: Path | None) -> dict[int, bytes]:
    """Socket options for a CURVE client; empty for plaintext. Both files or neither."""
    if server_key_file is None and client_key_file is None:
        return {}
    if server_key_file is None or client_key_file is None:
        raise FacestreamError("CURVE needs both --server-key (the server's .key) "
                              "and --client-key (this client's .key_secret)")
    own = load_keypair(Path(client_key_file))
    return {
        zmq.CURVE_SERVERKEY: load_public_key(Path(server_key_file)),
        zmq.CURVE_PUBLICKEY: own.public,
        zmq.CURVE_SECRETKEY: own.secret,
    }


#: The files of a publisher that connects to a CURVE-secured proxy (``output.publish_connect_keys``).
CONNECT_SERVER_KEY, CONNECT_CLIENT_KEY = "server.key", "client.key_secret"


def connect_client_options(folder: Path) -> dict[int, bytes]:
    """CURVE client options from a folder holding the proxy's ``server.key`` and our ``client.key_secret``."""
    folder = Path(folder)
    return client_options(folder / CONNECT_SERVER_KEY, folder / CONNECT_CLIENT_KEY)


def is_loopback(endpoint: str) -> bool:
    """True when only this host can reach ``endpoint`` (ipc/inproc, or tcp on a loopback address)."""
    transport, _, rest = endpoint.partition("://")
    if transport in ("ipc", "inproc"):
        return True
    if transport != "tcp":
        return False  # pgm, epgm, udp...: multicast or network by nature
    host = rest.rsplit(":", 1)[0].split(";")[-1].strip("[]")
    if host in ("localhost", "lo"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # '*', an interface name or a host name: assume reachable from outside
