"""Who may talk to the web view: Host names it serves, and requests from its own origin only.

The pattern is Fetch-Metadata resource isolation with an Origin check (the web.dev "resource
isolation policy", OWASP's CSRF defence without tokens):

- **Host** (against DNS rebinding): a name the attacker controls that resolves to 127.0.0.1
  makes the attacker's page same-origin with the view, so nothing below could tell it apart.
  Only the names the view serves are answered: loopback names, the bound address, and
  ``web.allowed_hosts``; anything else is 421.
- **State-changing requests** (POST, PUT, PATCH, DELETE) pass only with ``Sec-Fetch-Site:
  same-origin`` when the browser sends that header, and an ``Origin`` equal to the origin the
  page is served from when it sends that one (browsers always do on a POST). A page on another
  port of the same host is *same-site* but not same-origin: refused. The routes with a body also
  want their own content type (the app checks it), which a cross-origin page cannot send
  without a CORS preflight the view never answers.
- **Reading routes that show faces or names** (everything under ``/api/``: pictures, photos,
  crops, events) refuse anything a browser marks ``cross-site`` or ``same-site``, and a foreign
  ``Origin``. The WebSocket and the event stream check ``Origin`` as well: browsers send it on
  both, so a foreign page's handshake is refused before a frame is produced.

Clients without these headers (curl, scripts, the tests' http.client) are not browsers and cannot
be made to carry a victim's cookie: they pass here and still need the token when one is set.
Refusals are 403 (421 for a Host) with a one-line reason, logged at warning level once per kind.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

LOOPBACK_NAMES = frozenset({"localhost"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: open to any site: the page itself (a link from elsewhere must open it), its assets, the health check
OPEN_PATHS = ("/", "/favicon.ico", "/healthz")
OPEN_PREFIXES = ("/static/",)
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


class Refused(Exception):
    """A request the view will not serve: an HTTP status and a one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class HostPolicy:
    """The Host names the view answers to."""

    names: frozenset[str] = LOOPBACK_NAMES
    #: bound to all interfaces: any IP literal is one of ours that the user typed (rebinding needs a name)
    any_address: bool = False
    anything: bool = False  # "*" in web.allowed_hosts: the operator checks Host in front of the view

    @classmethod
    def for_bind(cls, host: str | None, allowed: Iterable[str] = ()) -> HostPolicy:
        names = set(LOOPBACK_NAMES)
        allowed = [a.strip().lower().strip("[]") for a in allowed if a.strip()]
        any_address = host in ("0.0.0.0", "::", "")
        if host and not any_address:
            names.add(host.lower().strip("[]"))
        if any_address:
            names.add(socket.gethostname().lower())
        return cls(frozenset(names | set(allowed)), any_address, "*" in allowed)

    def allows(self, hostname: str) -> bool:
        if self.anything or hostname in self.names:
            return True
        try:
            address = ipaddress.ip_address(hostname)
        except ValueError:
            return False
        return address.is_loopback or self.any_address


def parse_host(value: str) -> tuple[str, int | None] | None:
    """``Host`` header -> (lower-case name without brackets, port or None); None when malformed."""
    try:
        parts = urlsplit(f"//{value}")
        return (parts.hostname or "", parts.port) if parts.hostname else None
    except ValueError:
        return None


def same_origin(origin: str, host: tuple[str, int | None], scheme: str) -> bool:
    """Is ``Origin`` the origin the page was served from (scheme://Host)?

    Ports are compared as written, a scheme's default port counting as none: behind a TLS proxy the
    view is reached as http while the page's origin is https://name, and one host:port cannot
    serve two schemes, so the scheme adds nothing an attacker could use.
    """
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False  # "null" (a sandboxed frame, a file: page) and anything odd
    if port == _DEFAULT_PORTS[parts.scheme]:
        port = None
    name, served_port = host
    if served_port == _DEFAULT_PORTS.get(scheme):
        served_port = None
    return parts.hostname == name and port == served_port


class RequestGuard:
    """ASGI middleware: the Host check, then the Fetch-Metadata and Origin checks (module docstring)."""

    def __init__(self, app: Callable, hosts: HostPolicy) -> None:
        self.app = app
        self.hosts = hosts
        self._logged: set[str] = set()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] in ("http", "websocket") and scope.get("path") != "/healthz":
            try:
                self.check(scope)
            except Refused as refused:
                await self._refuse(scope, send, refused)
                return
        await self.app(scope, receive, send)

    def check(self, scope: dict) -> None:
        headers = headers_of(scope)
        served = None
        if "host" in headers:
            served = parse_host(headers["host"])
            if served is None:
                raise Refused(400, f"a malformed Host header ({headers['host']!r})")
            if not self.hosts.allows(served[0]):
                raise Refused(421, f"Host {headers['host']} is not served here (add it to web.allowed_hosts)")
        origin = headers.get("origin")
        if origin is not None:
            scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope.get("scheme", "http"))
            if served is None or not same_origin(origin, served, scheme):
                raise Refused(403, f"a request from another origin ({origin}) is refused")
        site = headers.get("sec-fetch-site")
        path = scope.get("path", "/")
        if scope["type"] == "http" and scope.get("method", "GET") in WRITE_METHODS:
            if site is not None and site != "same-origin":
                raise Refused(403, f"a {site} request may not change anything (Sec-Fetch-Site: {site})")
        elif site not in (None, "same-origin", "none") and not _open(path):
            raise Refused(403, f"a {site} request may not read {_first_part(path)} (Sec-Fetch-Site: {site})")

    async def _refuse(self, scope: dict, send: Callable, refused: Refused) -> None:
        reason = str(refused)
        kind = reason.split(" (")[0]
        if kind not in self._logged:  # an attacker's page retries: one warning per kind, the rest at debug
            self._logged.add(kind)
            log.warning("web view: refused %s %s: %s (the next of this kind are logged at debug level)",
                        scope.get("method", "WEBSOCKET"), scope.get("path"), reason)
        else:
            log.debug("web view: refused %s %s: %s", scope.get("method", "WEBSOCKET"), scope.get("path"), reason)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # before accept: uvicorn answers 403
            return
        await _send_refusal(send, refused)


async def _send_refusal(send: Callable, refused: Refused) -> None:
    body = json.dumps({"ok": False, "error": str(refused)}).encode() + b"\n"
    await send({"type": "http.response.start", "status": refused.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def _first_part(path: str) -> str:
    return "/".join(path.split("/")[:3]) or "/"


def headers_of(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
