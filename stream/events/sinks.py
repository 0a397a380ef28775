"""Where events go: a JSON-lines file, the ZeroMQ publisher, or both."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from stream.errors import FacestreamError
from stream.events.schema import Event

log = logging.getLogger(__name__)


class EventSink(Protocol):
    def write(self, event: Event) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """Appends one JSON object per line and flushes each line, so an accepted event survives a crash."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives with the sink
        except OSError as exc:
            raise FacestreamError(f"{self.path}: cannot write events ({exc.strerror})") from None
        self.written = 0

    def write(self, event: Event) -> None:
        self._file.write(event.to_json() + "\n")
        self.written += 1

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
