"""`facestream cluster faces --history`: clustering the unknown tracks of a history store.

Fast tests read a store written through its API; the slow ones a store filled by a real run of the
Hamilton clip with a gallery holding Lin-Manuel Miranda only, so Alex Lacamoire is an unknown: his
tracks land in one cluster, that cluster enrolls, and the gallery then knows his photo."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from stream.cluster.saved_tracks import read_tracks
from stream.history.search import MIN_DETECTOR_SCORE, MIN_FACES
from stream.history.store import HistoryStore, NewTrack
from stream.history.unknowns import export_tracks, unknown_tracks
from tests.conftest import assert_one_line_error, media_path

DIM = 8
LIN, ALEX = "Lin-Manuel Miranda", "Alex Lacamoire"


def _track(n: int, *, identity: str | None = None, faces: int = MIN_FACES, score: float = 0.9,
           space: str = "space-a", stranger: str | None = None, thumbnail: bytes | None = None) -> NewTrack:
    mean = np.full(DIM, 0.5, np.float32) * (n + 1)
    return NewTrack(run_id="run-1", origin=None, source="cam/1", track_id=n, started_at=1000.0 + n,
                    ended_at=1004.0 + n, start_pts=float(n), end_pts=n + 4.0, first_frame=n * 10,
                    last_frame=n * 10 + 9, video=None, identity=identity, score=None, distance=None,
                    detector_score=score, faces=faces, model="m", embedding_space=space, dim=DIM, mean=mean,
                    best=np.stack([mean]), thumbnail=thumbnail, stranger_id=stranger)


def _jpeg(value: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((16, 16, 3), value, np.uint8))
    assert ok
    return buf.tobytes()


@pytest.fixture
def store(tmp_path: Path):
    with HistoryStore.open(tmp_path / "h.db") as s:
        yield s


def test_only_solid_unknown_tracks_are_read(store: HistoryStore) -> None:
    ids = store.write([_track(0), _track(1, identity="Ann"), _track(2, faces=MIN_FACES - 1),
                       _track(3, score=MIN_DETECTOR_SCORE - 0.01), _track(4, thumbnail=_jpeg(200))])
    found = unknown_tracks(store)
    assert [t.row["id"] for t in found] == [ids[0], ids[4]]  # named, short and unsure tracks left out
    assert np.allclose(found[1].mean, _track(4).mean) and found[1].thumbnail == _jpeg(200)
    assert [t.row["id"] for t in unknown_tracks(store, since=1004.5)] == [ids[4]]  # ended before: out
    assert [t.row["id"] for t in unknown_tracks(store, until=1003.5)] == [ids[0]]
    assert unknown_tracks(store, source="cam/2") == []


def test_unnamed_only_leaves_out_a_named_strangers_later_tracks(store: HistoryStore) -> None:
    first = store.new_stranger("space-a", 1.0)
    sid = f"stranger-{first:06d}"
    ids = store.write([_track(0, stranger=sid), _track(1, stranger=None)])
    assert store.name_stranger(sid, "Ann") == 1
    later = store.write([_track(2, stranger=sid)])  # met again after naming: unknown to the gallery still
    assert [t.row["id"] for t in unknown_tracks(store)] == [ids[1], later[0]]
    assert [t.row["id"] for t in unknown_tracks(store, unnamed_only=True)] == [ids[1]]


def test_exported_tracks_read_back_as_saved_tracks(store: HistoryStore, tmp_path: Path) -> None:
    ids = store.write([_track(0, thumbnail=_jpeg(90), stranger="stranger-000007"), _track(1)])
    out = tmp_path / "staged"
    out.mkdir()
    export_tracks(unknown_tracks(store), out, metric="euclidean", threshold=0.6, store="h.db")
    tracks = read_tracks(out)
    assert [t.name for t in tracks] == [f"cam_1-0-row{ids[0]}", f"cam_1-1-row{ids[1]}"]
    first = tracks[0]
    assert first.meta["history_row"] == ids[0] and first.meta["stranger_id"] == "stranger-000007"
    assert first.meta["camera"] == "cam/1" and first.meta["run"] == "run-1"
    assert (first.meta["started_at"], first.meta["ended_at"], first.meta["start_pts"]) == (1000.0, 1004.0, 0.0)
    assert first.meta["threshold"] == 0.6 and first.meta["embedding_space"] == "space-a"
    assert np.allclose(first.mean, _track(0).mean) and np.isclose(np.linalg.norm(first.embedding), 1.0)
    [crop] = first.crops
    assert abs(int(cv2.imread(str(crop)).mean()) - 90) <= 2  # the thumbnail, decoded
    assert tracks[1].crops == [] and tracks[1].meta["stranger_id"] is None  # no thumbnail stored: no crop


def test_tracks_of_one_run_and_source_overlapping_in_time_are_kept_apart(store: HistoryStore, tmp_path: Path) -> None:
    from stream.cluster.saved_tracks import co_occurring

    a, b, c = _track(0), _track(1), _track(2)
    b.first_frame, b.last_frame = 5, 30  # on screen with track 0 (frames 0-9)
    c.first_frame, c.last_frame, c.source = 5, 30, "cam/2"  # at the same time, on another camera
    store.write([a, b, c])
    out = tmp_path / "staged"
    out.mkdir()
    export_tracks(unknown_tracks(store), out, metric="euclidean", threshold=0.6, store="h.db")
    assert co_occurring(read_tracks(out)).tolist() == [[False, True, False], [True, False, False],
                                                        [False, False, False]]


# -- the command, on a real run's store ---------------------------------------------------------------

@pytest.fixture(scope="module")
def lin_only_run(cli, tmp_path_factory) -> tuple[Path, Path, dict[int, str | None]]:
    """(store, gallery with Lin only, track row id -> its label in search_labels.json)."""
    from tests.history.search_set import LABELS, first_boxes, label_of

    root = tmp_path_factory.mktemp("cluster-history")
    gallery, db, events = root / "lin.npz", root / "h.db", root / "events.jsonl"
    cli("enroll", "--gallery", gallery, "--name", LIN, media_path("lin-manuel-miranda.png"), check=True)
    cli("run", "--source", media_path("short_hamilton_clip.mp4"), "--gallery", gallery, "--history", db,
        "--events-out", events, "--no-progress", check=True)
    labels, boxes = json.loads(LABELS.read_text()), first_boxes(events)
    with HistoryStore.open(db, create=False) as s:
        rows = s.tracks()
    return db, gallery, {r.id: label_of(r.first_frame, r.last_frame, boxes.get(r.track_id), labels) for r in rows}


def test_store_unknowns_cluster_alex_into_one_cluster_that_enrolls(cli, lin_only_run, tmp_path) -> None:
    db, _, labels = lin_only_run
    out = tmp_path / "clusters"
    proc = cli("cluster", "faces", "--history", db, "--out", out, check=True)
    record = json.loads((out / "clusters.json").read_text())
    assert record["history"] == str(db) and record["model"] == "dlib-resnet-v1"
    members = {name: c for c in record["clusters"] for name in c["tracks"]}
    with HistoryStore.open(db, create=False) as s:
        solid = [r for r in s.tracks(unknown=True) if r.faces >= MIN_FACES and r.detector_score >= MIN_DETECTOR_SCORE]
    assert record["tracks"] == len(solid) and solid
    alex = [r for r in solid if labels[r.id] == "alex-lacamoire"]
    assert len(alex) >= 2  # the first shot and the close-up at the piano
    names = {r.id: f"{r.source}-{r.track_id}-row{r.id}" for r in solid}
    homes = {members[names[r.id]]["name"] if names[r.id] in members else None for r in alex}
    assert len(homes) == 1 and None not in homes, (homes, record)  # all of Alex's tracks in one cluster
    home = next(c for c in record["clusters"] if c["name"] == homes.pop())
    in_home = [r for r in solid if names[r.id] in home["tracks"]]
    assert {labels[r.id] for r in in_home} == {"alex-lacamoire"}  # and nobody else
    assert home["strangers"] == sorted({r.stranger_id for r in in_home if r.stranger_id})
    assert f"strangers: {', '.join(home['strangers'])}" in proc.stdout
    folder = out / home["name"]
    assert (folder / "contact.png").is_file()
    for r in in_home:  # each track: its thumbnail as the crop, and where it came from
        meta = json.loads((folder / names[r.id] / "track.json").read_text())
        assert (meta["history_row"], meta["stranger_id"], meta["camera"]) == (r.id, r.stranger_id, r.source)
        assert (meta["started_at"], meta["ended_at"]) == (r.started_at, r.ended_at)
        assert (folder / names[r.id] / "crop-0.png").is_file()

    # enroll the cluster into Lin's gallery: a run of the clip then names Alex, and nobody else Alex
    gallery = tmp_path / "g.npz"
    cli("enroll", "--gallery", gallery, "--name", LIN, media_path("lin-manuel-miranda.png"), check=True)
    cli("enroll", "--gallery", gallery, "--name", ALEX, folder, check=True)
    events = tmp_path / "again.jsonl"
    cli("run", "--source", media_path("short_hamilton_clip.mp4"), "--gallery", gallery, "--events-out", events,
        "--no-progress", check=True)
    ended = _labelled_ends(events)
    assert any(label == "alex-lacamoire" for label, _, _ in ended)
    for label, identity, (first, last) in ended:
        if label == "alex-lacamoire":
            assert identity == ALEX, ended
        elif label == "lin-manuel-miranda" and last - first >= 20:
            assert identity == LIN, ended
    # Not asserted: short false detections (a hand beside Lin at frames 173-180, dark crowd patches at
    # 50-80, looked at by eye) may take Alex's name, as they may after enrolling any cluster of video crops:
    # two low-quality crops make a laxer gallery entry than a portrait. The photo gallery leaves them unknown.
    # Nor that the three people at the end (211-274) stay unknown: measured over four runs of this test, the
    # nearest of their faces lies 0.455-0.506 from the two enrolled thumbnails, nearer than Alex's own faces
    # (median 0.49-0.51), so whether one of them is named Alex depends on which crop the history kept as each
    # thumbnail (2 of 4 runs did: the thumbnail whose embedding norm was 1.23, a poor crop, against 1.40).


def _labelled_ends(events_jsonl: Path) -> list[tuple[str | None, str | None, tuple[int, int]]]:
    """(label in search_labels.json, identity it ended with, frames) of each of a run's decided tracks."""
    from tests.history.search_set import LABELS, first_boxes, label_of

    labels, boxes = json.loads(LABELS.read_text()), first_boxes(events_jsonl)
    events = [json.loads(line) for line in events_jsonl.read_text().splitlines()]
    start = {e["track_id"]: e["frame"] for e in events if e["type"] == "track_started"}
    decided = {e["track_id"] for e in events if e["type"] == "identity"}
    return [(label_of(start[e["track_id"]], e["frame"], boxes.get(e["track_id"]), labels), e["identity"],
             (start[e["track_id"]], e["frame"])) for e in events
            if e["type"] == "track_ended" and e["track_id"] in decided]


