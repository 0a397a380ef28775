from __future__ import annotations

import numpy as np

from stream.faces import NUM_KEYPOINTS, Faces
from stream.recognize.gallery import Gallery
from stream.recognize.stage import FrameResult, RecognitionStage
from stream.recognize.voting import VotingConfig
from stream.track.sort import EndedTrack


def test_events_for_a_track_life(default_model):
    manifest = default_model.manifest
    ann = np.full((1, 128), 0.05, np.float32)
    gallery = Gallery.new(manifest)
    gallery.add("ann", ann)
    stage = RecognitionStage(manifest, gallery, VotingConfig(min_votes=3))
    events, status = [], []
    box = np.array([[10, 10, 110, 110]], np.float32)
    for frame in range(6):
        faces = Faces(box, [0.9], np.zeros((1, NUM_KEYPOINTS, 2)), track_id=[4], embeddings=ann + 0.01)
        out = stage.process(FrameResult("cam1", frame, frame / 30, 0.0, faces, np.array([True])))
        events += out.events
        status += out.status
    unknown = Faces(box, [0.9], np.zeros((1, NUM_KEYPOINTS, 2)), track_id=[9], embeddings=np.full((1, 128), np.nan))
    out = stage.process(FrameResult("cam1", 6, 0.2, 0.0, unknown, np.array([False]),
                                    [EndedTrack(4, 0, 5, 6, (10, 10, 110, 110))]))
    events += out.events
    status += out.status
    # Every new track starts unconfident (the detect worker may hold its id as confident), then calms.
    assert status == [(4, False), (4, True), (9, False)]
    # What the publisher needs comes back with the frame: ids, names, quality (NaN: not embedded).
    assert out.tracks == [(2, None)] and out.labels == ["#2 unknown"] and np.isnan(out.quality).all()
    events += stage.flush("cam1")
    kinds = [(e.type, e.track_id, e.identity) for e in events]
    # Published ids are the stage's own (1, 2, ...), not the tracker's (4, 9).
    assert kinds == [("track_started", 1, None), ("identity", 1, "ann"), ("track_started", 2, None),
                     ("track_ended", 1, "ann"), ("track_ended", 2, None)]
    assert [e.reason for e in events if e.type == "track_ended"] == ["lost", "end_of_source"]
    identity = events[1]
    assert identity.frame == 2 and identity.source == "cam1" and identity.bbox == [10, 10, 110, 110]
    assert events[3].votes["counts"] == {"ann": 6}
    assert stage.take_status_updates() == []  # nothing about ended tracks is left to send
    assert stage.tracks == {}  # ended: forgotten


def _face(tid: int, embedding: np.ndarray, x: float = 10) -> Faces:
    box = np.array([[x, 10, x + 100, 110]], np.float32)
    kps = np.array([[[x + 30, 40], [x + 70, 40], [x + 50, 60], [x + 50, 85], [x + 10, 50], [x + 90, 50]]])
    return Faces(box, [0.9], kps, track_id=[tid], embeddings=embedding[None])


def test_a_track_that_takes_another_face_is_split_and_the_name_stays_behind(default_model):
    """The tracker hands track 7 from ann to bob (a crossing): ann's name must not go with it."""
    manifest = default_model.manifest
    rng = np.random.default_rng(0)
    ann, bob = rng.normal(0, 0.1, (2, 128)).astype(np.float32)
    gallery = Gallery.new(manifest)
    gallery.add("ann", ann[None])
    gallery.add("bob", bob[None])
    assert np.linalg.norm(ann - bob) > 1.25 * manifest.threshold
    stage = RecognitionStage(manifest, gallery, VotingConfig(min_votes=3))
    events, names, status = [], [], []
    for frame in range(12):
        person = ann if frame < 6 else bob
        out = stage.process(FrameResult("cam1", frame, frame / 30, 0.0, _face(7, person + 0.01), np.array([True])))
        events += out.events
        status += out.status
        names.append(out.tracks[0])
        assert out.quality.shape == (1,) and out.quality[0] > 0
    kinds = [(e.type, e.track_id, e.identity, e.reason) for e in events]
    assert kinds == [("track_started", 1, None, None), ("identity", 1, "ann", None),
                     ("track_ended", 1, "ann", "appearance_changed"), ("track_started", 2, None, None),
                     ("identity", 2, "bob", None)]
    assert [n for _, n in names[6:]].count("ann") == 0  # never shown with ann's name
    assert stage.counts["splits"] == 1
    assert status[-2:] == [(7, False), (7, True)]  # re-embedded every frame, then calm


def test_a_turned_face_of_the_same_person_does_not_split(default_model):
    manifest = default_model.manifest
    rng = np.random.default_rng(1)
    ann = rng.normal(0, 0.1, 128).astype(np.float32)
    gallery = Gallery.new(manifest)
    gallery.add("ann", ann[None])
    stage = RecognitionStage(manifest, gallery, VotingConfig(min_votes=3))
    for frame in range(10):
        # same-person spread: ~0.5 from the mean, inside the 0.75 split distance
        noisy = ann + rng.normal(0, 0.5 / np.sqrt(128), 128).astype(np.float32)
        stage.process(FrameResult("cam1", frame, 0.0, 0.0, _face(3, noisy), np.array([True])))
    assert stage.counts["splits"] == 0 and stage.counts["tracks"] == 1
