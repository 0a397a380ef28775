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


def test_a_frame_is_matched_in_one_search_with_its_tracks_means(default_model):
    """Two faces a frame, each embedding just past the threshold but their tracks' means within it:
    the means decide both tracks (``appearance.aggregate``), and every frame's faces and means go to
    the gallery together, as one search (at 1M entries a search's fixed cost is what a frame pays)."""
    from stream.recognize.appearance import AppearanceConfig

    manifest = default_model.manifest
    rng = np.random.default_rng(4)
    ann, bob = rng.normal(0, 0.1, (2, 128)).astype(np.float32)
    searches = []

    class CountingGallery(Gallery):
        def match(self, queries):
            searches.append(len(queries))
            return super().match(queries)

    gallery = CountingGallery(manifest.name, manifest.embedding_space, manifest.metric, manifest.embedding_size)
    gallery.add("ann", ann[None])
    gallery.add("bob", bob[None])
    appearance = AppearanceConfig(aggregate=True, split_factor=2.0)  # noisy embeddings, not another face
    stage = RecognitionStage(manifest, gallery, VotingConfig(min_votes=3), appearance=appearance)

    def off_by(person: np.ndarray, distance: float) -> np.ndarray:
        step = rng.normal(0, 1, 128).astype(np.float32)
        return person + step * (distance / np.linalg.norm(step))

    events = []
    for frame in range(5):
        one, two = _face(1, off_by(ann, 0.65)), _face(2, off_by(bob, 0.65), x=300)
        faces = Faces(np.concatenate([one.xyxy, two.xyxy]), [0.9, 0.9],
                      np.concatenate([one.keypoints, two.keypoints]), track_id=[1, 2],
                      embeddings=np.concatenate([one.embeddings, two.embeddings]))
        events += stage.process(FrameResult("cam1", frame, frame / 30, 0.0, faces, np.array([True, True]))).events
    assert searches == [2, 2, 4, 4, 4]  # from the 3rd embedding on, each track's mean is matched too
    assert [(e.track_id, e.identity) for e in events if e.type == "identity"] == [(1, "ann"), (2, "bob")]
    assert all(s.votes.by_aggregate for s in stage.tracks.values())
