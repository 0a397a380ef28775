"""The built-in demo: its clip and a gallery of its one person, made through the photo path once."""

from __future__ import annotations

import cv2
import numpy as np

from stream.demo import DEMO_NAME, FRAMES, SIZE, demo_photo, ensure_demo
from stream.photos import PhotoEmbedder
from stream.recognize.gallery import Gallery


def test_the_demo_is_made_once_and_knows_the_person_in_its_clip(tmp_path, default_model):
    video, gallery_path = ensure_demo(tmp_path, default_model.name)
    made = (video.stat().st_mtime_ns, gallery_path.stat().st_mtime_ns)
    assert ensure_demo(tmp_path, default_model.name) == (video, gallery_path)
    assert (video.stat().st_mtime_ns, gallery_path.stat().st_mtime_ns) == made  # the second call reuses both

    gallery = Gallery.load(gallery_path, default_model.manifest)
    assert gallery.identities() == [DEMO_NAME] and gallery.sources == [str(demo_photo())]

    cap = cv2.VideoCapture(str(video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    cap.set(cv2.CAP_PROP_POS_FRAMES, FRAMES // 2)  # mid-clip: zoomed, tilted, dimmed
    ok, frame = cap.read()
    cap.release()
    assert ok and (frame.shape[1], frame.shape[0]) == SIZE
    with PhotoEmbedder(default_model) as photos:
        embeddings = photos.embed(photos.faces(frame))
    assert len(embeddings) == 1
    names, _ = gallery.match(np.asarray(embeddings))
    assert names == [DEMO_NAME]
