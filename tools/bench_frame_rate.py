#!/usr/bin/env python
"""Recall and naming at a processing rate (``--fps``) against every frame, side by side, on real footage.

Two videos, each run by a real ``facestream run`` at its full rate and at each rate asked for, with a
gallery of the photos in tests/media (Lin-Manuel Miranda, Alex Lacamoire, Barack Obama, Joe Biden):

- the crossing scene (tests/support/scenes.py ``write_crossing_video``, written at 30 fps): two real
  faces whose boxes and names are known in every frame. Recall: the visible faces (>= half of the box)
  of the frames processed that a track covers; naming: those whose track carries the right name.
- the Hamilton clip (640x360, 29.97 fps): no hand labels, so the full-rate run is the reference.
  Recall: its faces, in the frames the lower rate processed, that the lower rate also finds; naming:
  its named faces there that the lower rate names the same (both 1.0 at the full rate by definition).

A face matches a box with IoU >= 0.3, or with the centre of one inside the other and widths within
a factor 2 (the rule of tools/bench_detection.py). CPU figures are the whole run's (all processes).

    python tools/bench_frame_rate.py                   # 30 fps vs 10 fps
    python tools/bench_frame_rate.py --fps 10 --fps 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from stream.events.mot import read_mot  # noqa: E402 - after the path fix
from stream.track.sort import iou_matrix  # noqa: E402

MEDIA = REPO / "tests" / "media"
PEOPLE = {"lin-manuel-miranda": ["lin-manuel-miranda.png"], "alex-lacamoire": ["alex-lacamoire.png"],
          "barack-obama": ["obama.jpg", "obama2.jpg"], "joe-biden": ["biden.jpg"]}
CROSSING_NAMES = {"lin-manuel-miranda": "lin-manuel-miranda", "obama": "barack-obama"}

Rows = dict[int, list[tuple[np.ndarray, str | None]]]  # 0-based frame -> (xyxy, identity) per face


def tracks_by_frame(path: Path) -> Rows:
    """A ``--tracks-out`` file (1-based MOT frames) as faces per 0-based frame."""
    out: Rows = defaultdict(list)
    for frame, _, x, y, w, h, _, identity in read_mot(path):
        out[frame - 1].append((np.array([x, y, x + w, y + h], np.float32), identity or None))
    return out


def _pairs(ref: list[np.ndarray], ours: list[np.ndarray]) -> list[tuple[int, int]]:
    """Greedy one-to-one matches of reference boxes to ours (best IoU first)."""
    if not ref or not ours:
        return []
    a, b = np.stack(ref), np.stack(ours)
    iou = iou_matrix(a, b)
    ca, cb = (a[:, :2] + a[:, 2:]) / 2, (b[:, :2] + b[:, 2:]) / 2

    def inside(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return ((points[:, None, 0] >= boxes[None, :, 0]) & (points[:, None, 0] <= boxes[None, :, 2])
                & (points[:, None, 1] >= boxes[None, :, 1]) & (points[:, None, 1] <= boxes[None, :, 3]))

    ratio = (b[None, :, 2] - b[None, :, 0]) / np.maximum(a[:, None, 2] - a[:, None, 0], 1e-6)
    ok = (iou >= 0.3) | ((inside(ca, b) | inside(cb, a).T) & (ratio >= 0.5) & (ratio <= 2.0))
    used_a, used_b, out = set(), set(), []
    for r, d in sorted(zip(*np.nonzero(ok)), key=lambda p: -iou[p]):
        if r not in used_a and d not in used_b:
            used_a.add(r)
            used_b.add(d)
            out.append((int(r), int(d)))
    return out


def score_against_truth(truth: dict, rows: Rows, frames: list[int], min_visible: float = 0.5) -> dict:
    """Recall and naming of the crossing scene's faces in ``frames`` (the frames the run processed)."""
    faces = found = named = 0
    for i in frames:
        ref = [(np.array(box, np.float32), CROSSING_NAMES[name]) for name, box in truth["boxes"][i].items()
               if box is not None and truth["visible"][i][name] >= min_visible]
        ours = rows.get(i, [])
        faces += len(ref)
        for r, d in _pairs([box for box, _ in ref], [box for box, _ in ours]):
            found += 1
            named += ours[d][1] == ref[r][1]
    return {"faces": faces, "recall": round(found / max(faces, 1), 4), "naming": round(named / max(faces, 1), 4)}


