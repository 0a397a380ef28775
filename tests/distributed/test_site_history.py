"""`facestream site run` with `history.url` on a real PostgreSQL server (started on 127.0.0.1 as an
unprivileged user; skipped where there is none) and a real local multi-node Ray cluster: two live
cameras in two shards, on two Ray nodes, write their tracks into the one database, each row saying
which camera and which shard it came from, and `facestream history` reads the site's history back."""

from __future__ import annotations

import json
import signal
import time

import pytest
import yaml

from stream.errors import FacestreamError
from stream.history.store import HistoryStore
from tests.conftest import media_path
from tests.distributed.test_site_run import _popen, _wait
from tests.support.mjpeg_server import MjpegServer
from tests.support.postgres import postgres_server

pytestmark = pytest.mark.slow

LIN = "lin-manuel-miranda"


def _lin_rows(url: str) -> dict[str, set[str]]:
    """Per camera, the shards whose rows name Lin (a track is written when it ends); {} until a shard has
    made the schema."""
    try:
        with HistoryStore.open(url, create=False) as store:
            rows = store.tracks(identity=LIN)
    except FacestreamError:
        return {}
    seen: dict[str, set[str]] = {}
    for row in rows:
        seen.setdefault(row.source, set()).add(row.origin)
    return seen


def test_a_live_site_writes_one_history_from_every_shard(ray_cluster, cli, engines_dir, tmp_path):
    cluster, _ = ray_cluster
    gallery = tmp_path / "people.npz"
    cli("enroll", "--gallery", gallery, "--name", LIN, media_path(f"{LIN}.png"), check=True)
    cameras = [MjpegServer(media_path("short_hamilton_clip.mp4")).start() for _ in range(2)]
    with postgres_server() as pg:
        site = tmp_path / "site.yaml"
        site.write_text(yaml.safe_dump({
            "cameras": [f"door={cameras[0].url}", f"hall={cameras[1].url}"], "gallery": str(gallery),
            "history": {"url": pg.url, "commit_every_s": 0.5},
            "sharding": {"cameras_per_shard": 1, "events_bind": "tcp://127.0.0.1:0"}}))
        status_path = tmp_path / "status.json"
        driver = _popen(["site", "run", "--address", cluster.address, "--config", site, "--status-every", "1",
                         "--status-json", status_path], engines_dir)
        try:
            try:
                seen = _wait(lambda: (s := _lin_rows(pg.url)) and {"door", "hall"} <= set(s) and s, 240,
                             "tracks of Lin from both cameras in the site's history", (driver,))
            except AssertionError:
                driver.send_signal(signal.SIGINT)
                err = driver.communicate(timeout=120)[1]
                try:
                    with HistoryStore.open(pg.url, create=False) as store:
                        rows = [(r.source, r.identity, r.origin) for r in store.tracks()]
                except FacestreamError as exc:
                    rows = [str(exc)]
                raise AssertionError(f"rows: {rows}\n{err[-4000:]}") from None
            shards = json.loads(status_path.read_text())["shards"]
            by_camera = {s["cameras"][0]: name for name, s in shards.items()}
            assert seen == {"door": {by_camera["door"]}, "hall": {by_camera["hall"]}}, seen
            assert by_camera["door"] != by_camera["hall"]
        finally:
            if driver.poll() is None:
                driver.send_signal(signal.SIGINT)
            err = driver.communicate(timeout=120)[1]
            for camera in cameras:
                camera.stop()
        assert driver.returncode == 0, err[-3000:]
        assert "Traceback" not in err

        # the site's history as a user reads it: both cameras' tracks of Lin, with their times
        listed = cli("history", "--url", pg.url, "--who", LIN, "--json", check=True).stdout
        tracks = [json.loads(line) for line in listed.splitlines() if line.strip()]
        assert {t["source"] for t in tracks} >= {"door", "hall"}
        assert all(t["identity"] == LIN and t["started_at"] <= t["ended_at"] <= time.time() for t in tracks)
