"""privacy.unknowns: blur on a real run of the Hamilton clip, with a gallery that holds only Lin-Manuel
Miranda: the history keeps only Lin's tracks, no unknown track is saved, and in the annotated video
Alex Lacamoire (not enrolled) is pixelated out of recognition while Lin stays recognisable."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from stream.events.mot import read_mot
from stream.history.store import HistoryStore
from stream.images import read_image
from stream.photos import PhotoEmbedder
from tests.conftest import media_path

pytestmark = pytest.mark.slow

LIN, ALEX = "lin-manuel-miranda", "alex-lacamoire"
STRIDE = 2  # every frame: the photo detector finds Alex in the clip on few of them


def video_frames(path: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    """0-based frame index -> BGR frame, for the wanted frames."""
    cap = cv2.VideoCapture(str(path))
    out, index = {}, 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if index in wanted:
            out[index] = frame
        index += 1
    cap.release()
    return out


def face_at(embedder: PhotoEmbedder, frame: np.ndarray, box: tuple[float, ...]) -> np.ndarray:
    """The embedding (1, D) of the face the recogniser finds on ``frame`` centred inside ``box`` (x, y, w, h),
    the nearest to its centre; (0, D) when it finds none there (a neighbour's face is not this one)."""
    faces = embedder.faces(frame)
    x, y, w, h = box
    if not len(faces):
        return np.zeros((0, embedder.model.manifest.embedding_size), np.float32)
    centres = (faces.xyxy[:, :2] + faces.xyxy[:, 2:]) / 2
    inside = (centres[:, 0] >= x) & (centres[:, 0] <= x + w) & (centres[:, 1] >= y) & (centres[:, 1] <= y + h)
    if not inside.any():
        return np.zeros((0, embedder.model.manifest.embedding_size), np.float32)
    off = np.where(inside, np.hypot(centres[:, 0] - x - w / 2, centres[:, 1] - y - h / 2), np.inf)
    return embedder.embed(faces)[[int(np.argmin(off))]]


def test_a_blurred_run_keeps_and_shows_only_the_enrolled(cli, default_model, tmp_path):
    clip = media_path("short_hamilton_clip.mp4")
    gallery = tmp_path / "lin.npz"
    cli("enroll", "--gallery", gallery, "--name", LIN, media_path(f"{LIN}.png"), check=True)
    config = tmp_path / "private.yaml"
    unknowns = tmp_path / "unknowns"
    config.write_text(f"privacy:\n  unknowns: blur\noutput:\n  save_unknowns: {unknowns}\n  unknown_min_embeddings: 1\n"
                      "  unknown_min_score: 0.0\n")
    db, annotated, tracks = tmp_path / "history.db", tmp_path / "annotated.mp4", tmp_path / "tracks.txt"
    proc = cli("run", "--config", config, "--source", clip, "--gallery", gallery, "--history", db,
               "--annotate", annotated, "--tracks-out", tracks, "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]

    # the history: Lin's tracks only, nothing of the others
    with HistoryStore.open(db, create=False) as store:
        rows = store.tracks()
        assert rows and {r.identity for r in rows} == {LIN}, [(r.track_id, r.identity) for r in rows]
        assert all(r.stranger_id is None for r in rows)
        assert store.count() == len(rows)
    assert not unknowns.exists() or not any(unknowns.iterdir())

    # the annotated video: at each box of a face left unknown where the clip shows Alex, the
    # recogniser finds no Alex; where it shows Lin, it still finds Lin
    rows_by_frame: dict[int, list] = defaultdict(list)
    for frame, _, x, y, w, h, _, identity in read_mot(tracks):
        if (frame - 1) % STRIDE == 0:
            rows_by_frame[frame - 1].append(((x, y, w, h), identity))
    original = video_frames(clip, set(rows_by_frame))
    written = video_frames(annotated, set(rows_by_frame))
    assert set(written) == set(original)
    with PhotoEmbedder(default_model) as embedder:
        manifest = embedder.model.manifest
        alex = embedder.embed(embedder.faces(read_image(media_path(f"{ALEX}.png"))))
        seen: dict[str, int] = defaultdict(int)  # faces found at a box in the clip, by who
        kept: dict[str, int] = defaultdict(int)  # of those, found again (within the threshold) when annotated
        for index, faces in sorted(rows_by_frame.items()):
            for box, identity in faces:
                before = face_at(embedder, original[index], box)
                if not len(before):
                    continue
                who = identity or "unknown"
                if not identity and manifest.distances(before, alex).min() <= manifest.threshold:
                    who = ALEX
                seen[who] += 1
                after = face_at(embedder, written[index], box)
                kept[who] += bool(len(after)) and manifest.distances(after, before).min() <= manifest.threshold
    # every unknown face, Alex's among them, is gone from the annotated video; Lin's is there
    assert seen[ALEX] >= 3 and seen["unknown"] >= 10, dict(seen)
    assert kept[ALEX] == 0 and kept["unknown"] == 0, (dict(kept), dict(seen))
    assert seen[LIN] >= 10 and kept[LIN] >= 0.8 * seen[LIN], (dict(kept), dict(seen))