def score_against_run(reference: Rows, rows: Rows, frames: list[int]) -> dict:
    """Recall of the reference run's faces in ``frames`` and agreement on the names it gave them."""
    faces = found = named = agreed = 0
    for i in frames:
        ref, ours = reference.get(i, []), rows.get(i, [])
        faces += len(ref)
        named += sum(1 for _, name in ref if name)
        for r, d in _pairs([box for box, _ in ref], [box for box, _ in ours]):
            found += 1
            agreed += bool(ref[r][1]) and ours[d][1] == ref[r][1]
    return {"faces": faces, "named": named, "recall": round(found / max(faces, 1), 4),
            "naming": round(agreed / max(named, 1), 4)}


def frames_processed(summary: dict, total: int, fps: float | None, source_fps: float) -> list[int]:
    """The frames a run processed: every frame at the full rate, else those the rate's grid takes (a
    faceless frame leaves no row in the tracks file); checked against the run's count."""
    if fps is None:
        return list(range(total))
    from stream.sources.rate import FrameRate

    rate = FrameRate(fps)
    taken = [i for i in range(total) if rate.take(i / source_fps)]
    if summary["frames"] != len(taken):
        raise SystemExit(f"the run processed {summary['frames']} frames, the rate's grid has {len(taken)}")
    return taken


def enroll(gallery: Path, env: dict) -> None:
    for name, files in PEOPLE.items():
        subprocess.run([sys.executable, "-m", "stream", "enroll", "--gallery", str(gallery), "--name", name,
                        *[str(MEDIA / f) for f in files]], check=True, capture_output=True, env=env)


def run(video: Path, gallery: Path, out: Path, fps: float | None, env: dict) -> tuple[dict, Rows]:
    tag = "full" if fps is None else f"{fps:g}"
    tracks, summary = out / f"{video.stem}-{tag}.txt", out / f"{video.stem}-{tag}.json"
    cmd = [sys.executable, "-m", "stream", "run", "--source", str(video), "--gallery", str(gallery),
           "--tracks-out", str(tracks), "--summary-json", str(summary), "--no-progress"]
    if fps is not None:
        cmd += ["--fps", f"{fps:g}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"facestream run failed ({proc.returncode}):\n{proc.stderr}")
    return json.loads(summary.read_text()), tracks_by_frame(tracks)


def cpu_s(summary: dict) -> float:
    return round(sum((summary.get("cpu_s") or {}).values()), 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fps", type=float, action="append", help="processing rates to compare (default: 10)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    rates = args.fps or [10.0]
    env = dict(os.environ)
    from tests.support.scenes import write_crossing_video

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        gallery = work / "gallery.npz"
        enroll(gallery, env)
        crossing = work / "crossing.mp4"
        truth = write_crossing_video(crossing, fps=30)
        clip = MEDIA / "short_hamilton_clip.mp4"
        for video, source_fps, total in ((crossing, 30.0, truth["frames"]), (clip, 29.97, 275)):
            full_summary, full_rows = run(video, gallery, work, None, env)
            for fps in [None, *rates]:
                summary, rows = (full_summary, full_rows) if fps is None else run(video, gallery, work, fps, env)
                frames = frames_processed(summary, total, fps, source_fps)
                scores = (score_against_truth(truth, rows, frames) if video == crossing
                          else score_against_run(full_rows, rows, frames))
                results.append({"video": video.stem, "fps": fps or "full", "frames": summary["frames"],
                                "skipped": summary.get("skipped", 0), "cpu_s": cpu_s(summary),
                                "cpu_ratio": round(cpu_s(summary) / max(cpu_s(full_summary), 1e-9), 3), **scores})
    print(f"load average {os.getloadavg()[0]:.2f}; CPU is every process of the run, ratio to the full rate")
    print(f"{'video':22}{'fps':>6}{'frames':>8}{'skipped':>9}{'recall':>8}{'naming':>8}{'CPU s':>8}{'x full':>8}")
    for r in results:
        print(f"{r['video']:22}{r['fps']!s:>6}{r['frames']:>8}{r['skipped']:>9}{r['recall']:>8.3f}{r['naming']:>8.3f}"
              f"{r['cpu_s']:>8.1f}{r['cpu_ratio']:>8.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
