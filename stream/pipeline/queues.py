"""A multiprocessing queue for exactly one reader, which survives that reader being killed.

``multiprocessing.Queue.get`` holds a cross-process lock for the whole time it waits. If the
reader is killed while waiting (the usual place for a worker to be), the lock is never released
and the restarted worker blocks on it forever. Every queue in the pipeline has a single reader
(each worker owns its inbox), so that lock protects nothing here: this queue waits without it.
"""

from __future__ import annotations

import queue
from multiprocessing.queues import Queue
from multiprocessing.reduction import ForkingPickler
from typing import Any


class SingleReaderQueue(Queue):
    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx=ctx)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if self._closed:  # type: ignore[attr-defined]
            raise ValueError(f"Queue {self!r} is closed")
        if not self._reader.poll(None if block and timeout is None else (timeout if block else 0)):  # type: ignore[attr-defined]
            raise queue.Empty
        data = self._recv_bytes()  # type: ignore[attr-defined]
        self._sem.release()  # type: ignore[attr-defined]
        return ForkingPickler.loads(data)

    def get_nowait(self) -> Any:
        return self.get(False)
