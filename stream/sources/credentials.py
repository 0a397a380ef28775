"""Secrets in source URLs: split a URL by hand, mask its password and secret query values, and
expand ``${VAR}`` so a password can stay out of the command line.

Camera passwords are often typed as they are, not percent-encoded, so ``urlsplit`` is no help:
``rtsp://admin:pa#s/s?w@rd@10.0.0.5/live`` ends its authority at the ``#``. Here the userinfo ends
at the last ``@`` that is followed by something shaped like ``host[:port]``; when in doubt this
masks too much rather than too little.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from stream.errors import FacestreamError

MASK = "***"

#: Query parameters whose value is a secret (compared case-insensitively, '-' read as '_').
SECRET_PARAMS = frozenset({
    "password", "pass", "passwd", "pwd", "token", "access_token", "key", "api_key", "apikey", "auth",
    "secret", "signature", "sig",
    "passphrase",  # SRT's encryption passphrase (srt://host:port?passphrase=...)
})

# The lookbehind keeps "door=rtsp://..." and "--source=rtsp://..." masked from the scheme on.
_SCHEME = re.compile(r"(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]*)://")
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?"
_HOST_PORT = re.compile(
    rf"(?:\[[0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.~-]+)?\]"  # [IPv6], optionally with a zone
    rf"|{_LABEL}(?:\.{_LABEL})*\.?"  # a host name or an IPv4 address
    rf")?(?::[0-9]{{0,5}})?\Z"  # the host may be empty: udp://@:5000 listens on every address
)
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class UrlParts:
    """``scheme://[userinfo@]host[:port]rest``; ``rest`` is path, query and fragment as typed."""

    scheme: str
    userinfo: str | None
    host_port: str
    rest: str

    @property
    def path(self) -> str:
        return re.split(r"[?#]", self.rest, maxsplit=1)[0]

    @property
    def query(self) -> str:
        head = self.rest.split("#", 1)[0]
        return head.split("?", 1)[1] if "?" in head else ""


def _authority_end(text: str) -> int:
    """Index of the first '/', '?' or '#' in ``text``, or its length."""
    match = re.search(r"[/?#]", text)
    return match.start() if match else len(text)


def split_url(uri: str) -> UrlParts | None:
    """The parts of a URL that starts with ``scheme://``; None for anything else (paths, camera indexes)."""
    match = _SCHEME.match(uri)
    if match is None:
        return None
    scheme, after = match.group(1), uri[match.end():]
    at = len(after)
    while (at := after.rfind("@", 0, at)) >= 0:
        user = after[:at].split(":", 1)[0]
        tail = after[at + 1:]
        # A user name never holds '/', '?' or '#' unencoded, a password may: so an '@' in a path or
        # a query (?email=a@b.com) is not mistaken for the end of the userinfo.
        if not re.search(r"[/?#]", user) and _HOST_PORT.match(tail[:_authority_end(tail)]):
            end = at + 1 + _authority_end(tail)
            return UrlParts(scheme, after[:at], after[at + 1:end], after[end:])
    end = _authority_end(after)
    return UrlParts(scheme, None, after[:end], after[end:])


def url_path(uri: str) -> str:
    """The path of a URL (without query or fragment), even when its password holds '#' or '?'."""
    parts = split_url(uri)
    return parts.path if parts is not None else uri


def _mask_query(rest: str) -> str:
    head, hash_, fragment = rest.partition("#")
    path, question, query = head.partition("?")
    if not question:
        return rest
    params = []
    for param in query.split("&"):
        key, eq, value = param.partition("=")
        if eq and value and unquote(key).strip().lower().replace("-", "_") in SECRET_PARAMS:
            param = f"{key}={MASK}"
        params.append(param)
    return f"{path}?{'&'.join(params)}{hash_}{fragment}"


def mask_credentials(text: str) -> str:
    """``text`` with a URL's password and secret query values replaced by ``***``, for anything shown.

    A user name without a password is kept; text that holds no ``scheme://`` comes back unchanged.
    """
    match = _SCHEME.search(text)
    if match is None:
        return text
    prefix, parts = text[:match.start()], split_url(text[match.start():])
    if parts is None:  # cannot happen: the same pattern matched at this position
        return text
    userinfo = parts.userinfo
    if userinfo is None:
        parts = _doubtful_userinfo(parts)
        userinfo = parts.userinfo
    if userinfo is not None and ":" in userinfo:
        userinfo = f"{userinfo.split(':', 1)[0]}:{MASK}"
    auth = f"{userinfo}@" if userinfo is not None else ""
    return f"{prefix}{parts.scheme}://{auth}{parts.host_port}{_mask_query(parts.rest)}"


def _doubtful_userinfo(parts: UrlParts) -> UrlParts:
    """``user:pass@`` before a host that is not one (``rtsp://admin:pw@ca m/live``): still masked.

    split_url found no userinfo because nothing after the last '@' looks like a host; if what is
    before it looks like ``user:password``, it is taken as one anyway: masking a query's
    ``a:b@c`` by mistake costs less than showing a password.
    """
    after = parts.host_port + parts.rest
    at = after.rfind("@")
    if at < 0:
        return parts
    user, colon, _ = after[:at].partition(":")
    if not colon or re.search(r"[/?#]", user):
        return parts
    return UrlParts(parts.scheme, after[:at], after[at + 1:], "")


def mask_text(text: str) -> str:
    """mask_credentials of every whitespace-separated word, for a message that may quote several URLs
    ("invalid value: 'rtsp://...'": a closing quote or comma is not part of the host)."""

    def mask_word(match: re.Match[str]) -> str:
        word, trail = match.group(1), match.group(2)
        return mask_credentials(word) + trail

    return re.sub(r"(\S+?)(['\"),;]*)(?=\s|$)", mask_word, text)


def expand_env(text: str, what: str, env: Mapping[str, str] | None = None) -> str:
    """Replace each ``${NAME}`` in ``text`` from the environment; ``$$`` and ``$NAME`` stay as typed.

    ``what`` names the input in the error for an unset variable (it must not hold a secret).
    """
    env = os.environ if env is None else env

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:  # '$$': kept, so '$${X}' is not expanded
            return match.group(0)
        if name not in env:
            raise FacestreamError(f"{what}: environment variable {name} is not set (used as ${{{name}}})")
        return env[name]

    return _VAR.sub(value, text)
