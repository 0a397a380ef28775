"""Detection benchmark: facestream's detector against an independent reference (dlib's CNN "mmod" detector).

For each dataset and detector setting: recall of the reference's faces, our detections that match no
reference face ("unmatched": false faces, or real faces the reference misses, e.g. profiles), and the
median ms per frame of ``.detect``. Unmatched crops go onto a contact sheet per dataset and setting so a
person can count which are really faces. For ``composed`` the known ground truth is scored as well
(rows whose ``ref`` column is ``truth``; the row ``dlib-mmod`` is the reference itself against the truth).

Datasets:
    hamilton      tests/media/short_hamilton_clip.mp4 (640x360), every ``--every``-th frame; min width 24
    canvas-half   the clip shrunk to 1/2 on a 1920x1080 canvas (tests.support.scenes.hamilton_canvas_frames);
                  its reference is dlib on the original clip frame, mapped onto the canvas
    canvas-third  the same at 1/3
    composed      tests.support.scenes.compose_hd_frames(): 1920x1080 photos collages with true boxes

``--video`` runs the video datasets (composed photos stay photos) as the detect worker does
(stream.pipeline.workers.VideoFaces: every frame in order, the rolling tiled scan, a closer look at every
live track, scene cuts, the tracker) and scores the frames the reference has; ms/frame is then the mean
over every frame. Without it each frame is scanned on its own, as a photo: the lower bound, and what
``embed``/``enroll`` get.

Reference faces we miss go onto a second sheet (``missed_*.png``).

Reference boxes are cached in out/bench_detection/reference.json (dlib's CNN is seconds per 1080p frame on
a CPU), keyed by dataset, frame index and upsample.

Usage:
    python tools/bench_detection.py --datasets composed
    python tools/bench_detection.py --datasets composed,hamilton --max-frames 6 --json out/bench_detection/r.json
    python tools/bench_detection.py --setting full-tiled:model=full --setting strict:model=full,min_confidence=0.7
    python tools/bench_detection.py --datasets hamilton,canvas-half --every 2 --video --setting default:model=full
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import scenes  # noqa: E402

OUT = ROOT / "out" / "bench_detection"
CACHE = OUT / "reference.json"
DATASETS = ("hamilton", "canvas-half", "canvas-third", "composed")
DEFAULT_SETTINGS = ("short-untiled:model=short,tiling=off", "full-untiled:model=full,tiling=off",
                    "full-tiled:model=full")
MIN_PX = {"hamilton": 24}


# -- data ---------------------------------------------------------------------------------------------

def load_dataset(name: str, every: int, max_frames: int | None
                 ) -> list[tuple[int, np.ndarray, np.ndarray | None]]:
    """[(frame index, BGR image, true boxes or None)]."""
    source: Iterator[tuple[int, np.ndarray, np.ndarray | None]]
    if name == "composed":
        n = max_frames if max_frames is not None else 6
        source = ((i, f, b) for i, (f, b) in enumerate(scenes.compose_hd_frames(n=n)))
    else:
        source = ((i, f, None) for i, f in video_frames(name, every))
    out = []
    for item in source:
        if max_frames is not None and len(out) >= max_frames:
            break
        out.append(item)
    return out


def video_frames(name: str, every: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """Every ``every``-th frame of a video dataset, in order."""
    if name == "hamilton":
        return scenes.clip_frames(every)
    if name in CANVAS_SCALE:
        return scenes.hamilton_canvas_frames(CANVAS_SCALE[name], every=every)
    raise SystemExit(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")


# -- reference ------------------------------------------------------------------------------------------

class Reference:
    """dlib's CNN face detector, with boxes cached on disk."""

    def __init__(self, upsample: int) -> None:
        self.upsample = upsample
        self._net: Any = None
        self.cache: dict[str, list[list[float]]] = json.loads(CACHE.read_text()) if CACHE.exists() else {}
        self.seconds: list[float] = []  # per frame actually run (not cached)

    def boxes(self, dataset: str, index: int, image: np.ndarray) -> np.ndarray:
        key = f"{dataset}/{index}/up{self.upsample}"
        if key not in self.cache:
            if self._net is None:
                import dlib
                import face_recognition_models

                self._net = dlib.cnn_face_detection_model_v1(face_recognition_models.cnn_face_detector_model_location())
            rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            t0 = time.perf_counter()
            found = self._net(rgb, self.upsample)
            self.seconds.append(time.perf_counter() - t0)
            self.cache[key] = [[float(d.rect.left()), float(d.rect.top()), float(d.rect.right() + 1),
                                float(d.rect.bottom() + 1)] for d in found]
            self.save()
        return np.array(self.cache[key], np.float32).reshape(-1, 4)

    def save(self) -> None:
        OUT.mkdir(parents=True, exist_ok=True)
        tmp = CACHE.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.cache, indent=0, sort_keys=True))
        os.replace(tmp, CACHE)


