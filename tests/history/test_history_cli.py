"""`run --history` fills the store from a real run of the Hamilton clip; `facestream history` reads it back.
A run killed with SIGKILL mid-write leaves a readable store that lacks at most the last second."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stream.errors import FacestreamError
from stream.history.store import HistoryStore
from tests.conftest import REPO, assert_one_line_error, media_path

LIN, ALEX = "Lin-Manuel Miranda", "Alex Lacamoire"


@pytest.fixture(scope="module")
def gallery(cli, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gallery") / "g.npz"
    cli("enroll", "--gallery", path, "--name", LIN, media_path("lin-manuel-miranda.png"), check=True)
    cli("enroll", "--gallery", path, "--name", ALEX, media_path("alex-lacamoire.png"), check=True)
    return path


@pytest.fixture(scope="module")
def clip_history(cli, gallery, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess, list[dict]]:
    out = tmp_path_factory.mktemp("history")
    db, events = out / "h.db", out / "events.jsonl"
    proc = cli("run", "--source", media_path("short_hamilton_clip.mp4"), "--gallery", gallery, "--history", db,
               "--events-out", events, "--no-progress", check=True)
    return db, proc, [json.loads(line) for line in events.read_text().splitlines()]


def test_a_run_fills_the_history(clip_history) -> None:
    db, proc, events = clip_history
    ended = [e for e in events if e["type"] == "track_ended"]
    decided = [e for e in events if e["type"] == "identity"]
    with HistoryStore.open(db, create=False) as store:
        rows = store.tracks()
        assert len(rows) == len(ended)  # every track of this clip was embedded at least once
        assert {(r.source, r.track_id, r.identity) for r in rows} == \
            {(e["source"], e["track_id"], e["identity"]) for e in ended}
        named = {r.identity for r in rows if r.identity}
        assert named == {LIN, ALEX}
        clip = str(media_path("short_hamilton_clip.mp4"))
        for row in rows:  # a file with no known start: its times are its pts
            assert row.video == clip and row.started_at == row.start_pts and row.ended_at == row.end_pts
            assert 0 <= row.start_pts <= row.end_pts < 12 and row.first_frame <= row.last_frame
            assert row.faces >= 1 and 0 < row.detector_score <= 1 and row.dim == 128
            assert store.thumbnail(row.id)[:2] == b"\xff\xd8"
        assert sum(len(store.decisions(r.run_id, r.source, r.track_id)) for r in rows) == len(decided)
        (run,) = store.runs()
        assert run.kind == "archive" and run.ended_at is not None
    assert f"history: {len(ended) + len(decided)} rows written, 0 dropped" in proc.stderr


def test_history_lists_people_with_first_and_last_seen(cli, clip_history) -> None:
    db, _, _ = clip_history
    with HistoryStore.open(db, create=False) as store:
        lin = store.tracks(identity=LIN)
    out = cli("history", "--history", db, check=True).stdout.splitlines()
    assert out[0].split()[:4] == ["who", "tracks", "first", "seen"]
    (line,) = [ln for ln in out if ln.startswith(LIN)]
    fields = line[len(LIN):].split()
    assert fields[0] == str(len(lin))
    first, last = min(r.start_pts for r in lin), max(r.end_pts for r in lin)
    assert fields[1] == f"+0:00:{first:04.1f}" and fields[2] == f"+0:00:{last:04.1f}"
    assert any(ln.startswith(ALEX) for ln in out) and any(ln.startswith("(unknown)") for ln in out)


def test_history_filters_and_machine_formats(cli, clip_history) -> None:
    db, _, _ = clip_history
    rows = [json.loads(ln) for ln in cli("history", "--history", db, "--who", ALEX, "--json", check=True)
            .stdout.splitlines()]
    assert rows and {r["identity"] for r in rows} == {ALEX}
    assert {"started_at", "ended_at", "start_pts", "video", "score", "embedding_space"} <= set(rows[0])
    table = list(csv.DictReader(io.StringIO(cli("history", "--history", db, "--unknowns", "--csv", check=True).stdout)))
    assert table and all(r["identity"] == "" for r in table)
    tracks = cli("history", "--url", f"sqlite:///{db}", "--tracks", "--camera", "short_hamilton_clip", "--limit", "3",
                 check=True).stdout.splitlines()
    assert len(tracks) == 4 and tracks[0].split()[:3] == ["row", "start", "end"]
    assert "short_hamilton_clip.mp4@" in tracks[1]
    assert cli("history", "--history", db, "--camera", "cam9", check=True).stdout.strip() == "no tracks"


def test_history_errors_are_one_line(cli, clip_history, tmp_path) -> None:
    db, _, _ = clip_history
    assert_one_line_error(cli("history", "--history", tmp_path / "absent.db"), "absent.db", "no such history store")
    assert_one_line_error(cli("history", "--history", db, "--since", "yesterday"), "yesterday", "not a time")
    assert_one_line_error(cli("history"), "--history FILE")
    assert_one_line_error(cli("history", "--url", "mysql://x/y"), "mysql://x/y", "not a history store")
    assert_one_line_error(cli("run", "--source", media_path("short_hamilton_clip.mp4"), "--history",
                              tmp_path / "no" / "h.db"), "no such folder")
    assert_one_line_error(cli("run", "--source", media_path("short_hamilton_clip.mp4"), "--history", db,
                              "--start-time", "yesterday"), "history.file_start", "not none, mtime or an ISO time")


def test_sigkill_mid_write_loses_at_most_the_last_second(cli, gallery, tmp_path) -> None:
    db, events = tmp_path / "h.db", tmp_path / "events.jsonl"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # --realtime: the clip plays for ~11 s, so the kill lands while tracks are still being written
    clip = str(media_path("short_hamilton_clip.mp4"))
    proc = subprocess.Popen([sys.executable, "-m", "stream", "run", "--source", clip,
                             "--gallery", str(gallery), "--history", str(db), "--events-out", str(events),
                             "--realtime", "--no-progress"], cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while _tracks_in(db) < 2:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "no track reached the store"
            time.sleep(0.1)
        time.sleep(1.5)
        assert proc.poll() is None, "the run ended before the kill"
        killed_at = time.time()
        os.killpg(proc.pid, signal.SIGKILL)  # the run and every process it started
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        if proc.stderr:
            proc.stderr.close()
    ended = [json.loads(ln) for ln in events.read_text().splitlines() if '"track_ended"' in ln]
    with HistoryStore.open(db, create=False) as store:  # readable, and still the current schema
        stored = {(r.source, r.track_id) for r in store.tracks()}
    assert stored <= {(e["source"], e["track_id"]) for e in ended}
    older = {(e["source"], e["track_id"]) for e in ended if e["ts"] < killed_at - 1.0}
    assert older and older <= stored, (older - stored)
    assert sqlite3.connect(db).execute("pragma integrity_check").fetchone() == ("ok",)


def _tracks_in(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute("select count(*) from tracks").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_times_are_iso_or_spans_before_now() -> None:
    from stream.cli.history_cmd import when
    from stream.history.times import parse_time

    assert parse_time("2h", now=10_000.0) == 10_000.0 - 7200
    assert parse_time("1777626000") == 1777626000.0  # unix seconds, as the API and `search` took them
    assert parse_time("2026-05-01T09:00", naive="utc") == 1777626000.0
    assert parse_time("1.5d", now=200_000.0) == 200_000.0 - 129_600
    assert parse_time("2026-05-01T09:00:00+00:00") == 1777626000.0
    with pytest.raises(FacestreamError, match="not a time"):
        parse_time("2 fortnights")
    assert when(83.4) == "+0:01:23.4"  # a file whose start is not known: its pts
    assert when(1777626000.0)[:4] == "2026"


def test_a_restarted_publisher_goes_on_writing_the_same_run(cli, gallery, tmp_path) -> None:
    import uuid

    from tests.support.procs import processes_with

    db, events, summary = tmp_path / "h.db", tmp_path / "events.jsonl", tmp_path / "s.json"
    key, value = "FACESTREAM_TEST_MARK", uuid.uuid4().hex
    clip = str(media_path("short_hamilton_clip.mp4"))
    proc = subprocess.Popen([sys.executable, "-m", "stream", "run", "--source", clip,
                             "--gallery", str(gallery), "--history", str(db), "--events-out", str(events),
                             "--summary-json", str(summary), "--realtime", "--no-progress"],
                            cwd=REPO, env={**os.environ, key: value}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while _tracks_in(db) < 2:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1.5)
        (pid,) = [p for p, name in processes_with(f"{key}={value}").items() if name == "fs-publish"]
        killed_at = time.time()
        os.kill(pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 0, err
    ended = [json.loads(ln) for ln in events.read_text().splitlines() if '"track_ended"' in ln]
    with HistoryStore.open(db, create=False) as store:
        stored = {(r.source, r.track_id) for r in store.tracks()}
        assert len(store.runs()) == 1  # the successor writes the same run
    assert stored <= {(e["source"], e["track_id"]) for e in ended}
    before = {(e["source"], e["track_id"]) for e in ended if e["ts"] < killed_at - 1.0}
    # after the restart: tracks the successor ended, but the orphans it ended at its start (nothing of them seen)
    after = {(e["source"], e["track_id"]) for e in ended
             if e["ts"] > killed_at and e.get("reason") != "publisher_restarted"}
    assert before and before <= stored, before - stored
    # The successor stores a track it saw embedded; one the detect worker held confident across the restart
    # may end before it is embedded again: skipped, and counted so.
    history = json.loads(summary.read_text())["sinks"]["history"]
    assert after and len(after - stored) <= history["skipped"], (after - stored, history)
    # The killed publisher's count lags its last commits (the ledger takes sink counts with each event,
    # commits happen after): the summary counts at least what the successor wrote; the store is the truth.
    assert history["delivered"] >= len(after & stored)
