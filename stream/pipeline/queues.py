"""Pipes between pipeline processes that survive either end being SIGKILLed.

``multiprocessing.Queue`` is unsafe when workers are killed and restarted, in three ways:
``get`` holds a cross-process lock while it waits (a reader killed there leaves it held, and the
restarted reader blocks forever); ``put`` hands the message to a feeder thread that writes later
under another lock (a killed writer loses what it had buffered, or leaves that lock held); and a
message larger than 16 KiB is written in two pieces, so a writer killed between them corrupts the
stream for the reader.

A ``Channel`` has one reader and, at any moment, one writing process (a restarted writer takes
over from a dead one), so it needs no locks: ``put`` writes the whole frame (length header and
payload) with one ``write`` into a pipe enlarged to 1 MiB, before it returns. While the pipe has
room for the frame the kernel copies it in one go, and a writer killed at any moment leaves whole
messages only. A writer that finds the pipe full waits inside the write with part of its frame
copied; killed then, it would leave a torn frame. The pipeline never gets there: what is in flight
is bounded by the frame slots of the rings (a dozen frames, a few kB of metadata each), far below
1 MiB (tests/pipeline/test_queues.py shows both cases). Several writers may share a channel only for
messages under ``PIPE_BUF`` (4 KiB), which the kernel writes atomically (error lines).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import struct
from multiprocessing import connection
from multiprocessing.context import assert_spawning
from multiprocessing.reduction import ForkingPickler
from typing import Any

PIPE_BYTES = 1 << 20  # Linux's default limit for unprivileged pipes (/proc/sys/fs/pipe-max-size)


class Channel:
    def __init__(self, ctx: Any) -> None:
        self._reader, self._writer = ctx.Pipe(duplex=False)
        _enlarge(self._writer.fileno())

    def __getstate__(self) -> tuple:
        assert_spawning(self)  # pipes travel to spawned processes only, like multiprocessing.Queue's
        return self._reader, self._writer

    def __setstate__(self, state: tuple) -> None:
        self._reader, self._writer = state

    @property
    def reader(self) -> connection.Connection:
        return self._reader

    def put(self, obj: Any) -> None:
        payload = ForkingPickler.dumps(obj)
        # The framing multiprocessing.connection reads: a 4-byte big-endian length, then the bytes.
        _write_all(self._writer.fileno(), struct.pack("!i", len(payload)) + bytes(payload))

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if not self._reader.poll(None if block and timeout is None else (timeout if block else 0)):
            raise queue.Empty
        return ForkingPickler.loads(self._reader.recv_bytes())

    def get_nowait(self) -> Any:
        return self.get(False)

    def empty(self) -> bool:
        return not self._reader.poll(0)


class Inbox:
    """One reader's channels, read as one queue: FIFO within each channel, fair between them."""

    def __init__(self, channels: list[Channel]) -> None:
        self.channels = list(channels)

    def get(self, timeout: float | None = None) -> Any:
        readers = [c.reader for c in self.channels]
        ready = connection.wait(readers, timeout)
        if not ready:
            raise queue.Empty
        # Rotate so a busy channel cannot starve the others.
        first = readers.index(ready[0])
        channel = self.channels[first]
        self.channels = self.channels[first + 1 :] + self.channels[: first + 1]
        return ForkingPickler.loads(channel.reader.recv_bytes())

    def empty(self) -> bool:
        return not connection.wait([c.reader for c in self.channels], 0)


def _enlarge(fd: int) -> None:
    """Room for every message the pipeline can have in flight, so a writer never waits; best effort
    (the default 64 KiB still holds a ring's worth of messages)."""
    setter = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setter is None:
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, setter, PIPE_BYTES)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
