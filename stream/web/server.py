"""Serve the web view with uvicorn in a thread of the process that starts it.

The socket is bound here, before uvicorn starts, so a port in use is a one-line error at once
(and port 0 works: tests read the port back). Beyond loopback a token is required.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import threading
import time

from stream.config.web import token_problem
from stream.errors import FacestreamError

log = logging.getLogger(__name__)


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` (all interfaces) or ``PORT`` (127.0.0.1) -> (host, port)."""
    text = text.strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    host = host.strip("[]") or "0.0.0.0"
    try:
        number = int(port)
        if not 0 <= number <= 65535:
            raise ValueError
    except ValueError:
        raise FacestreamError(f"--http {text}: expected HOST:PORT, :PORT or PORT (a port 0-65535)") from None
    return host, number


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_token(token: str | None) -> str | None:
    """The configured token; ``${VAR}`` takes it from the environment (keep it out of the config file).

    A weak one is refused here too: the config only sees ``${VAR}``, not what it holds."""
    where = "web.token"
    if token and token.startswith("${") and token.endswith("}"):
        name = token[2:-1]
        where = f"web.token (environment variable {name})"
        token = os.environ.get(name)
        if not token:
            raise FacestreamError(f"web.token: environment variable {name} is not set")
    if token is not None and token_problem(token):
        raise FacestreamError(f"{where}: {token_problem(token)}")
    return token or None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class WebServer:
    def __init__(self, app, bind: str, token: str | None) -> None:
        host, port = parse_bind(bind)
        if not is_loopback_host(host) and not token:
            raise FacestreamError(f"--http {bind}: binding beyond 127.0.0.1 needs web.token in the config "
                                  "(the page shows faces and names)")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise FacestreamError(f"--http {bind}: cannot listen there ({exc.strerror})") from None
        self._sock.listen(64)
        self.host, self.port = self._sock.getsockname()[:2]
        import uvicorn

        config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="websockets-sansio", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="web", daemon=True)

    @property
    def url(self) -> str:
        """A URL that reaches the view from this machine."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{_url_host(host)}:{self.port}/"

    @property
    def where(self) -> str:
        """Where the view listens, for the one line that says so: bound to all interfaces there is
        no one address to give (127.0.0.1 would read as loopback only)."""
        if self.host in ("0.0.0.0", "::"):
            return f"all interfaces, port {self.port} (http://<an address of this machine>:{self.port}/)"
        return self.url

    def start(self, timeout_s: float = 10.0) -> WebServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise FacestreamError(f"the web view did not start on {self.url}")
            time.sleep(0.02)
        log.debug("web view on %s", self.where)  # the caller prints the one line that says where
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._sock.close()
