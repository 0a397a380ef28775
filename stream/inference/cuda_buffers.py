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
    def event(self) -> Any: ...  # .record(stream), .synchronize()
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
    busy_rows: int = 0  # rows of the batch in flight, 0 when free

    def free(self) -> None:
        for alloc in (self.dev_in, self.dev_out):
            alloc.free()
        for host in (self.host_in, self.host_out):
            pinned = getattr(host, "base", None)  # pycuda's page-locked allocation behind the array
            if pinned is not None and hasattr(pinned, "free"):
                pinned.free()


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


def run_double_buffered(
    crops: np.ndarray,
    sets: list[BufferSet],
    max_batch: int,
    fill: Callable[[np.ndarray, np.ndarray], None],
    launch: Callable[[BufferSet, int], None],
    dim: int,
) -> np.ndarray:
    """Embed ``crops`` in chunks of ``max_batch``, alternating buffer sets.

    ``fill(chunk, host_in_view)`` preprocesses on the host; ``launch(set, rows)`` enqueues copy in,
    inference and copy out on the stream and records ``set.done``. While the GPU runs chunk k the
    host fills chunk k+1 into the other set; a set is reused only after its event completed and
    its results were copied out, so results come back in order and nothing is overwritten early.
    """
    out = np.empty((len(crops), dim), np.float32)
    pending: list[tuple[BufferSet, slice]] = []
    for k, part in enumerate(chunks(len(crops), max_batch)):
        buf = sets[k % len(sets)]
        if buf.busy_rows:
            _collect(pending, buf, out)
        rows = part.stop - part.start
        fill(crops[part], buf.host_in[:rows])
        launch(buf, rows)
        buf.busy_rows = rows
        pending.append((buf, part))
    while pending:
        _collect(pending, pending[0][0], out)
    return out


def _collect(pending: list[tuple[BufferSet, slice]], buf: BufferSet, out: np.ndarray) -> None:
    """Wait for ``buf`` (and anything queued before it) and copy its rows out, in order."""
    while pending:
        current, part = pending.pop(0)
        current.done.synchronize()
        out[part] = current.host_out[: part.stop - part.start]
        current.busy_rows = 0
        if current is buf:
            return
