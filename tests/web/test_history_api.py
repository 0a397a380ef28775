"""The History API on a real uvicorn server over a store filled by a real run of the Hamilton clip:
who was seen, their tracks, a day's timeline, thumbnails, search by an uploaded photo and by a stored
track, the upload rules, and a one-line 400 for every bad parameter."""

from __future__ import annotations

import http.client
import json
import os
import sys
import threading
import time
from urllib.parse import urlencode

import numpy as np
import pytest

from stream.history import queries
from stream.history.search import MIN_DETECTOR_SCORE, MIN_FACES, searchable
from stream.history.store import HistoryStore, NewTrack
from tests.conftest import assert_one_line_error, media_path
from tests.web.history_store import ALEX, CLIP, LIN, START_TS, copy_store, recorded, serve_history  # noqa: F401

pytestmark = pytest.mark.slow  # a run of the clip and a server

XSS = "<img src=x onerror=window.pwned=1>"  # a name is user input: the page must show it as text


def request(port: int, path: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data, response


def get_json(port: int, path: str, **params):
    status, data, _ = request(port, path + ("?" + urlencode(params) if params else ""))
    assert status == 200, data
    return json.loads(data)


def upload(port: int, photo: str, **params):
    data = media_path(photo).read_bytes()
    return request(port, "/api/history/search" + ("?" + urlencode(params) if params else ""), "POST", data,
                   {"content-type": "image/png", "x-filename": photo, "x-facestream-request": "1"})


@pytest.fixture(scope="module")
def server(recorded, default_model):  # noqa: F811
    yield from serve_history(recorded.db, default_model.name)


def test_people_lists_each_person_with_first_and_last_seen(server, recorded) -> None:  # noqa: F811
    web, _ = server
    people = {p["key"]: p for p in get_json(web.port, "/api/history/people")}
    for who in (LIN, ALEX):
        mine = recorded.of(who)
        card = people[who]
        assert card["kind"] == "person" and card["tracks"] == len(mine) and card["cameras"] == [CLIP]
        assert card["first_seen"] == pytest.approx(min(r.started_at for r in mine))
        assert card["last_seen"] == pytest.approx(max(r.ended_at for r in mine))
        assert card["best_track_id"] in {r.id for r in mine}
        status, jpeg, response = request(web.port, card["thumb"])
        assert status == 200 and jpeg[:2] == b"\xff\xd8" and response.getheader("content-type") == "image/jpeg"
        assert response.getheader("cache-control").startswith("private")
    unknown = [r for r in recorded.rows if r.identity is None]
    others = [p for p in people.values() if p["kind"] in ("stranger", "unknown")]
    assert sum(p["tracks"] for p in others) == len(unknown)  # every unknown track is on a card, once
    assert sum(p["tracks"] for p in people.values()) == len(recorded.rows)
    # a window after the clip: nobody; on another camera: nobody
    assert get_json(web.port, "/api/history/people", since=START_TS + 60) == []
    assert get_json(web.port, "/api/history/people", camera="cam9") == []
    assert get_json(web.port, "/api/history/cameras") == [CLIP]


def test_tracks_filter_by_who_camera_time_and_unknown(server, recorded) -> None:  # noqa: F811
    web, _ = server
    alex = get_json(web.port, "/api/history/tracks", who=ALEX)
    assert {t["id"] for t in alex} == {r.id for r in recorded.of(ALEX)}
    first = alex[-1]  # newest first
    assert first["clock"] == "wall" and first["video"].endswith(f"{CLIP}.mp4")
    assert first["started_at"] == pytest.approx(START_TS + first["start_pts"])
    unknown = get_json(web.port, "/api/history/tracks", unknown="true", limit=1000)
    assert unknown and all(t["identity"] is None for t in unknown)
    assert len(unknown) == sum(r.identity is None for r in recorded.rows)
    assert len(get_json(web.port, "/api/history/tracks", limit=3)) == 3
    late = get_json(web.port, "/api/history/tracks", since=START_TS + 5, camera=CLIP)
    assert late and all(t["ended_at"] >= START_TS + 5 for t in late)
    assert get_json(web.port, "/api/history/tracks", until="2026-05-01T08:59:00") == []


def test_a_days_timeline_per_camera(server, recorded) -> None:  # noqa: F811
    web, _ = server
    day = get_json(web.port, "/api/history/timeline", day="2026-05-01", tz="UTC")
    assert day["clock"] == "wall" and day["start"] == START_TS - 9 * 3600 and day["end"] - day["start"] == 86400
    (lane,) = day["cameras"].values()
    assert list(day["cameras"]) == [CLIP] and {s["id"] for s in lane} == {r.id for r in recorded.rows}
    lin = [s for s in lane if s["who"] == LIN]
    assert {s["id"] for s in lin} == {r.id for r in recorded.of(LIN)}
    assert all(START_TS <= s["start"] <= s["end"] < START_TS + 12 for s in lane)
    # the latest day with tracks when none is asked; the day in another time zone; a day with nothing
    assert get_json(web.port, "/api/history/timeline", tz="UTC")["day"] == "2026-05-01"
    paris = get_json(web.port, "/api/history/timeline", day="2026-05-01", tz="Europe/Paris")
    assert paris["start"] == START_TS - 11 * 3600 and len(paris["cameras"][CLIP]) == len(recorded.rows)
    assert get_json(web.port, "/api/history/timeline", day="2026-05-02", tz="UTC")["cameras"] == {}


def test_search_by_photo_finds_the_person_and_nobody_else(server, recorded) -> None:  # noqa: F811
    web, _ = server
    for who, other, photo in ((LIN, ALEX, "lin-manuel-miranda.png"), (ALEX, LIN, "alex-lacamoire.png")):
        status, data, _ = upload(web.port, photo)
        assert status == 200, data
        found = json.loads(data)
        assert found["threshold"] == 0.39 and found["faces"] == 1
        ids = [hit["id"] for hit in found["results"]]
        assert ids, f"{photo}: nothing found"
        assert {hit["identity"] for hit in found["results"]} == {who}, found["results"]
        solid = {r.id for r in recorded.of(who) if searchable(r)}
        assert set(ids) <= solid and not set(ids) & {r.id for r in recorded.of(other)}
        distances = [hit["distance"] for hit in found["results"]]
        assert distances == sorted(distances) and distances[-1] <= 0.39
        hit = found["results"][0]
        assert hit["thumb"] == f"/api/history/thumb/{hit['id']}" and hit["video"].endswith(f"{CLIP}.mp4")
        assert hit["faces"] >= MIN_FACES and hit["detector_score"] >= MIN_DETECTOR_SCORE
    # filters: another camera, a window before the clip
    status, data, _ = upload(web.port, "lin-manuel-miranda.png", camera="cam9")
    assert status == 200 and json.loads(data)["results"] == []
    status, data, _ = upload(web.port, "lin-manuel-miranda.png", until=START_TS - 1)
    assert status == 200 and json.loads(data)["results"] == []


def test_search_by_a_stored_track_finds_that_track_first(server, recorded) -> None:  # noqa: F811
    web, _ = server
    row = max(recorded.of(LIN), key=lambda r: r.faces)
    found = get_json(web.port, "/api/history/search", track=row.id)
    assert found["threshold"] == 0.30  # track-to-track (stream.history.strangers), not photo-to-track
    assert found["results"][0]["id"] == row.id and found["results"][0]["distance"] < 0.01
    assert ALEX not in {hit["identity"] for hit in found["results"]}
    status, data, _ = request(web.port, "/api/history/search?track=999999")
    assert status == 400 and b"no such track" in data


def test_uploads_follow_the_enroll_rules(server) -> None:
    web, _ = server
    photo = media_path("lin-manuel-miranda.png").read_bytes()
    status, data, _ = request(web.port, "/api/history/search", "POST", photo, {"content-type": "image/png"})
    assert status == 403 and b"x-facestream-request" in data
    status, data, _ = request(web.port, "/api/history/search", "POST", photo,
                              {"content-type": "text/plain", "x-facestream-request": "1"})
    assert status == 415
    status, data, _ = request(web.port, "/api/history/search", "POST", b"\0" * (21 * 2**20),
                              {"content-type": "image/png", "x-facestream-request": "1"})
    assert status == 413
    status, data, _ = request(web.port, "/api/history/search", "POST", b"not an image",
                              {"content-type": "image/png", "x-facestream-request": "1", "x-filename": "x.png"})
    assert status == 400 and data.count(b"\n") == 0 and b"x.png" in data
    blank = np.full((200, 200, 3), 128, np.uint8)
    import cv2

    status, data, _ = request(web.port, "/api/history/search", "POST", cv2.imencode(".png", blank)[1].tobytes(),
                              {"content-type": "image/png", "x-facestream-request": "1", "x-filename": "wall.png"})
    assert status == 400 and json.loads(data)["error"] == "wall.png: no face found"


@pytest.mark.parametrize(("path", "needle"), [
    ("/api/history/people?since=yesterday", "since=yesterday: not a time"),
    ("/api/history/tracks?limit=0", "limit=0: not between 1 and 1000"),
    ("/api/history/tracks?limit=ten", "limit=ten: not a whole number"),
    ("/api/history/tracks?unknown=maybe", "unknown=maybe: not true or false"),
    ("/api/history/timeline?day=2026-13-01", "day=2026-13-01: not a date"),
    ("/api/history/timeline?day=2026-05-01&tz=Mars/Base", "tz=Mars/Base: not a time zone"),
    ("/api/history/search?track=abc", "track=abc: not a whole number"),
    ("/api/history/search", "give ?track="),
    ("/api/history/search?track=1&threshold=5", "threshold=5: not a distance"),
])
def test_bad_parameters_are_a_400_with_one_line(server, path, needle) -> None:
    web, _ = server
    status, data, _ = request(web.port, path)
    assert status == 400, data
    error = json.loads(data)["error"]
    assert needle in error and "\n" not in error


def test_the_held_index_picks_up_rows_written_after_it_was_built(recorded, default_model, tmp_path) -> None:  # noqa: F811
    db = copy_store(recorded.db, tmp_path / "h.db")
    for web, history in serve_history(db, default_model.name, refresh_s=0.2):
        space = default_model.manifest.embedding_space
        deadline = time.monotonic() + 30
        while not history.indexes.ready(space):
            assert time.monotonic() < deadline, "the index was never built"
            time.sleep(0.05)
        held = history.indexes.size(space)
        assert held == sum(searchable(r) for r in recorded.rows)
        # another camera sees Lin later: the same track's embeddings, written by "another run"
        lin = max(recorded.of(LIN), key=lambda r: r.faces)
        with HistoryStore.open(db, create=False) as store:
            mean, best = store.embeddings(lin.id)
            fields = {k: v for k, v in lin.__dict__.items() if k != "id"}
            new = NewTrack(**{**fields, "source": "door", "run_id": "later", "started_at": START_TS + 3600,
                              "ended_at": START_TS + 3610, "mean": mean, "best": best, "thumbnail": b"\xff\xd8x"})
            (new_id,) = store.write([new])
        status, data, _ = upload(web.port, "lin-manuel-miranda.png")
        found = json.loads(data)
        assert status == 200 and found["index"] == "exact"  # the held index, not a scan of the store
        assert new_id in {hit["id"] for hit in found["results"]}
        assert history.indexes.size(space) == held + 1
        door = get_json(web.port, "/api/history/people", camera="door")
        assert [(p["key"], p["tracks"]) for p in door] == [(LIN, 1)]


def test_queries_answer_the_same_on_postgresql(recorded) -> None:  # noqa: F811
    from tests.support.postgres import postgres_server

    with postgres_server() as pg, HistoryStore.open(recorded.db, create=False) as lite, \
            HistoryStore.open(pg.url) as store:
        rows = lite.tracks()
        store.write([NewTrack(**{k: v for k, v in r.__dict__.items() if k != "id"},
                              mean=lite.embeddings(r.id)[0], best=lite.embeddings(r.id)[1],
                              thumbnail=lite.thumbnail(r.id)) for r in rows])

        def people(s):
            return [(p.key, p.kind, p.tracks, p.cameras, round(p.first_seen, 3), round(p.last_seen, 3))
                    for p in queries.people(s)]

        assert people(store) == people(lite)
        start, end = queries.day_window("2026-05-01", "UTC")
        lanes = {c: [(s["who"], round(s["start"], 3)) for s in spans]
                 for c, spans in queries.timeline(store, start, end)[0].items()}
        assert lanes == {c: [(s["who"], round(s["start"], 3)) for s in spans]
                         for c, spans in queries.timeline(lite, start, end)[0].items()}
        assert [r.track_id for r in queries.tracks(store, who=ALEX)] == \
            [r.track_id for r in queries.tracks(lite, who=ALEX)]
        best = {p.key: p.best_track_id for p in queries.people(store)}
        assert store.thumbnail(best[LIN])[:2] == b"\xff\xd8"
        # the page over PostgreSQL, and the server going away and coming back: one line, then answers again
        for web, _ in serve_history(pg.url, "dlib-resnet-v1"):
            assert {p["key"] for p in get_json(web.port, "/api/history/people")} >= {LIN, ALEX}
            pg.stop()
            status, data, _ = request(web.port, "/api/history/people")
            error = json.loads(data)["error"]
            assert status == 503 and error.startswith("the history store cannot be read now") and "\n" not in error
            pg.start()
            assert {p["key"] for p in get_json(web.port, "/api/history/people")} >= {LIN, ALEX}


def test_a_view_without_a_store_and_serve_errors(cli, tmp_path) -> None:
    from tests.web.conftest import make_view

    for view in make_view(tmp_path):
        status, data, _ = view.get("/api/history/people")
        assert status == 404 and b"no history store" in data
        assert view.json("/api/status")["history"] is False
    assert_one_line_error(cli("serve", "--http", "0", timeout=60), "give --gallery FILE, --history FILE|URL")
    assert_one_line_error(cli("serve", "--history", tmp_path / "absent.db", "--http", "0", timeout=60),
                          "absent.db", "no such history store")



def test_naming_a_remembered_stranger_names_their_tracks(recorded, default_model, tmp_path) -> None:  # noqa: F811
    strangers = {r.stranger_id for r in recorded.rows if r.stranger_id and r.identity is None}
    if not strangers:
        pytest.skip("the run remembered no stranger (history.strangers off for this model)")
    sid = sorted(strangers)[0]
    mine = {r.id for r in recorded.rows if r.stranger_id == sid}
    db = copy_store(recorded.db, tmp_path / "h.db")
    for web, _ in serve_history(db, default_model.name):
        assert get_json(web.port, "/api/status")["history_names_strangers"] is True
        cards = {p["key"]: p for p in get_json(web.port, "/api/history/people")}
        assert cards[sid]["kind"] == "stranger" and cards[sid]["tracks"] == len(mine)
        assert {t["id"] for t in get_json(web.port, "/api/history/tracks", who=sid)} == mine
        path = f"/api/history/strangers/{sid}/name"
        status, data, _ = request(web.port, path, "POST", b'{"name": "Bob"}', {"content-type": "text/plain"})
        assert status == 415
        status, data, _ = request(web.port, path, "POST", b'{"name": "  "}', {"content-type": "application/json"})
        assert status == 400 and "\n" not in json.loads(data)["error"]
        status, data, _ = request(web.port, "/api/history/strangers/stranger-999999/name", "POST", b'{"name": "Bob"}',
                                  {"content-type": "application/json"})
        assert status == 400 and "no such stranger" in json.loads(data)["error"]
        status, data, _ = request(web.port, path, "POST", json.dumps({"name": XSS}).encode(),
                                  {"content-type": "application/json"})
        assert status == 200, data
        cards = {p["key"]: p for p in get_json(web.port, "/api/history/people")}
        assert sid not in cards and cards[XSS]["tracks"] == len(mine)
        assert {t["id"] for t in get_json(web.port, "/api/history/tracks", who=XSS)} == mine


def test_forget_from_the_page_deletes_the_person_and_their_search_vectors(recorded, default_model,  # noqa: F811
                                                                        tmp_path) -> None:
    db = copy_store(recorded.db, tmp_path / "h.db")
    alex = {r.id for r in recorded.of(ALEX)}
    for web, _ in serve_history(db, default_model.name):
        status, data, _ = upload(web.port, "alex-lacamoire.png")
        assert status == 200 and {r["id"] for r in json.loads(data)["results"]} & alex
        status, data, _ = request(web.port, f"/api/history/people/{ALEX}".replace(" ", "%20"), "DELETE")
        assert status == 200, data
        assert f"deleted {len(alex)} track(s)" in json.loads(data)["message"]
        status, data, _ = upload(web.port, "alex-lacamoire.png")  # the held index let him go at once
        assert status == 200 and not {r["id"] for r in json.loads(data)["results"]} & alex
        assert ALEX not in {p["key"] for p in get_json(web.port, "/api/history/people")}
        status, data, _ = request(web.port, f"/api/history/people/{ALEX}".replace(" ", "%20"), "DELETE")
        assert status == 400 and "\n" not in json.loads(data)["error"]  # found nowhere now: one line
    with HistoryStore.open(db, create=False) as store:
        assert store.tracks(identity=ALEX) == [] and store.tracks(identity=LIN)


def test_the_page_work_runs_below_the_runs_priority(server) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("thread niceness is Linux's")
    web, _ = server
    get_json(web.port, "/api/history/people")

    def nice(tid: str) -> int:  # field 19 of /proc/PID/task/TID/stat, after the command in parentheses
        return int(open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()[16])

    niced = [tid for tid in os.listdir("/proc/self/task") if nice(tid) >= 10]
    assert niced  # the thread that answered (and the index's) yield the CPU to the run's processes
    assert nice(str(threading.get_native_id())) == 0  # the test's own thread is untouched


def test_serve_history_alone_as_a_process(recorded, engines_dir) -> None:  # noqa: F811
    import signal
    import subprocess

    from tests.conftest import REPO
    from tests.support.net import free_port
    from tests.web.run_view import get_json as try_json
    from tests.web.run_view import wait_for

    port = free_port()
    env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(engines_dir)}
    command = [sys.executable, "-m", "stream", "serve", "--history", str(recorded.db), "--http", str(port)]
    proc = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    try:
        people = wait_for(lambda: try_json(port, "/api/history/people"), 60, "the history page", proc)
        assert {LIN, ALEX} <= {p["key"] for p in people}
        status = try_json(port, "/api/status")
        assert status["history"] and status["gallery"] is None and not status["can_enroll_photos"]
        assert try_json(port, "/api/gallery") == []
    finally:
        proc.send_signal(signal.SIGINT)
        stderr = proc.communicate(timeout=30)[1]
    assert proc.returncode == 0 and "Traceback" not in stderr
    assert f"history page on http://127.0.0.1:{port}/" in stderr