def test_camera_and_window_narrow_what_is_clustered(cli, lin_only_run, tmp_path) -> None:
    db, _, _ = lin_only_run
    proc = cli("cluster", "faces", "--history", db, "--camera", "no-such-camera", "--out", tmp_path / "o")
    assert_one_line_error(proc, str(db), "no unknown tracks")
    proc = cli("cluster", "faces", "--history", db, "--since", "2099-01-01T00:00+00:00", "--out", tmp_path / "o1")
    assert_one_line_error(proc, "no unknown tracks")
    proc = cli("cluster", "--history", db, "--since", "1970-01-01T00:00+00:00", "--until", "2099-01-01T00:00+00:00",
               "--unnamed-only", "--out", tmp_path / "o2", check=True)  # `cluster --history`: `cluster faces ...`
    assert json.loads((tmp_path / "o2" / "clusters.json").read_text())["tracks"] > 0


@pytest.mark.parametrize(("args", "needles"), [
    (["DIR", "--history", "STORE"], ["not both"]),
    ([], ["DIR", "--history", "neither"]),
    (["--history", "MISSING"], ["no such history store"]),
    (["DIR", "--since", "2h"], ["--since", "only with --history"]),
    (["--history", "STORE", "--since", "yesterday-ish"], ["yesterday-ish", "not a time"]),
    (["--history", "EMPTY"], ["no unknown tracks"]),
    (["--history", "MIXED"], ["several embedding spaces", "space-a", "space-b"]),
])
def test_bad_input_is_one_line(cli, tmp_path, args, needles) -> None:
    (tmp_path / "dir").mkdir()
    with HistoryStore.open(tmp_path / "store.db") as s:
        s.write([_track(0)])
    with HistoryStore.open(tmp_path / "empty.db") as s:
        s.write([_track(0, identity="Ann")])
    with HistoryStore.open(tmp_path / "mixed.db") as s:
        s.write([_track(0), _track(1, space="space-b")])
    where = {"DIR": tmp_path / "dir", "STORE": tmp_path / "store.db", "MISSING": tmp_path / "nope.db",
             "EMPTY": tmp_path / "empty.db", "MIXED": tmp_path / "mixed.db"}
    proc = cli("cluster", "faces", *[str(where.get(a, a)) for a in args], "--out", tmp_path / "out")
    assert proc.returncode == 2
    assert_one_line_error(proc, *needles)
    assert not (tmp_path / "out").exists()
