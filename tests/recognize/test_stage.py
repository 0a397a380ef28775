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
    events = []
    box = np.array([[10, 10, 110, 110]], np.float32)
    for frame in range(6):
        faces = Faces(box, [0.9], np.zeros((1, NUM_KEYPOINTS, 2)), track_id=[4], embeddings=ann + 0.01)
        events += stage.process(FrameResult("cam1", frame, frame / 30, 0.0, faces, np.array([True])))
    unknown = Faces(box, [0.9], np.zeros((1, NUM_KEYPOINTS, 2)), track_id=[9], embeddings=np.full((1, 128), np.nan))
    events += stage.process(FrameResult("cam1", 6, 0.2, 0.0, unknown, np.array([False]),
                                        [EndedTrack(4, 0, 5, 6, (10, 10, 110, 110))]))
    events += stage.flush("cam1")
    kinds = [(e.type, e.track_id, e.identity) for e in events]
    assert kinds == [("track_started", 4, None), ("identity", 4, "ann"), ("track_started", 9, None),
                     ("track_ended", 4, "ann"), ("track_ended", 9, None)]
    identity = events[1]
    assert identity.frame == 2 and identity.source == "cam1" and identity.bbox == [10, 10, 110, 110]
    assert events[3].votes["counts"] == {"ann": 6}
    assert stage.take_status_updates() == [(4, True)]
    assert stage.label(4) == "#4 unknown"  # ended: forgotten
