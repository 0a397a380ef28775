"""Page-locked host and device buffers for the TensorRT engine, and the double-buffered schedule.

The pycuda calls are confined to ``PyCudaBackend``; everything else (sizes, which buffer set a
batch uses, when a set is free again, the order results come back in) is plain logic, tested with
a stand-in backend on machines without a GPU. Buffers are sized once from the profile's max batch
and the manifest, then reused for every call; ``free()`` releases them explicitly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)


class CudaBackend(Protocol):
    def pinned(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray: ...
    def device(self, nbytes: int) -> Any: ...  # an allocation with int(alloc) = device pointer, .free()
    def stream(self) -> Any: ...  # .handle, .synchronize()
    def event(self) -> Any: ...  # .record(stream), .synchronize(), .query() -> bool (complete)
    def htod(self, dst: Any, src: np.ndarray, stream: Any) -> None: ...
    def dtoh(self, dst: np.ndarray, src: Any, stream: Any) -> None: ...


class PyCudaBackend:
    """The real thing: pycuda inside the process that pushed the CUDA context."""

    def __init__(self) -> None:
        import pycuda.driver as cuda

        self.cuda = cuda

    def pinned(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        return self.cuda.pagelocked_empty(shape, dtype)

    def device(self, nbytes: int) -> Any:
        return self.cuda.mem_alloc(nbytes)

    def stream(self) -> Any:
        return self.cuda.Stream()

    def event(self) -> Any:
        return self.cuda.Event()

    def htod(self, dst: Any, src: np.ndarray, stream: Any) -> None:
        self.cuda.memcpy_htod_async(dst, src, stream)

    def dtoh(self, dst: np.ndarray, src: Any, stream: Any) -> None:
        self.cuda.memcpy_dtoh_async(dst, src, stream)


@dataclass(eq=False)  # identity, not array equality, tells sets apart
class BufferSet:
    """One batch in flight: pinned input/output on the host, the same on the device, an event."""

    host_in: np.ndarray  # (max_batch, C, H, W) float32, page-locked
    host_out: np.ndarray  # (max_batch, D) float32, page-locked
    dev_in: Any
    dev_out: Any
    done: Any  # event recorded after this set's device->host copy
    in_flight: InFlight | None = None  # the batch launched on this set and not yet read back

    def free(self) -> None:
        for alloc in (self.dev_in, self.dev_out):
            alloc.free()
        for host in (self.host_in, self.host_out):
            pinned = getattr(host, "base", None)  # pycuda's page-locked allocation behind the array
            if pinned is not None and hasattr(pinned, "free"):
                pinned.free()


class InFlight:
    """A batch launched on a buffer set. ``result()`` waits for its event once and copies the rows
    out of the pinned buffer, which frees the set for the next batch."""

    def __init__(self, buf: BufferSet, rows: int) -> None:
        self.buf, self.rows = buf, rows
        self._out: np.ndarray | None = None

    def done(self) -> bool:
        return self._out is not None or bool(self.buf.done.query())

    def result(self) -> np.ndarray:
        if self._out is None:
            self.buf.done.synchronize()
            self._out = self.buf.host_out[: self.rows].copy()
            self.buf.in_flight = None
        return self._out


def buffer_shapes(max_batch: int, channels: int, height: int, width: int, dim: int) -> tuple[tuple, tuple]:
    return (max_batch, channels, height, width), (max_batch, dim)


def allocate(backend: CudaBackend, max_batch: int, input_chw: tuple[int, int, int], dim: int,
             sets: int = 2) -> list[BufferSet]:
    in_shape, out_shape = buffer_shapes(max_batch, *input_chw, dim)
    out = []
    for _ in range(sets):
        host_in = backend.pinned(in_shape, np.float32)
        host_out = backend.pinned(out_shape, np.float32)
        out.append(BufferSet(host_in, host_out, backend.device(host_in.nbytes), backend.device(host_out.nbytes),
                             backend.event()))
    log.info("allocated %d buffer sets: input %s, output %s float32 (%.1f MB pinned + device)", sets, in_shape,
             out_shape, sets * 2 * (np.prod(in_shape) + np.prod(out_shape)) * 4 / 1e6)
    return out


def chunks(n: int, max_batch: int) -> Iterator[slice]:
    for start in range(0, n, max_batch):
        yield slice(start, min(start + max_batch, n))


def launch_on(buf: BufferSet, chunk: np.ndarray, fill: Callable[[np.ndarray, np.ndarray], None],
              launch: Callable[[BufferSet, int], None]) -> InFlight:
    """Preprocess ``chunk`` into ``buf`` and enqueue it; waits first if ``buf`` still holds a batch.

    ``fill(chunk, host_in_view)`` preprocesses on the host; ``launch(set, rows)`` enqueues copy in,
    inference and copy out on the stream and records ``set.done``. The set's previous batch is
    read back (and kept by its ``InFlight``) before its pinned input is overwritten.
    """
    if buf.in_flight is not None:
        buf.in_flight.result()
    rows = len(chunk)
    fill(chunk, buf.host_in[:rows])
    launch(buf, rows)
    buf.in_flight = InFlight(buf, rows)
    return buf.in_flight


def run_double_buffered(
    crops: np.ndarray,
    sets: list[BufferSet],
    max_batch: int,
    fill: Callable[[np.ndarray, np.ndarray], None],
    launch: Callable[[BufferSet, int], None],
    dim: int,
) -> np.ndarray:
    """Embed ``crops`` in chunks of ``max_batch``, alternating buffer sets.

    While the GPU runs chunk k the host fills chunk k+1 into the other set; a set is refilled only
    after its batch was read back, and results are assembled in input order.
    """
    out = np.empty((len(crops), dim), np.float32)
    launched = [(launch_on(sets[k % len(sets)], crops[part], fill, launch), part)
                for k, part in enumerate(chunks(len(crops), max_batch))]
    for flight, part in launched:
        out[part] = flight.result()
    return out
