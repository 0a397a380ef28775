"""A batch task's history carried to the one store (stream/history/archive.py), on real SQLite files:
read back whole from the task's store, re-labelled with the video and its start, written again
without doubling, and unknown tracks given stranger ids by the one store."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stream.history.archive import ArchiveWriter, RunRecords, archive_run_id, read_run, task_history
from stream.history.config import HistoryConfig
from stream.history.store import Decision, HistoryStore, NewTrack, RunRow

DIM = 4
START = "2026-05-01T09:00:00+00:00"
START_TS = 1777626000.0


def track(track_id: int, identity: str | None, mean: list[float], pts: float = 1.0) -> NewTrack:
    return NewTrack(run_id="task-run", origin=None, source="clip", track_id=track_id, started_at=pts,
                    ended_at=pts + 2, start_pts=pts, end_pts=pts + 2, first_frame=int(pts * 25),
                    last_frame=int(pts * 25) + 50, video="/tmp/ray-scratch/clip.mp4", identity=identity, score=0.9,
                    distance=0.3, detector_score=0.95, faces=20, model="dlib-resnet-v1",
                    embedding_space="dlib-resnet-v1", dim=DIM, mean=np.array(mean, np.float32),
                    best=np.array([mean, mean], np.float32), thumbnail=b"\xff\xd8jpeg", stranger_id=None)


def task_store(path: Path) -> Path:
    """What a task's `facestream run` leaves in its own store."""
    with HistoryStore.open(path) as store:
        store.begin_run(RunRow("task-run", 1.0, 2.0, None, "archive", "dlib-resnet-v1"))
        store.write([track(1, "alice", [1, 0, 0, 0]), track(2, None, [0, 1, 0, 0], pts=5.0)],
                    [Decision("task-run", "clip", 1, 1.5, 1.5, 37, "alice", 0.9, 0.3, None)])
    return path


def test_a_task_store_is_read_back_whole(tmp_path: Path) -> None:
    records = read_run(task_store(tmp_path / "task.db"))
    assert records.model == "dlib-resnet-v1"
    assert [(t.track_id, t.identity) for t in records.tracks] == [(1, "alice"), (2, None)]
    np.testing.assert_array_equal(records.tracks[0].mean, [1, 0, 0, 0])
    assert records.tracks[0].best.shape == (2, DIM) and records.tracks[0].thumbnail == b"\xff\xd8jpeg"
    assert [(d.track_id, d.identity, d.frame) for d in records.decisions] == [(1, "alice", 37)]


def test_the_driver_writes_a_video_once_with_its_path_and_start(tmp_path: Path) -> None:
    records = read_run(task_store(tmp_path / "task.db"))
    video = tmp_path / "videos" / "hall.mp4"
    video.parent.mkdir()
    video.write_bytes(b"not decoded here")
    url = str(tmp_path / "site.db")
    writer = ArchiveWriter(url, HistoryConfig(url=url, file_start=START))
    run_id = archive_run_id(video)
    assert run_id == archive_run_id(video) and run_id.startswith("batch-hall-")
    for _ in range(2):  # a batch killed after the history and before the summary does the video again
        assert writer.write_run(records, run_id=run_id, source="hall", video=video) == 2
    writer.write_run(RunRecords(model="dlib-resnet-v1"), run_id="batch-empty", source="empty", video=video)
    writer.close()
    with HistoryStore.open(url, create=False) as store:
        rows = store.tracks()
        assert [(r.track_id, r.identity, r.source, r.video, r.run_id) for r in rows] == [
            (1, "alice", "hall", str(video), run_id), (2, None, "hall", str(video), run_id)]
        assert rows[0].started_at == START_TS + 1.0 and rows[0].start_pts == 1.0  # the file's start + pts
        (decision,) = store.decisions(run_id, "hall", 1)
        assert decision.ts == START_TS + 1.5
        assert {r.id: r.kind for r in store.runs()} == {run_id: "archive", "batch-empty": "archive"}
        assert rows[1].stranger_id is not None and rows[1].stranger_id.startswith("stranger-")  # the one store's
        assert rows[0].stranger_id is None
        assert [len(ids) for ids, _ in store.iter_embeddings("dlib-resnet-v1")] == [2]  # search sees both, once


def test_a_task_keeps_its_own_store_without_what_needs_the_one(tmp_path: Path) -> None:
    config = HistoryConfig(url="postgresql://site@db/history", file_start="mtime", keep_days=30, strangers=True)
    section = task_history(config.model_dump(mode="json"), tmp_path / "h.db")
    checked = HistoryConfig.model_validate(section)
    assert checked.url == str(tmp_path / "h.db") and checked.file_start == "none"
    assert not checked.strangers and checked.keep_days is None and checked.max_mb is None


def test_a_store_that_refuses_the_rows_leaves_the_video_to_do_again(tmp_path: Path) -> None:
    from sqlalchemy import text

    from stream.distributed.batch import Video, write_history

    records = read_run(task_store(tmp_path / "task.db"))
    url = str(tmp_path / "site.db")
    writer = ArchiveWriter(url, HistoryConfig(url=url))
    with writer.store.engine.begin() as conn:  # a store broken under the batch (as a full disk or a lock would)
        conn.execute(text("DROP TABLE decisions"))
    video = Video(tmp_path / "hall.mp4", "hall")
    result = write_history(writer, video, {"ok": True, "summary": {"wall_s": 1.0}, "history": records})
    writer.close()
    assert not result["ok"] and result["reason"].startswith(f"history: {url}: ")
    assert "\n" not in result["reason"]
