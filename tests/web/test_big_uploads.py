"""Photos far larger than their files uploaded to a live `facestream run --http`: the run goes on and
its main process (which detects and embeds the page's photos) keeps its memory.

The 30000x30000 PNG (110 KB on disk, 2.7 GB decoded) once took the run down with the kernel's OOM
killer; an 8000x8000 JPEG left the main process 6.7 GB larger for good."""

from __future__ import annotations

import http.client
import json
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import media_path
from tests.support.big_images import flat_png, large_jpeg
from tests.support.scenes import write_looped_clip
from tests.web.run_view import get_json, read_events, running_view, wait_for

pytestmark = pytest.mark.slow

LOOPS = 8  # ~75 s of video at its own rate: the run outlives the uploads


def upload(port: int, name: str, path: Path, kind: str) -> tuple[int, dict]:
    """POST a photo as the page does: its own content type, its file name, the page's request header."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("POST", f"/api/gallery/{name}/photos", body=path.read_bytes(),
                 headers={"content-type": kind, "x-filename": path.name, "x-facestream-request": "1"})
    response = conn.getresponse()
    answer = json.loads(response.read())
    conn.close()
    return response.status, answer


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


class RssSampler:
    """The highest resident size of a process, sampled every 20 ms while it runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def test_huge_photos_uploaded_to_a_live_run_cost_one_line_or_a_bounded_enroll(cli, engines_dir, tmp_path):
    clip = tmp_path / "hamilton-x8.mp4"
    write_looped_clip(clip, LOOPS)
    gallery = tmp_path / "people.npz"
    cli("enroll", "--gallery", gallery, "--name", "lin-manuel-miranda", media_path("lin-manuel-miranda.png"),
        check=True)
    bomb = flat_png(tmp_path / "big.png", 30000, 30000)
    big = large_jpeg(tmp_path / "big.jpg", media_path("obama.jpg"))
    with running_view(clip, gallery, tmp_path, engines_dir) as (proc, port):
        # an ordinary photo first: the page's detector and embedder load in the main process with it
        status, answer = upload(port, "barack-obama", media_path("obama2.jpg"), "image/jpeg")
        assert status == 200 and answer["ok"], answer
        time.sleep(1)
        before = rss_mb(proc.pid)
        sampler = RssSampler(proc.pid)

        status, answer = upload(port, "barack-obama", bomb, "image/png")
        assert status == 400, answer
        assert answer["error"] == "big.png: 30000x30000 pixels (900 MP) is over the 40 MP limit (photos.max_megapixels)"

        status, answer = upload(port, "barack-obama", big, "image/jpeg")
        assert status == 200 and answer["ok"], answer
        assert answer["message"] == "enrolled a photo as barack-obama"

        time.sleep(1)
        peak, after = sampler.stop(), rss_mb(proc.pid)
        print(f"run main process RSS: {before:.0f} MB before the uploads, peak {peak:.0f} MB during them, "
              f"{after:.0f} MB after")
        assert peak <= before + 300 and after <= before + 300, (before, peak, after)

        # the run goes on: frames keep coming, events keep being written, the gallery has both photos
        uploaded_at = time.time()
        frames = get_json(port, "/api/cameras")[0]["frames"]
        wait_for(lambda: get_json(port, "/api/cameras")[0]["frames"] > frames + 30, 60, "more frames", proc)
        wait_for(lambda: any(e["ts"] > uploaded_at and e["type"] != "heartbeat"
                             for e in read_events(tmp_path / "events.jsonl")), 60, "events after the uploads", proc)
        people = {p["name"]: p for p in get_json(port, "/api/gallery")}
        assert people["barack-obama"]["embeddings"] == 2
        assert proc.poll() is None
    assert (tmp_path / "summary.json").is_file(), proc.stderr.read()
