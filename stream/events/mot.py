"""Per-frame tracks in the MOTChallenge format, for scoring with TrackEval or py-motmetrics.

One row per face per frame: ``frame,id,x,y,w,h,conf,-1,-1,-1,identity``. ``frame`` is 1-based
(MOTChallenge's convention: source frame index + 1), ``id`` the published track id (the one in
the events), ``conf`` the detector score, and the 11th column the identity decided for the track
at that frame (empty while unknown). MOT tools read the first ten columns and ignore the rest.
"""

from __future__ import annotations

import os
from pathlib import Path

from stream.errors import FacestreamError
from stream.faces import Faces


class MotWriter:
    def __init__(self, path: Path, append: bool = False) -> None:
        """``append``: go on with a file a killed predecessor was writing, rather than start it again."""
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a" if append else "w", encoding="utf-8")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise FacestreamError(f"{self.path}: cannot write tracks ({exc.strerror or exc})") from None

    def write(self, frame: int, faces: Faces, tracks: list[tuple[int, str | None]]) -> None:
        """tracks: per face, (published track id, decided identity or None)."""
        rows = "".join(f"{frame + 1},{track_id},{x1:.1f},{y1:.1f},{x2 - x1:.1f},{y2 - y1:.1f},"
                       f"{score:.3f},-1,-1,-1,{name or ''}\n"
                       for (x1, y1, x2, y2), score, (track_id, name) in zip(faces.xyxy, faces.score, tracks))
        if rows:
            self._file.write(rows)
            self._file.flush()  # one write per frame: a killed publisher loses no frame it finished

    def close(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


def read_mot(path: Path) -> list[tuple[int, int, float, float, float, float, float, str]]:
    """Rows of a file written by ``MotWriter``: (frame, id, x, y, w, h, conf, identity)."""
    rows = []
    for line in Path(path).read_text().splitlines():
        f = line.split(",")
        rows.append((int(f[0]), int(f[1]), float(f[2]), float(f[3]), float(f[4]), float(f[5]), float(f[6]),
                     f[10] if len(f) > 10 else ""))
    return rows
