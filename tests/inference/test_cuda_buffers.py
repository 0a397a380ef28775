"""Buffer sizing and the double-buffered schedule, with a stand-in for the GPU (none exists here).

This checks the logic around pycuda, not pycuda or a GPU: see the GPU tests for that.
"""

from __future__ import annotations

import numpy as np
import pytest

from stream.inference.cuda_buffers import allocate, buffer_shapes, chunks, launch_on, run_double_buffered


class FakeAlloc:
    def __init__(self, nbytes: int, log: list) -> None:
        self.nbytes, self.log, self.freed = nbytes, log, False
        self.data = np.zeros(nbytes // 4, np.float32)

    def __int__(self) -> int:
        return id(self)

    def free(self) -> None:
        self.freed = True


class FakeEvent:
    def __init__(self, log: list) -> None:
        self.log, self.pending = log, None

    def record(self, stream) -> None:
        self.pending = stream.queue.copy()
        stream.queue.clear()

    def synchronize(self) -> None:
        for op in self.pending or []:
            op()
        self.log.append("sync")
        self.pending = None

    def query(self) -> bool:
        return self.pending is None  # this "GPU" works only when someone waits for it


class FakeStream:
    handle = 1

    def __init__(self) -> None:
        self.queue: list = []


class FakeBackend:
    """Queues copies on the stream and runs them when an event is synchronized, like a GPU would."""

    def __init__(self) -> None:
        self.log: list = []

    def pinned(self, shape, dtype):
        self.log.append(("pinned", shape))
        return np.zeros(shape, dtype)

    def device(self, nbytes):
        return FakeAlloc(nbytes, self.log)

    def stream(self):
        return FakeStream()

    def event(self):
        return FakeEvent(self.log)

    def htod(self, dst, src, stream):
        stream.queue.append(lambda: dst.data.__setitem__(slice(0, src.size), src.ravel()))

    def dtoh(self, dst, src, stream):
        stream.queue.append(lambda: dst.ravel().__setitem__(slice(None), src.data[: dst.size]))


def test_shapes_and_allocation_from_profile_max_and_manifest(default_model):
    m = default_model.manifest
    backend = FakeBackend()
    sets = allocate(backend, 64, (3, m.input.height, m.input.width), m.embedding_size)
    assert len(sets) == 2
    assert sets[0].host_in.shape == (64, 3, 150, 150) and sets[0].host_out.shape == (64, 128)
    assert sets[0].dev_in.nbytes == 64 * 3 * 150 * 150 * 4 and sets[0].dev_out.nbytes == 64 * 128 * 4
    assert buffer_shapes(8, 3, 160, 160, 512) == ((8, 3, 160, 160), (8, 512))
    for s in sets:
        s.free()
    assert all(s.dev_in.freed and s.dev_out.freed for s in sets)


@pytest.mark.parametrize(("n", "max_batch", "expected"), [(0, 8, []), (5, 8, [5]), (16, 8, [8, 8]), (17, 8, [8, 8, 1])])
def test_chunks(n, max_batch, expected):
    assert [s.stop - s.start for s in chunks(n, max_batch)] == expected


@pytest.mark.parametrize("n", [1, 7, 8, 9, 30])
def test_double_buffered_results_come_back_in_order(n):
    backend = FakeBackend()
    stream = backend.stream()
    sets = allocate(backend, 4, (1, 1, 2), 2)
    launches: list[int] = []

    def fill(chunk, host_in):
        host_in[...] = chunk.reshape(host_in.shape)

    def launch(buf, rows):
        launches.append(next(i for i, s in enumerate(sets) if s is buf))
        # the "network": copy in, y = [sum(x), first(x)], copy out
        backend.htod(buf.dev_in, buf.host_in[:rows], stream)

        def compute(buf=buf, rows=rows):
            x = buf.dev_in.data[: rows * 2].reshape(rows, 2)
            buf.dev_out.data[: rows * 2] = np.stack([x.sum(1), x[:, 0]], 1).ravel()

        stream.queue.append(compute)
        backend.dtoh(buf.host_out[:rows], buf.dev_out, stream)
        buf.done.record(stream)

    crops = np.arange(n * 2, dtype=np.float32).reshape(n, 1, 1, 2)
    out = run_double_buffered(crops, sets, 4, fill, launch, 2)
    flat = crops.reshape(n, 2)
    np.testing.assert_array_equal(out, np.stack([flat.sum(1), flat[:, 0]], 1))
    assert launches == [k % 2 for k in range(len(launches))], "sets alternate"


def test_a_set_is_not_refilled_before_its_results_are_read():
    backend = FakeBackend()
    sets = allocate(backend, 2, (1, 1, 1), 1)
    events: list[str] = []

    def fill(chunk, host_in):
        events.append(f"fill{int(chunk[0, 0, 0, 0])}")
        host_in[...] = chunk.reshape(host_in.shape)

    def launch(buf, rows):
        buf.host_out[:rows] = buf.host_in[:rows].reshape(rows, 1)  # "computed" at once
        tag = f"done{len(events)}"
        buf.done.pending = [lambda: events.append(tag)]

    crops = np.arange(8, dtype=np.float32).reshape(8, 1, 1, 1)  # 4 chunks of 2 over 2 sets
    out = run_double_buffered(crops, sets, 2, fill, launch, 1)
    np.testing.assert_array_equal(out[:, 0], np.arange(8))
    # chunk 2 reuses set 0: chunk 0 must be collected (done) before chunk 2 is filled
    assert events.index("fill4") > events.index(next(e for e in events if e.startswith("done")))


def test_launched_batches_stay_readable_after_their_set_is_reused():
    backend = FakeBackend()
    stream = backend.stream()
    sets = allocate(backend, 2, (1, 1, 1), 1)

    def fill(chunk, host_in):
        host_in[...] = chunk.reshape(host_in.shape)

    def launch(buf, rows):
        backend.htod(buf.dev_in, buf.host_in[:rows], stream)
        backend.dtoh(buf.host_out[:rows], buf.dev_in, stream)  # the "network" is the identity
        buf.done.record(stream)

    batch = [np.full((2, 1, 1, 1), k, np.float32) for k in range(3)]
    first = launch_on(sets[0], batch[0], fill, launch)
    second = launch_on(sets[1], batch[1], fill, launch)
    assert not first.done() and not second.done(), "both in flight: the host did not wait"
    third = launch_on(sets[0], batch[2], fill, launch)  # set 0 again: the first batch is read back first
    assert first.done() and sets[0].in_flight is third
    for flight, k in ((third, 2), (second, 1), (first, 0)):
        np.testing.assert_array_equal(flight.result()[:, 0], [k, k])
    assert sets[0].in_flight is None and sets[1].in_flight is None
