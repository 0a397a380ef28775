"""Stop signals while a pipeline runs: the first asks for a drain, a later one forces the stop."""

from __future__ import annotations

import signal
import time
from types import FrameType

DUPLICATE_SIGNAL_S = 1.0  # a second signal sooner than this is the same request; later, it forces


class StopSignals:
    """Catches SIGINT and SIGTERM inside its ``with`` block.

    The handler only notes the request: acting on it (setting a multiprocessing Event) takes a lock
    that the interrupted code may hold. A second signal within ``DUPLICATE_SIGNAL_S`` is the same
    request delivered twice: timeout(1) and process-group kills send it to us and to our group.
    A second signal after that raises KeyboardInterrupt: the user insists.
    """

    def __init__(self, duplicate_s: float = DUPLICATE_SIGNAL_S) -> None:
        self.duplicate_s = duplicate_s
        self.received: list[str] = []
        self._last = -1.0
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> str | None:
        """Name of the first stop signal, or None."""
        return self.received[0] if self.received else None

    def __enter__(self) -> StopSignals:
        self._previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        now = time.monotonic()
        if self.received and now - self._last < self.duplicate_s:
            return
        self._last = now
        self.received.append(signal.Signals(signum).name)
        if len(self.received) > 1:
            raise KeyboardInterrupt
