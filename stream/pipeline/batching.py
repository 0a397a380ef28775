"""Micro-batching for the embedder: full batches leave at once, partial ones when the first waited long enough."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import Any


def collect_batch(
    get: Callable[[float], Any],
    crops_of: Callable[[Any], int],
    max_batch: int,
    max_wait_s: float,
    poll_s: float = 0.25,
    clock: Callable[[], float] = time.monotonic,
) -> list[Any]:
    """Take items from ``get(timeout)`` (raising ``queue.Empty`` on timeout) until they hold
    ``max_batch`` crops or ``max_wait_s`` has passed since the first arrived and nothing more is
    queued. ``max_wait_s=0`` takes just what is already queued.

    Returns [] when nothing arrived within ``poll_s`` (so the caller can check for shutdown).
    Items with no crops (end-of-source markers, frames whose faces need no embedding) ride along
    in order; if the first item has none, it leaves at once rather than waiting for company.
    """
    try:
        first = get(poll_s)
    except queue.Empty:
        return []
    items = [first]
    total = crops_of(first)
    if total == 0:
        return items
    deadline = clock() + max_wait_s
    while total < max_batch:
        # Past the deadline, items already queued still join (get(0) does not wait): a batch
        # never leaves smaller than what is at hand.
        try:
            item = get(max(0.0, deadline - clock()))
        except queue.Empty:
            break
        items.append(item)
        total += crops_of(item)
    return items
