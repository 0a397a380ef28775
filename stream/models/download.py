"""Download of published FaceNet checkpoints: pinned URL and sha256, resumable, atomic.

Only for users who want FaceNet; the default model never downloads anything. A transfer resumes
from ``<dest>.part`` with an HTTP Range request (and restarts if the server ignores Range), the
file is verified against its pinned sha256 before it is renamed into place, and a mismatch
deletes the partial file. No network, no surprise: every failure is one line saying what to do.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from stream.errors import FacestreamError

log = logging.getLogger(__name__)

CHUNK = 1 << 16


@dataclass(frozen=True)
class Published:
    url: str
    sha256: str | None  # None: not pinned here; the user must pass --sha256 or --allow-unpinned
    size: int | None
    model_name: str


RELEASE = "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9"
PUBLISHED: dict[str, Published] = {
    # sha256 and size as recorded by several independent projects that pin this file.
    "vggface2": Published(f"{RELEASE}/20180402-114759-vggface2.pt",
                          "281cebca8662831adb987a874bdcb36e73f5b1c6dc5ee5878f305e985625d99b", 111_898_327,
                          "facenet-vggface2"),
    # No independently recorded hash was available to pin: refused unless the user supplies one.
    "casia-webface": Published(f"{RELEASE}/20180408-102900-casia-webface.pt", None, None, "facenet-casia-webface"),
}


def download(url: str, dest: Path, sha256: str | None, *, timeout: float = 30.0, progress: bool = True,
             allow_unpinned: bool = False) -> Path:
    """Fetch ``url`` to ``dest`` (resuming a previous ``dest.part``) and verify it; returns ``dest``."""
    dest = Path(dest)
    if sha256 is None and not allow_unpinned:
        raise FacestreamError(f"{url}: no pinned sha256; pass --sha256 HEX (or --allow-unpinned to trust the server)")
    if dest.is_file() and sha256 and _sha256(dest) == sha256.lower():
        log.info("%s: already downloaded and verified", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "facestream"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    host = urlsplit(url).netloc or url
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the .part is already complete
            return _finish(part, dest, sha256, url)
        raise FacestreamError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FacestreamError(f"cannot reach {host}: {reason}; download it elsewhere and pass the file to "
                              "`facestream models import-facenet FILE`") from None
    with response:
        resumed = have and response.status == 206
        if have and not resumed:
            log.info("%s: server ignored the Range request; starting over", host)
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        bar = _bar(total, have, dest.name) if progress else None
        try:
            with open(part, "ab" if resumed else "wb") as out:
                while True:
                    try:
                        chunk = response.read(CHUNK)
                    except (OSError, urllib.error.URLError) as exc:
                        raise FacestreamError(f"{url}: transfer interrupted ({exc}); run the same command again "
                                              "to resume") from None
                    if not chunk:
                        break
                    out.write(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
    if total is not None and part.stat().st_size < total:
        raise FacestreamError(f"{url}: transfer ended early ({part.stat().st_size} of {total} bytes); run the "
                              "same command again to resume")
    return _finish(part, dest, sha256, url)


def _finish(part: Path, dest: Path, sha256: str | None, url: str) -> Path:
    actual = _sha256(part)
    if sha256 is not None and actual != sha256.lower():
        part.unlink(missing_ok=True)
        raise FacestreamError(f"{url}: sha256 {actual[:16]}… does not match the pinned {sha256[:16]}…; "
                              "the partial file was deleted")
    if sha256 is None:
        log.warning("%s: unpinned download, sha256 %s", dest, actual)
    os.replace(part, dest)
    return dest


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _bar(total: int | None, initial: int, name: str):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, desc=name, file=sys.stderr, leave=False)
