"""privacy.unknowns: blur: the boxes hidden on each frame (stream/pipeline/privacy.py), on the
publisher's own frame views: unknown faces, a missed unknown face's last box while its track lives,
and nothing of a track from the frame it is named."""

from __future__ import annotations

import numpy as np

from stream.events.schema import Event
from stream.faces import Faces
from stream.pipeline.messages import FrameMsg
from stream.pipeline.observers import FrameView
from stream.pipeline.privacy import UnknownFaces
from stream.recognize.stage import FrameOutcome


def view(index: int, faces: list[tuple[int, str | None, list[float]]], source: str = "cam") -> FrameView:
    n = len(faces)
    found = Faces(xyxy=np.array([f[2] for f in faces], np.float32).reshape(-1, 4), score=np.ones(n, np.float32),
                  keypoints=np.zeros((n, 6, 2), np.float32), track_id=np.array([f[0] for f in faces], np.int64))
    outcome = FrameOutcome(events=[], tracks=[(f[0], f[1]) for f in faces], quality=np.full(n, np.nan), status=[])
    frame = FrameMsg(source=source, slot=0, index=index, pts=index / 25, capture_ts=0.0, height=360, width=640)
    return FrameView(frame, found, np.zeros(0, np.int64), np.zeros((0, 128), np.float32), outcome, ring=None)


A, B = [10, 10, 50, 60], [200, 20, 240, 70]


def test_unknown_faces_are_hidden_and_named_ones_are_not():
    hide = UnknownFaces(hold_frames=15)
    np.testing.assert_array_equal(hide.boxes(view(0, [(1, None, A), (2, "alice", B)])), [A])
    assert hide.boxes(view(1, [])).tolist() == [A]  # track 1 missed on this frame: its last box


def test_a_missed_face_is_held_while_its_track_lives_then_let_go():
    hide = UnknownFaces(hold_frames=3)
    hide.boxes(view(0, [(1, None, A)]))
    for index in (1, 2, 3):
        assert hide.boxes(view(index, [(2, "alice", B)])).tolist() == [A]
    assert hide.boxes(view(4, [])).shape == (0, 4)  # past tracker.max_age: the track is gone
    hide.boxes(view(5, [(3, None, B)]))
    hide.on_event(Event(type="track_ended", source="cam", track_id=3, ts=0.0))
    assert hide.boxes(view(6, [])).shape == (0, 4)


def test_a_track_is_hidden_until_it_is_named_and_per_source():
    hide = UnknownFaces(hold_frames=15)
    assert hide.boxes(view(0, [(1, None, A)])).tolist() == [A]
    assert hide.boxes(view(1, [(1, "alice", A)])).shape == (0, 4)  # named: shown from this frame on
    assert hide.boxes(view(2, [])).shape == (0, 4)  # and not held once missed
    hide.boxes(view(3, [(1, None, A)], source="other"))
    assert hide.boxes(view(4, [])).shape == (0, 4)  # another source's track: not on this source's frames
    hide.end_source("other")
    assert hide.boxes(view(5, [], source="other")).shape == (0, 4)