CANVAS_SCALE = {"canvas-half": 0.5, "canvas-third": 1 / 3}


def reference_boxes(reference: Reference, dataset: str, index: int, image: np.ndarray, every: int) -> np.ndarray:
    """The reference's faces of a frame. A canvas frame is the clip frame shrunk and placed, so its
    reference is dlib's run on the original clip frame, scaled and moved the same way: the same faces,
    at 1/9th of dlib's cost (75 s per 1080p frame on 2 cores)."""
    if dataset not in CANVAS_SCALE:
        return reference.boxes(dataset, index, image)
    scale = CANVAS_SCALE[dataset]
    x0, y0 = scenes.canvas_offset(scale)
    native = dict(scenes.clip_frames(every))[index]
    return reference.boxes("hamilton", index, native) * scale + np.array([x0, y0, x0, y0], np.float32)


# -- our detector ------------------------------------------------------------------------------------

def parse_value(text: str) -> int | float | str | bool:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_setting(spec: str) -> tuple[str, dict[str, Any]]:
    name, _, rest = spec.partition(":")
    kv: dict[str, Any] = {}
    for part in filter(None, rest.split(",")):
        key, eq, value = part.partition("=")
        if not eq:
            raise SystemExit(f"setting {spec!r}: expected key=value, got {part!r}")
        kv[key.strip()] = parse_value(value.strip())
    return name, kv


def build_detector(kv: dict[str, Any]) -> tuple[Any, str]:
    """A loaded FaceDetector for these DetectorConfig fields, and a note on what was built."""
    from stream.detect import DetectorConfig, FaceDetector

    kv = dict(kv)
    note = ""
    # min_face_px also sizes the tiles (0 = no tiles), so keep its default when tiling; scoring
    # filters by --min-px anyway.
    if kv.get("tiling") == "off":
        kv.setdefault("min_face_px", 0)
    elif "min_face_px" not in kv:
        note = f" (min_face_px left at {DetectorConfig().min_face_px}: it sizes the tiles)"
    return FaceDetector(DetectorConfig(**kv)).load(), "FaceDetector" + note


# -- matching ---------------------------------------------------------------------------------------

from stream.track.sort import iou_matrix  # noqa: E402 - after the sys.path insert


