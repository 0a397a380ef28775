"""`site batch`'s driver writing videos' history into a real PostgreSQL server on 127.0.0.1 (skipped
where there is none): once per video however often it is written, and a server that goes away fails
the video (to be done again) instead of marking it done without its history."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.distributed.batch import Video, write_history
from stream.history.archive import ArchiveWriter, archive_run_id, read_run
from stream.history.config import HistoryConfig
from stream.history.store import HistoryStore
from tests.history.test_archive import task_store
from tests.support.postgres import postgres_server

pytestmark = pytest.mark.slow  # starts a server


def test_the_driver_writes_each_video_once_and_fails_it_while_the_server_is_away(tmp_path: Path) -> None:
    records = read_run(task_store(tmp_path / "task.db"))
    video = Video(tmp_path / "hall.mp4", "hall")
    video.path.write_bytes(b"not decoded here")
    with postgres_server() as pg:
        writer = ArchiveWriter(pg.url, HistoryConfig(url=pg.url))
        try:
            for _ in range(2):
                result = write_history(writer, video, {"ok": True, "summary": {"wall_s": 1.0}, "history": records})
                assert result["ok"] and result["summary"]["history_tracks"] == 2
            pg.stop()
            away = write_history(writer, video, {"ok": True, "summary": {"wall_s": 1.0}, "history": records})
            assert not away["ok"] and away["reason"].startswith("history: postgresql://postgres@127.0.0.1:")
            pg.start()
            back = write_history(writer, video, {"ok": True, "summary": {"wall_s": 1.0}, "history": records})
            assert back["ok"], back
        finally:
            writer.close()
        with HistoryStore.open(pg.url, create=False) as store:
            rows = store.tracks()
            assert [(r.track_id, r.source, r.run_id) for r in rows] == [
                (1, "hall", archive_run_id(video.path)), (2, "hall", archive_run_id(video.path))]
            assert rows[1].stranger_id is not None  # given by the one store
            assert len(store.decisions(archive_run_id(video.path), "hall", 1)) == 1
