"""A small video-pair set from the Hamilton clip, in YouTube Faces' layout, and as saved tracks.

Who is where comes from tests/support/eval_dataset.py (labelled by eye): each person's span of the
clip is cut into "videos" of consecutive frames, ROOT/<person>/<video number>/<frame>.jpg, each
frame the whole frame when that person's face is the largest in it, else a head patch around it
(so eval's largest-face rule picks the person). Lin-Manuel Miranda gets 6 videos (frames 90-209),
Barack Obama 3 (215-274), Alex Lacamoire 2 (24-36 and 76-84): 15 + 3 + 1 = 19 matched video pairs.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np

from tests.support.eval_dataset import _iou, _patch, _who
from tests.support.scenes import clip_frames

SEGMENTS = {
    "lin-manuel-miranda": [(90 + 20 * k, 109 + 20 * k) for k in range(6)],
    "obama": [(215, 234), (235, 254), (255, 274)],
    "alex-lacamoire": [(24, 36), (76, 84)],
}


def build_video_set(root: Path, per_video: int = 6, every: int = 2) -> dict[str, int]:
    """Write the frames; returns frames per video ``person/number``."""
    from stream.detect import FaceDetector
    from stream.photos import choose_face

    where = {i: (person, k) for person, spans in SEGMENTS.items() for k, (lo, hi) in enumerate(spans)
             for i in range(lo, hi + 1)}
    counts: dict[str, int] = {}
    with FaceDetector() as detector:
        for index, frame in clip_frames(1):
            if index not in where or index % every:
                continue
            person, video = where[index]
            name = f"{person}/{video}"
            if counts.get(name, 0) >= per_video:
                continue
            for box in detector.detect(frame).xyxy:
                if _who(index, box) != person:
                    continue
                for image, expected in ((frame, box), _patch(frame, box)):
                    found = detector.detect(image)
                    chosen = choose_face(found, image.shape, "largest")
                    if chosen is not None and _iou(found.xyxy[chosen], expected) >= 0.5:
                        (root / name).mkdir(parents=True, exist_ok=True)
                        cv2.imwrite(str(root / name / f"{index}.jpg"), image)
                        counts[name] = counts.get(name, 0) + 1
                        break
                break
    return counts


def write_splits(root: Path, counts: dict[str, int], seed: int = 0) -> Path:
    """YTF's splits.txt: a header, then 10 splits of one matched and one mismatched pair, each line
    ``split, person/n1, person/n2, same-name, is_same`` as YTF writes them."""
    videos = sorted(counts)
    same = [(a, b) for a, b in itertools.combinations(videos, 2) if a.split("/")[0] == b.split("/")[0]]
    diff = [(a, b) for a, b in itertools.combinations(videos, 2) if a.split("/")[0] != b.split("/")[0]]
    rng = np.random.default_rng(seed)
    same = [same[i] for i in rng.permutation(len(same))[:10]]
    diff = [diff[i] for i in rng.permutation(len(diff))[:10]]
    lines = ["split number, first name, second name, first name = second name, is same"]
    for split in range(10):
        lines.append(f"{split + 1}, {same[split][0]}, {same[split][1]}, 1, 1")
        lines.append(f"{split + 1}, {diff[split][0]}, {diff[split][1]}, 0, 0")
    path = root / "splits.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_tracks(root: Path, videos: Path, model) -> dict[str, str]:
    """Each video of the set as a saved track, written by `run`'s own recorder (UnknownsRecorder):
    the face aligned to ``model``'s template and embedded, the crops kept by a quality that favours
    later frames (so crop-0 is the last frame: the reader must order them by frame). Returns
    {track folder: person}."""
    from stream.cluster.saved_tracks import UnknownsRecorder
    from stream.inference.select import cpu_engine
    from stream.photos import load_chosen_crops

    recorder = UnknownsRecorder(root, model.manifest, keep=5, run="video-set")
    labels: dict[str, str] = {}
    with cpu_engine(model) as engine:
        for track_id, folder in enumerate(sorted(p for p in videos.glob("*/*") if p.is_dir()), 1):
            frames = sorted(folder.glob("*.jpg"), key=lambda p: int(p.stem))
            crops, missing = load_chosen_crops(frames, model.manifest.alignment, "largest")
            kept = [p for p in frames if p not in set(missing)]
            embeddings = engine.embed(crops)
            for k, (path, crop, emb) in enumerate(zip(kept, crops, embeddings)):
                recorder.observe("hamilton", track_id, int(path.stem), crop, emb, quality=0.5 + 0.01 * k)
            saved = recorder.end("hamilton", track_id, unknown=True)
            if saved is not None:
                labels[saved.name] = folder.parent.name
    return labels
