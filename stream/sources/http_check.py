"""What an HTTP camera URL answers, asked before OpenCV is: an error status or a web page is named.

OpenCV's FFmpeg backend says only "no" for a URL that answers 500, 401 or a login page, and prints
a warning line of its own on every try. One plain GET, read up to the headers and closed, tells
which it is, so a reconnect loop can say why once and skip an open that cannot give video.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.error
import urllib.request
from http import HTTPStatus
from urllib.parse import unquote

from stream.sources.credentials import split_url
from stream.sources.spec import SourceSpec

#: Content types that are a page for people, never a video stream (HLS playlists may be text/plain).
_PAGE_TYPES = ("text/html", "application/xhtml+xml")


def is_http(spec: SourceSpec) -> bool:
    return spec.kind == "stream" and spec.uri.lower().startswith(("http://", "https://"))


def _opener(spec: SourceSpec) -> urllib.request.OpenerDirector:
    """Direct (as the TCP check before it), with the URL's user and password for Basic or Digest
    auth as FFmpeg would send them, and TLS unverified: FFmpeg's default for the same URL."""
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    parts = split_url(spec.uri)
    if parts is not None and parts.userinfo:
        user, _, password = parts.userinfo.partition(":")
        passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        passwords.add_password(None, plain_url(spec), unquote(user), unquote(password))
        handlers += [urllib.request.HTTPBasicAuthHandler(passwords), urllib.request.HTTPDigestAuthHandler(passwords)]
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    handlers.append(urllib.request.HTTPSHandler(context=context))
    return urllib.request.build_opener(*handlers)


def plain_url(spec: SourceSpec) -> str:
    """The URL without its userinfo (urllib refuses one there; the opener's auth handlers send it)."""
    parts = split_url(spec.uri)
    if parts is None or parts.userinfo is None:
        return spec.uri
    return f"{parts.scheme}://{parts.host_port}{parts.rest}"


def http_problem(spec: SourceSpec, timeout_s: float) -> str | None:
    """Why an http(s) stream cannot give video (``HTTP 500 Internal Server Error``, ``serves text/html,
    not video``), or None when it may: answered 2xx with a type that can be video, or did not answer
    at all (the TCP check says why). Never the URL: callers add the masked one."""
    request = urllib.request.Request(plain_url(spec), headers={"User-Agent": "facestream"})
    try:
        with _opener(spec).open(request, timeout=timeout_s) as response:  # headers only: closed unread
            content_type = response.headers.get_content_type()
    except urllib.error.HTTPError as exc:
        exc.close()
        reason = exc.reason if isinstance(exc.reason, str) and exc.reason else _phrase(exc.code)
        return f"HTTP {exc.code} {reason}".rstrip()
    except TimeoutError:
        # Accepted but silent (urllib wraps a timeout of the connect itself in URLError, so this is
        # the wait for the headers): OpenCV would wait out its own timeout on the same server,
        # doubling what every probe and reconnect costs, for the same answer.
        return "connected, but no answer"
    except (OSError, http.client.HTTPException, ValueError):
        return None  # unreachable or not HTTP: for the TCP check and OpenCV to say
    if content_type in _PAGE_TYPES:
        return f"serves {content_type}, not video"
    return None


def _phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return ""
