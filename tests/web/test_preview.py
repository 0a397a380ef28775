"""The preview board: what the publisher writes is what the web side reads, whole or not at all."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest

from stream.web.preview import PreviewBoard, PreviewLayout


@pytest.fixture
def board():
    b = PreviewBoard.create(PreviewLayout(f"fs-test-{uuid.uuid4().hex[:8]}", 120, 160))
    yield b
    b.close()


def test_a_frame_and_its_overlay_come_back_whole(board):
    image = np.random.default_rng(0).integers(0, 255, (100, 150, 3), np.uint8)
    overlay = [{"box": [1, 2, 30, 40], "label": "#1 alice", "identity": "alice", "track_id": 1}]
    assert board.read() is None  # nothing written yet
    board.write(image, overlay, index=7, capture_ts=123.5)
    got = board.read()
    assert got is not None and got.index == 7 and got.capture_ts == 123.5 and got.overlay == overlay
    assert np.array_equal(got.image, image)
    assert board.read(after_seq=got.seq) is None  # nothing newer


def test_a_read_during_a_write_gets_nothing_rather_than_half_a_frame(board):
    board.write(np.zeros((10, 10, 3), np.uint8), [], 0, 0.0)
    board._seq[0] += 1  # the state of the board while the publisher is inside write()
    assert board.read() is None
    board._seq[0] += 1
    assert board.read() is not None


def test_the_publisher_writes_only_while_someone_watches_and_no_faster_than_asked(board):
    now = time.time()
    assert not board.wanted(10, now)  # no viewer
    attached = PreviewBoard.attach(board.layout)  # the web side is another process in a run
    try:
        attached.want(for_s=2.0)
        assert board.wanted(10, now)
        board.write(np.zeros((10, 10, 3), np.uint8), [], 0, 0.0)
        assert not board.wanted(10, time.time())  # 1/10 s has not passed
        assert board.wanted(10, time.time() + 0.11)
        assert not board.wanted(10, time.time() + 2.5)  # the viewer stopped asking
    finally:
        attached.close()


def test_a_frame_larger_than_the_board_is_refused(board):
    with pytest.raises(ValueError, match="exceeds"):
        board.write(np.zeros((121, 160, 3), np.uint8), [], 0, 0.0)
