"""Channels between processes: a writer or reader SIGKILLed at any moment leaves the pipe usable."""

from __future__ import annotations

import array
import fcntl
import multiprocessing as mp
import os
import queue
import signal
import struct
import termios
import time

import numpy as np
import pytest

from stream.pipeline.ledger import RELEASED
from stream.pipeline.queues import Channel, Inbox
from stream.pipeline.workers import SlotPool


def _write_forever(channel: Channel, tag: int, pause_s: float) -> None:
    payload = np.zeros(40_000, np.uint8)  # 40 kB: more than PIPE_BUF and more than one pickle chunk
    i = 0
    while True:
        channel.put((tag, i, payload))
        i += 1
        time.sleep(pause_s)


def _bytes_in(channel: Channel) -> int:
    count = array.array("i", [0])
    fcntl.ioctl(channel.reader.fileno(), termios.FIONREAD, count)
    return count[0]


@pytest.mark.slow
def test_a_writer_killed_mid_stream_leaves_only_whole_messages_and_a_new_writer_goes_on():
    """The pipeline's case: the reader keeps up, so the pipe has room for every message."""
    ctx = mp.get_context("spawn")
    channel = Channel(ctx)
    got = []
    for tag in range(3):  # three writers in turn, each killed at a moment it is writing often
        writer = ctx.Process(target=_write_forever, args=(channel, tag, 0.0005))
        writer.start()
        deadline = time.monotonic() + 30
        while len([g for g in got if g[0] == tag]) < 50 + 37 * tag:
            got.append(channel.get(timeout=max(0.1, deadline - time.monotonic()))[:2])
        os.kill(writer.pid, signal.SIGKILL)
        writer.join()
        while True:  # what it had written, whole, then nothing
            try:
                got.append(channel.get(timeout=0.2)[:2])
            except queue.Empty:
                break
    for tag in range(3):
        numbers = [i for t, i in got if t == tag]
        assert numbers == list(range(len(numbers)))


@pytest.mark.slow
def test_a_writer_killed_while_it_waits_on_a_full_pipe_tears_its_last_frame():
    """The limit the pipeline stays clear of (its messages in flight are far below the pipe's size)."""
    ctx = mp.get_context("spawn")
    channel = Channel(ctx)
    writer = ctx.Process(target=_write_forever, args=(channel, 0, 0.0))
    writer.start()
    deadline = time.monotonic() + 30
    size = -1
    while size != (size := _bytes_in(channel)) or size == 0:  # until the pipe is full and stays so
        assert time.monotonic() < deadline
        time.sleep(0.3)
    os.kill(writer.pid, signal.SIGKILL)
    writer.join()
    data = b""
    while len(data) < size:
        data += os.read(channel.reader.fileno(), size - len(data))
    offset = 0
    while offset + 4 <= len(data) and offset + 4 + struct.unpack("!i", data[offset : offset + 4])[0] <= len(data):
        offset += 4 + struct.unpack("!i", data[offset : offset + 4])[0]
    assert 0 < len(data) - offset < 40_100, "the pipe ends in a partly written frame"


def test_an_inbox_reads_every_channel_fairly():
    ctx = mp.get_context("spawn")
    a, b = Channel(ctx), Channel(ctx)
    for i in range(5):
        a.put(("a", i))
        b.put(("b", i))
    inbox = Inbox([a, b])
    got = [inbox.get(timeout=1) for _ in range(10)]
    assert [i for s, i in got if s == "a"] == list(range(5)) and [i for s, i in got if s == "b"] == list(range(5))
    assert {s for s, _ in got[:4]} == {"a", "b"}
    assert inbox.empty()
    with pytest.raises(queue.Empty):
        inbox.get(timeout=0.01)


class _Stop:
    @staticmethod
    def is_set() -> bool:
        return False


class _Shared:
    stop = _Stop()
    heartbeats = [0.0]


def test_the_slot_pool_recovers_lost_tokens_and_ignores_late_duplicates():
    ctx = mp.get_context("spawn")
    tokens = Channel(ctx)
    holders = ctx.RawArray("q", 3)
    holders[:] = [RELEASED, 7, RELEASED]  # slot 1 holds frame 7; slot 2's token was lost with a killed reader
    tokens.put(0)
    pool = SlotPool(tokens, holders)
    taken = {pool.take(8, wait=True, shared=_Shared, index=0), pool.take(9, wait=True, shared=_Shared, index=0)}
    assert taken == {0, 2} and holders[0] in (8, 9) and holders[2] in (8, 9)
    tokens.put(2)  # a token for slot 2 that was in flight when it was recovered: slot 2 is in use
    assert pool.take(10, wait=False, shared=_Shared, index=0) is None  # live: none free, drop the frame
    holders[1] = RELEASED  # the publisher frees slot 1 and its token is lost
    assert pool.take(11, wait=True, shared=_Shared, index=0) == 1 and holders[1] == 11
