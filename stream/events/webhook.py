"""Events to a webhook: each event POSTed as JSON to a URL, in order, from the sink's own thread.

``output.webhooks`` (or ``--webhook URL``, repeatable). The body is the event's JSON, the same
text as a line of ``--events-out``. With a ``secret`` (``${VAR}`` from the environment), the
header ``X-Facestream-Signature: sha256=<hex>`` carries the HMAC-SHA256 of the body under it, so a
receiver can tell our events from anyone's.

A 2xx answer delivers the event. A connection that fails, a timeout, a 5xx or a 429 is tried
again after a pause that doubles from ``RETRY_FIRST_S`` up to ``RETRY_MAX_S``: the events behind it
wait (order is kept), and while the receiver is away the bounded queue drops its oldest, counted.
Any other answer (a 4xx: the receiver refuses this event as it is) drops the event, counted, and
the next one goes. At the end of a run the queue gets ``drain_s`` to go out; the rest is counted
dropped (see ``QueuedSink``).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import logging
from urllib.parse import urlsplit

from stream.errors import FacestreamError
from stream.events.schema import Event
from stream.events.sinks import QueuedSink
from stream.sources.credentials import expand_env

log = logging.getLogger(__name__)

RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0
SIGNATURE_HEADER = "X-Facestream-Signature"


def check_url(url: str) -> str:
    """``url`` if it is an http(s) URL with a host; FacestreamError naming what is wrong otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FacestreamError(f"--webhook {_shown(url)}: expected http[s]://host[:port]/path")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        raise FacestreamError(f"--webhook {_shown(url)}: port must be 1-65535") from None
    if parts.username is not None:  # a secret in a URL ends up in logs: the body signature is the way
        raise FacestreamError(f"--webhook {_shown(url)}: no user:password in the URL (use secret)")
    return url


def sign(body: bytes, secret: bytes) -> str:
    """The signature header's value for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookSink(QueuedSink):
    def __init__(self, url: str, secret: str | None = None, timeout_s: float = 5.0, queue: int = 1000,
                 drain_s: float = 5.0, retry_first_s: float = RETRY_FIRST_S,
                 retry_max_s: float = RETRY_MAX_S) -> None:
        self.url = check_url(url)
        parts = urlsplit(url)
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname or "", parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._secret = expand_env(secret, f"webhook {_shown(url)} (secret)").encode() if secret else None
        self.timeout_s = timeout_s
        self.retry_first_s, self.retry_max_s = retry_first_s, retry_max_s
        self.retries = 0  # tries after a failed one, over the sink's life
        self._conn: http.client.HTTPConnection | None = None  # kept alive between events
        self._warned = False
        super().__init__(f"webhook {_shown(url)}", queue=queue, drain_s=drain_s)

    def deliver(self, event: Event) -> bool:
        body = event.to_json().encode()
        headers = {"Content-Type": "application/json", "User-Agent": "facestream"}
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(body, self._secret)
        pause = self.retry_first_s
        while True:
            failure = self._post(body, headers)
            if failure is None:
                if self._warned:
                    log.warning("%s: delivering again", self.name)
                    self._warned = False
                return True
            if failure.startswith("refused"):
                log.warning("%s: event %s %s; dropped", self.name, event.seq, failure)
                return False
            if not self._warned:  # one line per outage, not one per try
                log.warning("%s: %s; retrying (events wait in a queue of %d)", self.name, failure, self.max_queued)
                self._warned = True
            if self.giving_up() or self.wait(pause):
                return False
            self.retries += 1
            pause = min(pause * 2, self.retry_max_s)

    def _post(self, body: bytes, headers: dict[str, str]) -> str | None:
        """None once delivered; else why not (``refused ...`` when trying again would not help)."""
        try:
            if self._conn is None:
                kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
                self._conn = kind(self._host, self._port, timeout=self.timeout_s)
            self._conn.request("POST", self._path, body, headers)
            response = self._conn.getresponse()
            response.read()  # the whole answer, so the connection can carry the next event
            status = response.status
            if response.will_close:
                self._drop_connection()
        except (OSError, http.client.HTTPException) as exc:
            self._drop_connection()
            return f"cannot post ({exc.__class__.__name__}: {exc})"
        if 200 <= status < 300:
            return None
        if status >= 500 or status == 429:
            return f"answered {status}"
        return f"refused with {status}"

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        super().close()
        self._drop_connection()


def _shown(url: str) -> str:
    """The URL without its query (which may hold a token), for anything printed."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}" if parts.netloc else url
