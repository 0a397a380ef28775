"""The CPU priority of the web view's page work: below the run's, so that what a viewer asks for (a
photo embedded for search, a day of history read) takes the CPU the pipeline leaves."""

from __future__ import annotations

import os
import threading

#: The niceness of the threads that answer the History page: below the run's processes (nice 0), so a
#: page searching photos on the CPU takes what the pipeline leaves (measured: docs/web.md, "History").
PAGE_NICE = 10
_niced = threading.local()


def yield_to_the_run() -> None:
    """Lower this thread's CPU priority to PAGE_NICE, once (Linux: niceness is per thread; threads it
    starts later, such as the CPU engine's, inherit it). Elsewhere nothing changes."""
    if getattr(_niced, "done", False):
        return
    _niced.done = True
    try:
        tid = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, tid) < PAGE_NICE:
            os.setpriority(os.PRIO_PROCESS, tid, PAGE_NICE)
    except (AttributeError, OSError):  # not Linux, or not allowed: the page runs at the run's priority
        pass