def _inside(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(P, B) whether point p lies in box b."""
    return ((points[:, None, 0] >= boxes[None, :, 0]) & (points[:, None, 0] <= boxes[None, :, 2])
            & (points[:, None, 1] >= boxes[None, :, 1]) & (points[:, None, 1] <= boxes[None, :, 3]))


def match(ref: np.ndarray, ours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greedy one-to-one matching; a pair qualifies with IoU >= 0.3, or with the centre of one box inside
    the other and a width ratio within [0.5, 2]. Returns (ref matched (R,) bool, ours matched (D,) bool)."""
    ref_hit, our_hit = np.zeros(len(ref), bool), np.zeros(len(ours), bool)
    if not len(ref) or not len(ours):
        return ref_hit, our_hit
    iou = iou_matrix(ref, ours)
    rc = (ref[:, :2] + ref[:, 2:]) / 2
    oc = (ours[:, :2] + ours[:, 2:]) / 2
    centred = _inside(rc, ours) | _inside(oc, ref).T
    ratio = (ours[None, :, 2] - ours[None, :, 0]) / np.maximum(ref[:, None, 2] - ref[:, None, 0], 1e-6)
    ok = (iou >= 0.3) | (centred & (ratio >= 0.5) & (ratio <= 2.0))
    dist = np.linalg.norm(rc[:, None, :] - oc[None, :, :], axis=2)
    pairs = sorted(zip(*np.nonzero(ok)), key=lambda p: (-iou[p], dist[p]))
    for r, d in pairs:
        if not ref_hit[r] and not our_hit[d]:
            ref_hit[r] = our_hit[d] = True
    return ref_hit, our_hit


# -- contact sheet ----------------------------------------------------------------------------------

def contact_sheet(crops: list[np.ndarray], path: Path, cell: int = 160, columns: int = 10) -> Path:
    rows = max(1, -(-len(crops) // columns))
    sheet = np.full((rows * cell, columns * cell, 3), 40, np.uint8)
    for k, crop in enumerate(crops):
        h, w = crop.shape[:2]
        s = (cell - 4) / max(h, w)
        small = cv2.resize(crop, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        y, x = (k // columns) * cell + 2, (k % columns) * cell + 2
        sheet[y:y + small.shape[0], x:x + small.shape[1]] = small
        label = str(k)
        cv2.putText(sheet, label, (x + 3, y + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(sheet, label, (x + 3, y + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 255), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), sheet)
    return path


def crop_with_context(image: np.ndarray, box: np.ndarray, context: float = 0.3) -> np.ndarray:
    h, w = image.shape[:2]
    bw, bh = box[2] - box[0], box[3] - box[1]
    x1, y1 = int(max(0, box[0] - context * bw)), int(max(0, box[1] - context * bh))
    x2, y2 = int(min(w, box[2] + context * bw)), int(min(h, box[3] + context * bh))
    return image[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)].copy()


# -- scoring ------------------------------------------------------------------------------------------

def score(frames: list[tuple[int, np.ndarray, np.ndarray]], dets: list[np.ndarray], min_px: float,
          sheet: Path | None) -> dict[str, Any]:
    """frames: (index, image, reference boxes); dets: our boxes per frame. ``sheet``: where the contact
    sheet of our unmatched detections goes; the reference faces we miss go beside it (missed_*)."""
    ref_n = ref_hit_n = our_n = unmatched_n = 0
    crops: list[np.ndarray] = []
    missed_crops: list[np.ndarray] = []
    missed: list[dict[str, Any]] = []
    where: list[dict[str, Any]] = []
    for (index, image, ref), ours in zip(frames, dets):
        ref_hit, our_hit = match(ref, ours)
        big_ref = (ref[:, 2] - ref[:, 0]) >= min_px
        big_ours = (ours[:, 2] - ours[:, 0]) >= min_px
        ref_n += int(big_ref.sum())
        ref_hit_n += int((ref_hit & big_ref).sum())
        for r in np.nonzero(big_ref & ~ref_hit)[0]:
            missed_crops.append(crop_with_context(image, ref[r]))
            missed.append({"sheet_index": len(missed), "frame": index, "xyxy": [round(float(v), 1) for v in ref[r]]})
        our_n += int(big_ours.sum())
        lone = np.nonzero(big_ours & ~our_hit)[0]
        unmatched_n += len(lone)
        for d in lone:
            crops.append(crop_with_context(image, ours[d]))
            where.append({"sheet_index": len(where), "frame": index, "xyxy": [round(float(v), 1) for v in ours[d]]})
    result: dict[str, Any] = {
        "ref_faces": ref_n, "recall": ref_hit_n / ref_n if ref_n else float("nan"), "our_dets": our_n,
        "unmatched": unmatched_n, "unmatched_pct": 100.0 * unmatched_n / our_n if our_n else 0.0,
        "unmatched_where": where, "missed_where": missed,
    }
    if sheet is not None and crops:
        result["sheet"] = str(contact_sheet(crops, sheet))
    if sheet is not None and missed_crops:
        missed_sheet = sheet.with_name(sheet.name.replace("unmatched_", "missed_", 1))
        result["missed_sheet"] = str(contact_sheet(missed_crops, missed_sheet))
    return result


def timed_video(detector: Any, dataset: str, wanted: set[int]) -> tuple[dict[int, np.ndarray], float]:
    """Run the detect worker's per-frame path over every frame: boxes of the ``wanted`` frames, mean ms a frame."""
    from stream.config.schema import AppConfig
    from stream.pipeline.workers import VideoFaces

    video = VideoFaces(AppConfig(detector=detector.config))
    boxes: dict[int, np.ndarray] = {}
    total, count = 0.0, 0
    for index, image in video_frames(dataset):
        t0 = time.perf_counter()
        faces, _, _ = video.detect(image, index, detector)
        total += time.perf_counter() - t0
        count += 1
        if index in wanted:
            boxes[index] = np.asarray(faces.xyxy, np.float32).reshape(-1, 4)
    return boxes, 1000 * total / max(count, 1)


def timed_detect(detector: Any, images: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
    for image in images[:2] if images else []:
        detector.detect(image)  # warm-up
    boxes, ms = [], []
    for image in images:
        t0 = time.perf_counter()
        faces = detector.detect(image)
        ms.append(1000 * (time.perf_counter() - t0))
        boxes.append(np.asarray(faces.xyxy, np.float32).reshape(-1, 4))
    return boxes, statistics.median(ms) if ms else float("nan")


# -- main ---------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma list of: " + ", ".join(DATASETS))
    parser.add_argument("--setting", action="append", default=None, metavar="NAME:key=value,...",
                        help="a DetectorConfig to benchmark (repeatable); default: " + " ".join(DEFAULT_SETTINGS))
    parser.add_argument("--every", type=int, default=10, help="video datasets: every n-th frame")
    parser.add_argument("--max-frames", type=int, default=None, help="at most this many frames per dataset")
    parser.add_argument("--upsample", type=int, default=1, help="dlib CNN upsampling (reference)")
    parser.add_argument("--min-px", type=float, default=None,
                        help="smallest face width scored (default 40; hamilton 24)")
    parser.add_argument("--video", action="store_true",
                        help="video datasets: every frame in order through the detect worker's path (tracks, "
                             "rolling scan); scored on the --every frames")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)

    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    settings = [parse_setting(s) for s in (args.setting or DEFAULT_SETTINGS)]
    reference = Reference(args.upsample)
    detectors: list[tuple[str, Any]] = []
    for name, kv in settings:
        try:
            detector, what = build_detector(kv)
        except Exception as exc:  # pydantic ValidationError, or a detector that will not start
            print(f"setting {name}: skipped ({type(exc).__name__}: {str(exc).splitlines()[0]}"
                  f"{' ...' if len(str(exc).splitlines()) > 1 else ''})")
            continue
        print(f"setting {name}: {kv} -> {what}")
        detectors.append((name, detector))

    rows: list[dict[str, Any]] = []
    for dataset in datasets:
        frames = load_dataset(dataset, args.every, args.max_frames)
        min_px = args.min_px if args.min_px is not None else MIN_PX.get(dataset, 40.0)
        t0, ran = time.perf_counter(), len(reference.seconds)
        ref_frames = [(i, img, reference_boxes(reference, dataset, i, img, args.every)) for i, img, _ in frames]
        new = reference.seconds[ran:]
        print(f"{dataset}: {len(frames)} frames {frames[0][1].shape[1]}x{frames[0][1].shape[0]}, "
              f"reference {len(new)} run ({statistics.mean(new) if new else 0:.1f} s/frame), "
              f"{len(frames) - len(new)} cached, {time.perf_counter() - t0:.1f} s")
        truth = [(i, img, b) for i, img, b in frames if b is not None]
        if truth and len(truth) == len(frames):
            ref_vs_truth = score(truth, [r for _, _, r in ref_frames], min_px, None)
            rows.append({"dataset": dataset, "setting": "dlib-mmod", "ref": "truth", **ref_vs_truth,
                         "ms": float("nan")})
        images = [img for _, img, _ in frames]
        for name, detector in detectors:
            if args.video and not truth:  # photos (composed) are scanned as photos either way
                by_index, ms = timed_video(detector, dataset, {i for i, _, _ in frames})
                dets = [by_index[i] for i, _, _ in frames]
                name = f"{name}@video"
            else:
                dets, ms = timed_detect(detector, images)
            sheet = OUT / f"unmatched_{dataset}_{name}.png"
            rows.append({"dataset": dataset, "setting": name, "ref": "dlib", "ms": ms,
                         **score(ref_frames, dets, min_px, sheet)})
            if truth and len(truth) == len(frames):
                tsheet = OUT / f"unmatched_{dataset}_{name}_truth.png"
                rows.append({"dataset": dataset, "setting": name, "ref": "truth", "ms": ms,
                             **score(truth, dets, min_px, tsheet)})
    for _, detector in detectors:
        detector.close()

    header = f"{'dataset':<13} {'setting':<14} {'ref':<5} {'ref faces':>9} {'recall':>7} {'our dets':>8} " \
             f"{'unmatched':>9} {'unmatched%':>10} {'ms/frame':>9}"
    print()
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['dataset']:<13} {r['setting']:<14} {r['ref']:<5} {r['ref_faces']:>9} {r['recall']:>7.3f} "
              f"{r['our_dets']:>8} {r['unmatched']:>9} {r['unmatched_pct']:>9.1f}% {r['ms']:>9.1f}")
    sheets = [r["sheet"] for r in rows if r.get("sheet")]
    if sheets:
        print("\nunmatched detections (look and count the real faces):")
        for s in sheets:
            print("  " + s)
    missed = [r["missed_sheet"] for r in rows if r.get("missed_sheet")]
    if missed:
        print("\nreference faces missed:")
        for s in missed:
            print("  " + s)
    if reference.seconds:
        print(f"\nreference: {len(reference.seconds)} frames run, median "
              f"{statistics.median(reference.seconds):.2f} s/frame (upsample {args.upsample})")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {"upsample": args.upsample, "every": args.every, "max_frames": args.max_frames,
                  "video": args.video,
                  "settings": {n: kv for n, kv in settings}, "rows": rows,
                  "reference_s_per_frame": statistics.median(reference.seconds) if reference.seconds else None}
        args.json.write_text(json.dumps(report, indent=2, default=float))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
