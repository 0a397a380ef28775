#!/usr/bin/env python
"""Whole-pipeline benchmark: facestream vs the `face_recognition` package on the same clip, side by side.

The reference recognises every frame the way face_recognition's own examples do: dlib HOG
detection, dlib ResNet embedding of each face, distance to the enrolled photos. facestream runs
as a real `facestream run` process (spawned workers, shared memory, MediaPipe, ONNX Runtime,
tracking and voting). Both run in this one invocation, on the same machine, so the ratio holds
even when the machine is noisy; absolute numbers do not.

    python tools/bench_pipeline.py                      # tests/media clip and photos
    python tools/bench_pipeline.py --runs 3 --json out.json

Needs the `face_recognition` package for the reference (`pip install face-recognition --no-deps
dlib-bin 'setuptools<81'`: its model package still imports pkg_resources).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tools.cpu_figures import cpu_ms_per_frame  # noqa: E402 - after the path fix

MEDIA = Path(os.environ.get("FACESTREAM_MEDIA", REPO / "tests" / "media"))
ENROLL = {"lin-manuel-miranda": "lin-manuel-miranda.png", "alex-lacamoire": "alex-lacamoire.png"}


def reference(clip: Path, max_frames: int | None) -> dict:
    import cv2
    import face_recognition
    import numpy as np

    known = []
    for file in ENROLL.values():
        image = face_recognition.load_image_file(str(MEDIA / file))
        known.append(face_recognition.face_encodings(image)[0])
    known = np.array(known)
    cap = cv2.VideoCapture(str(clip))
    frames = faces = 0
    embed_s = 0.0
    start = time.perf_counter()
    while max_frames is None or frames < max_frames:
        ok, bgr = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        locations = face_recognition.face_locations(rgb)
        t0 = time.perf_counter()
        encodings = face_recognition.face_encodings(rgb, locations)
        embed_s += time.perf_counter() - t0
        for enc in encodings:
            face_recognition.face_distance(known, enc)
        frames += 1
        faces += len(locations)
    wall = time.perf_counter() - start
    return {"frames": frames, "faces": faces, "wall_s": round(wall, 3), "fps": round(frames / wall, 2),
            "ms_per_face_embedding": round(1e3 * embed_s / max(faces, 1), 1)}


def facestream(clip: Path, gallery: Path, workdir: Path, extra: list[str], env: dict | None = None) -> dict:
    summary = workdir / "summary.json"
    cmd = [sys.executable, "-m", "stream", "run", "--source", str(clip), "--gallery", str(gallery),
           "--no-progress", "--summary-json", str(summary), *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"facestream run failed ({proc.returncode}):\n{proc.stderr}")
    s = json.loads(summary.read_text())
    return {"frames": s["frames"], "faces": s["faces"], "embedded": s["embedded"], "tracks": s["tracks"],
            "process_wall_s": round(wall, 3), "process_fps": round(s["frames"] / wall, 2),
            "pipeline_fps": s["fps"], "stage_ms_per_frame": s["stage_ms_per_frame"],
            "mean_batch": s["mean_batch"], "latency_ms": s["latency_ms"], "named_tracks": s["named_tracks"],
            "engine": s.get("engine"), "cpu_s": s.get("cpu_s"), "cpu_ms_per_frame": cpu_ms_per_frame(s)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", type=Path, default=MEDIA / "short_hamilton_clip.mp4")
    ap.add_argument("--runs", type=int, default=2, help="alternating runs of each; medians are reported")
    ap.add_argument("--reference-frames", type=int, default=None, help="limit the reference to N frames")
    ap.add_argument("--json", type=Path, help="write all figures here")
    ap.add_argument("--checkout", type=Path, help="run facestream from this source tree (before/after figures)")
    ap.add_argument("--no-reference", action="store_true", help="facestream only (CPU figures, no ratio)")
    ap.add_argument("facestream_args", nargs="*", help="extra args for `facestream run` (after --)")
    args = ap.parse_args()
    if not args.clip.is_file():
        raise SystemExit(f"{args.clip}: not found (benchmarks read tests/media)")

    env = dict(os.environ)
    if args.checkout:
        # `python -m` puts the working directory first on sys.path, ahead of PYTHONPATH: without
        # running there too, the tree this tool is started from would be measured instead.
        env["PYTHONPATH"] = str(args.checkout.resolve())
        os.chdir(args.checkout)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        gallery = work / "gallery.npz"
        for name, file in ENROLL.items():
            subprocess.run([sys.executable, "-m", "stream", "enroll", "--gallery", str(gallery), "--name", name,
                            str(MEDIA / file)], check=True, capture_output=True, env=env)
        refs, ours = [], []
        for run in range(args.runs):
            ours.append(facestream(args.clip, gallery, work, args.facestream_args, env))
            print(f"run {run + 1}: facestream {ours[-1]['process_fps']:.1f} fps (process), "
                  f"{ours[-1]['pipeline_fps']:.1f} fps (pipeline); CPU ms/frame {ours[-1]['cpu_ms_per_frame']}",
                  file=sys.stderr)
            if not args.no_reference:
                refs.append(reference(args.clip, args.reference_frames))
                print(f"run {run + 1}: face_recognition {refs[-1]['fps']:.2f} fps", file=sys.stderr)
    if args.no_reference:
        print(json.dumps([{k: o[k] for k in ("frames", "process_fps", "pipeline_fps", "cpu_ms_per_frame")}
                          for o in ours], indent=1))
        if args.json:
            args.json.write_text(json.dumps({"facestream": ours}, indent=2))
        return 0

    ref_fps = statistics.median(r["fps"] for r in refs)
    proc_fps = statistics.median(o["process_fps"] for o in ours)
    pipe_fps = statistics.median(o["pipeline_fps"] for o in ours)
    last = ours[-1]
    print(f"\nclip: {args.clip.name}, {last['frames']} frames, {os.cpu_count()} CPUs, {args.runs} runs (medians)")
    print(f"{'':28}{'fps':>10}{'x reference':>14}")
    print(f"{'face_recognition (dlib)':28}{ref_fps:>10.2f}{1.0:>14.2f}")
    print(f"{'facestream, whole process':28}{proc_fps:>10.2f}{proc_fps / ref_fps:>14.2f}   (incl. start-up)")
    print(f"{'facestream, pipeline':28}{pipe_fps:>10.2f}{pipe_fps / ref_fps:>14.2f}   (first frame in -> last out)")
    print(f"reference ms per face embedding: {statistics.median(r['ms_per_face_embedding'] for r in refs)}")
    print(f"facestream stage ms/frame: {last['stage_ms_per_frame']}  mean batch {last['mean_batch']}  "
          f"faces {last['faces']} embedded {last['embedded']} tracks {last['tracks']}")
    print(f"facestream latency ms: {last['latency_ms']}")
    print(f"facestream named tracks: {last['named_tracks']}")
    print(f"facestream CPU ms/frame (all processes): {last['cpu_ms_per_frame']}")
    if args.json:
        args.json.write_text(json.dumps({"reference": refs, "facestream": ours, "ratio_process": proc_fps / ref_fps,
                                         "ratio_pipeline": pipe_fps / ref_fps}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
