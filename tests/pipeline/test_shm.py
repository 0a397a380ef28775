from __future__ import annotations

import multiprocessing as mp
import os

import numpy as np
import pytest

from stream.pipeline.shm import FrameRing, RingLayout, unlink_quietly


def layout(name: str) -> RingLayout:
    return RingLayout(name=name, slots=3, max_height=48, max_width=64, max_faces=2, crop_height=8, crop_width=8)


def _child_writes(lay: RingLayout) -> None:
    ring = FrameRing.attach(lay)
    ring.frame(1, 48, 64)[...] = 7
    ring.crops(1)[1] = 9
    ring.close()


@pytest.mark.slow
def test_frames_and_crops_cross_a_spawned_process_without_pickling_pixels():
    lay = layout(f"fs-test-{os.getpid()}-a")
    ring = FrameRing.create(lay)
    try:
        proc = mp.get_context("spawn").Process(target=_child_writes, args=(lay,))
        proc.start()
        proc.join(30)
        assert proc.exitcode == 0
        assert (ring.frame(1, 48, 64) == 7).all()
        assert (ring.crops(1)[1] == 9).all()
        assert (ring.frame(0, 48, 64) == 0).all(), "other slots untouched"
        # The child only closed: the segment must still exist for the owner.
        assert (ring.crops(1)[0] == 0).all()
    finally:
        ring.close()
        ring.unlink()
    assert not unlink_quietly(lay.name), "owner unlinked the segment"


def test_slots_do_not_overlap_and_are_aligned():
    lay = layout(f"fs-test-{os.getpid()}-b")
    ring = FrameRing.create(lay)
    try:
        for slot in range(lay.slots):
            ring.frame(slot, 48, 64)[...] = slot + 1
            ring.crops(slot)[...] = 100 + slot
        for slot in range(lay.slots):
            assert (ring.frame(slot, 48, 64) == slot + 1).all()
            assert (ring.crops(slot) == 100 + slot).all()
        assert lay.slot_bytes % 64 == 0
        smaller = ring.frame(0, 10, 20)
        assert smaller.shape == (10, 20, 3)
    finally:
        ring.close()
        ring.unlink()


def test_bad_slot_and_oversize_frame_raise():
    lay = layout(f"fs-test-{os.getpid()}-c")
    ring = FrameRing.create(lay)
    try:
        with pytest.raises(IndexError):
            ring.frame(3, 48, 64)
        with pytest.raises(ValueError, match="exceeds ring max"):
            ring.frame(0, 49, 64)
    finally:
        ring.close()
        ring.unlink()


def _child_tries_unlink(lay: RingLayout) -> None:
    ring = FrameRing.attach(lay)
    try:
        ring.unlink()
    except RuntimeError:
        raise SystemExit(0) from None
    finally:
        ring.close()
    raise SystemExit(1)


@pytest.mark.slow
def test_attached_ring_cannot_unlink():
    lay = layout(f"fs-test-{os.getpid()}-d")
    owner = FrameRing.create(lay)
    try:
        proc = mp.get_context("spawn").Process(target=_child_tries_unlink, args=(lay,))
        proc.start()
        proc.join(30)
        assert proc.exitcode == 0
        np.testing.assert_array_equal(owner.frame(0, 1, 1), np.zeros((1, 1, 3)))
    finally:
        owner.close()
        owner.unlink()
