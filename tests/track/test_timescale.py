"""Settings counted in frames keep their meaning in time at a lower processing rate."""

from __future__ import annotations

import numpy as np
import pytest

from stream.faces import NUM_KEYPOINTS, Faces
from stream.recognize.voting import TrackVotes, VotingConfig
from stream.track.cadence import EmbeddingCadence
from stream.track.sort import SortTracker, TrackerConfig
from stream.track.timescale import processed_frames


def faces(*boxes) -> Faces:
    arr = np.array(boxes, np.float32).reshape(-1, 4)
    return Faces(arr, np.ones(len(arr)), np.zeros((len(arr), NUM_KEYPOINTS, 2)))


BOX = (100, 100, 160, 160)


@pytest.mark.parametrize(("frames", "step", "least", "expected"), [
    (15, 1.0, 0, 15), (15, 3.0, 0, 5), (15, 2.5, 0, 6), (3, 3.0, 1, 1), (1, 3.0, 1, 1), (0, 3.0, 0, 0),
    (3, 30.0, 1, 1), (3, 30.0, 0, 0), (10, 1.0, 1, 10),
])
def test_processed_frames(frames, step, least, expected):
    assert processed_frames(frames, step, least) == expected


def unseen_until_ended(tracker: SortTracker) -> int:
    """Updates without the face until its track ends."""
    tracker.update(faces(BOX))
    for n in range(1, 100):
        tracker.update(faces())
        if tracker.pop_ended():
            return n
    raise AssertionError("the track never ended")


@pytest.mark.parametrize(("step", "updates"), [(1.0, 16), (3.0, 6), (1.5, 11)])
def test_a_track_ends_after_the_same_time_unseen_at_any_rate(step, updates):
    # max_age 15 frames at the source's rate: 16 frames at 30 fps, 6 processed frames (18 source) at 10 fps
    assert unseen_until_ended(SortTracker(TrackerConfig(max_age=15), frame_step=step)) == updates


def test_confirmation_and_closer_looks_in_source_frames():
    full, tenth = SortTracker(TrackerConfig(min_hits=3)), SortTracker(TrackerConfig(min_hits=3), frame_step=3.0)
    ids = [full.update(faces(BOX)).track_id[0], tenth.update(faces(BOX)).track_id[0]]
    assert not full.confirmed(int(ids[0])) and tenth.confirmed(int(ids[1]))  # 3 frames = 1 at a third of the rate
    # the closer look follows a track unseen for 5 source frames: 2 processed frames at a third of the rate
    for _ in range(3):
        tenth.update(faces())
    assert len(tenth.predicted_boxes()) == 0
    assert full.look_max_misses == 5 and tenth.look_max_misses == 2


def test_full_rate_is_unchanged():
    tracker = SortTracker(TrackerConfig(max_age=15, min_hits=3))
    assert (tracker.max_age, tracker.min_hits, tracker.look_max_misses) == (15, 3, 5)
    voting = VotingConfig()
    assert voting.at_frame_step(1.0) is voting


def test_re_embedding_counts_source_frames():
    # Frame numbers are the source's, skipped frames included: every 10 frames is every 10 frames of
    # the source, whether each frame or every third is processed.
    cadence = EmbeddingCadence(10)
    cadence.select(np.array([7]), 0)
    cadence.mark(7, True)
    due = [i for i in range(3, 40, 3) if cadence.select(np.array([7]), i)[0]]
    assert due == [12, 24, 36]


def test_votes_decide_in_the_same_time_at_a_third_of_the_rate():
    config = VotingConfig(min_votes=3, decay=0.97)
    tenth = config.at_frame_step(3.0)
    assert tenth.min_votes == 2  # a name never rests on one observation when the setting asks for more
    assert tenth.decay == pytest.approx(0.97 ** 3)
    assert VotingConfig(min_votes=6).at_frame_step(3.0).min_votes == 2
    assert VotingConfig(min_votes=1).at_frame_step(3.0).min_votes == 1
    # a match every frame: named at the 3rd observation at full rate, the 2nd at a third of the rate
    for cfg, named_at in ((config, 3), (tenth, 2)):
        votes = TrackVotes(cfg, threshold=0.6)
        changes = [votes.observe("ana", 0.3, 100) for _ in range(4)]
        assert changes.index(True) + 1 == named_at


def test_evidence_fades_in_the_same_time():
    # after 30 source frames of other evidence, old evidence weighs the same share at either rate
    full, tenth = VotingConfig(decay=0.97), VotingConfig(decay=0.97).at_frame_step(3.0)
    assert full.decay ** 30 == pytest.approx(tenth.decay ** 10)
