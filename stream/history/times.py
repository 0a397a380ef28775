"""The times people give history queries: ``2h``/``7d`` before now, an ISO time, or unix seconds.

One reader for every command and the HTTP API, so ``--since`` means the same everywhere. A time
without an offset is the reader's local time on the command line (as people type it) and UTC in the
HTTP API (the page sends unix seconds; a script says what it means)."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import Literal

from stream.errors import FacestreamError

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(text: str, *, now: float | None = None, naive: Literal["local", "utc"] = "local",
               what: str = "") -> float:
    """``text`` as unix seconds; a bad one is one line naming it (``what``: the option or parameter)."""
    value = str(text).strip()
    match = _RELATIVE.match(value)
    if match:
        return (time.time() if now is None else now) - float(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        shown = f"{what}={text}" if what else str(text)
        raise FacestreamError(f"{shown}: not a time (an ISO time such as 2026-05-01T09:00, unix seconds, "
                              "or 30m, 2h, 7d before now)") from None
    if moment.tzinfo is None and naive == "utc":
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()  # a naive one: local time
