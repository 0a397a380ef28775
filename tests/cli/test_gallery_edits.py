"""`facestream enroll` on a shared gallery: concurrent writers, `--remove`, and a live run picking it up."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stream.locking import exclusive_lock
from stream.recognize.gallery import Gallery, lock_path
from tests.conftest import REPO, assert_one_line_error, media_path
from tests.support.events import read_events
from tests.support.scenes import write_looped_clip


def _popen(engines_dir: Path, *args: object) -> subprocess.Popen:
    env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(engines_dir), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "stream", *map(str, args)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait(proc: subprocess.Popen, timeout: float = 120) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


def test_ten_pairs_of_concurrent_enrolls_lose_no_name(cli, engines_dir, tmp_path):
    gallery = tmp_path / "g.npz"
    photos = [media_path("obama.jpg"), media_path("biden.jpg")]
    for pair in range(10):
        procs = [_popen(engines_dir, "enroll", "--gallery", gallery, "--name", f"p{pair}-{k}", photo)
                 for k, photo in enumerate(photos)]
        for proc in procs:
            _wait(proc)
    names = Gallery.load(gallery).identities()
    assert names == sorted(f"p{pair}-{k}" for pair in range(10) for k in range(2))


def test_remove_waits_for_the_lock_and_deletes_one_person(cli, engines_dir, tmp_path):
    gallery = tmp_path / "g.npz"
    cli("enroll", "--gallery", gallery, "--name", "barack-obama", media_path("obama.jpg"), media_path("obama2.jpg"),
        check=True)
    cli("enroll", "--gallery", gallery, "--name", "joe-biden", media_path("biden.jpg"), check=True)
    with exclusive_lock(lock_path(gallery)):  # another writer holds the gallery
        proc = _popen(engines_dir, "enroll", "--gallery", gallery, "--remove", "barack-obama")
        time.sleep(1.5)
        assert proc.poll() is None  # waiting, not writing past the holder
        assert Gallery.load(gallery).identities() == ["barack-obama", "joe-biden"]
    assert "removed barack-obama (2 embedding(s))" in _wait(proc)
    loaded = Gallery.load(gallery)
    assert loaded.identities() == ["joe-biden"] and len(loaded) == 1
    assert_one_line_error(cli("enroll", "--gallery", gallery, "--remove", "nobody"), "no one named nobody",
                          "joe-biden")
    assert_one_line_error(cli("enroll", "--gallery", gallery, "--remove", "joe-biden", media_path("biden.jpg")),
                          "--remove takes no")
    assert_one_line_error(cli("enroll", "--gallery", gallery), "nothing to enroll")
    assert_one_line_error(cli("enroll", "--gallery", tmp_path / "absent.npz", "--remove", "x"), "not found")
    assert Gallery.load(gallery).identities() == ["joe-biden"]


def _events(path: Path) -> list[dict]:
    return read_events(path)


@pytest.mark.slow
def test_enroll_into_a_live_run_names_the_person_without_a_restart(cli, engines_dir, tmp_path):
    gallery, events_out, clip = tmp_path / "g.npz", tmp_path / "events.jsonl", tmp_path / "hamilton_x3.mp4"
    # Three passes (~28 s paced): the enroll below starts cold and can take seconds on a loaded 2-core
    # machine, and Lin must still come on stage after it lands.
    write_looped_clip(clip, 3)
    cli("enroll", "--gallery", gallery, "--name", "joe-biden", media_path("biden.jpg"), check=True)
    run = _popen(engines_dir, "run", "--source", clip, "--realtime",
                 "--gallery", gallery, "--events-out", events_out, "--no-progress")
    try:
        deadline = time.monotonic() + 60
        while not any(e["type"] == "track_started" for e in _events(events_out)):
            assert run.poll() is None, run.communicate()[1]
            assert time.monotonic() < deadline, "no events from the run"
            time.sleep(0.1)
        assert not any(e["type"] == "identity" and e["identity"] for e in _events(events_out))
        cli("enroll", "--gallery", gallery, "--name", "lin-manuel-miranda", media_path("lin-manuel-miranda.png"),
            check=True)
        enrolled_at = time.time()
        seen_before = len(_events(events_out))
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    events = _events(events_out)
    later = [e for e in events[seen_before:] if e["type"] == "identity" and e["identity"] == "lin-manuel-miranda"]
    assert later, [e for e in events if e["type"] == "identity"]
    assert later[0]["ts"] >= enrolled_at - 1.0
    assert not any(e["type"] == "identity" and e["identity"] == "joe-biden" for e in events)
