from __future__ import annotations

import queue

import pytest

from stream.pipeline.batching import collect_batch


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def feeder(items, clock, step=0.0):
    """A get(timeout) over a list where each item arrives ``step`` seconds after the previous."""
    pending = list(items)

    def get(timeout):
        if not pending or step > timeout:
            clock.now += timeout
            raise queue.Empty
        clock.now += step
        return pending.pop(0)

    return get


@pytest.mark.parametrize(
    ("sizes", "max_batch", "expected_len"),
    [
        ([4, 4, 4, 4], 8, 2),  # full batch leaves at once
        ([4, 4, 4, 4], 100, 4),  # partial batch: everything until the queue runs dry
        ([0, 4, 4], 8, 1),  # a crop-less first item leaves alone, without waiting
        ([40], 8, 1),  # an oversized item is never split here (the engine splits)
        ([], 8, 0),
    ],
)
def test_collect_batch_sizes(sizes, max_batch, expected_len):
    clock = FakeClock()
    batch = collect_batch(feeder(sizes, clock), lambda n: n, max_batch, max_wait_s=1.0, clock=clock)
    assert len(batch) == expected_len


def test_partial_batch_leaves_when_first_item_waited_max_wait():
    clock = FakeClock()
    # each item arrives 4 ms after the previous; max wait 10 ms -> first + 2 more (t=4, 8), not t=12
    batch = collect_batch(feeder([1] * 10, clock, step=0.004), lambda n: n, 32, max_wait_s=0.010, clock=clock)
    assert len(batch) == 3


def test_order_is_preserved():
    clock = FakeClock()
    batch = collect_batch(feeder([1, 2, 3], clock), lambda n: 1, 3, max_wait_s=1.0, clock=clock)
    assert batch == [1, 2, 3]
