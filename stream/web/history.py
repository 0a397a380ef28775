"""The History page's HTTP API: who was seen, their tracks, a day's timeline per camera, thumbnails, and
search by an uploaded photo or by a stored track.

Every store read runs in Starlette's thread pool, each thread with its own HistoryStore (a store is not
shared between threads; their connection pools are): the event loop that serves the live pictures
never waits on the database. The routes only read, but one: naming a remembered stranger.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from stream.errors import FacestreamError
from stream.history import queries
from stream.history.store import HistoryStore, TrackRow
from stream.history.times import parse_time
from stream.images import MAX_MEGAPIXELS, decode_image
from stream.web.guard import Refused
from stream.web.history_search import HeldIndexes, track_threshold
from stream.web.people import MAX_PHOTO_BYTES
from stream.web.priority import yield_to_the_run
from stream.web.uploads import read_name, read_photo

log = logging.getLogger(__name__)

MAX_LIMIT = 1000
DEFAULT_LIMIT = 200
SEARCH_LIMIT = 50


class HistoryView:
    """The web view's side of a history store: per-thread stores, the held search index, the photo models."""

    def __init__(self, url: str, model_name: str | None, max_megapixels: float = MAX_MEGAPIXELS,
                 refresh_s: float = 2.0) -> None:
        self.url = url
        self.model_name = model_name
        self.max_megapixels = max_megapixels
        self._local = threading.local()
        self._opened: HistoryStore | None = None
        self._stores_lock = threading.Lock()
        self._photo_lock = threading.Lock()
        self._photos = None
        self._model = None
        self.indexes = HeldIndexes(self.store, refresh_s=refresh_s)
        # the index of the view's model's space is built at once, in the background, not at the first search
        threading.Thread(target=self._want_model_space, name="history-model", daemon=True).start()

    @property
    def can_name(self) -> bool:
        """Whether the store can name a remembered stranger (HistoryStore.name_stranger)."""
        return hasattr(HistoryStore, "name_stranger")

    def store(self) -> HistoryStore:
        """This thread's store. They share one engine (SQLAlchemy's engine and its connection pool are
        thread-safe, a HistoryStore is not meant to be): the pool bounds the connections to a PostgreSQL
        server however many threads the server runs."""
        store = getattr(self._local, "store", None)
        if store is None:
            with self._stores_lock:
                if self._opened is None:  # opened (and its schema checked) once, on first use
                    self._opened = HistoryStore.open(self.url, create=False)
                store = HistoryStore(self._opened.engine, self._opened.url)
            self._local.store = store
        return store

    def close(self) -> None:
        self.indexes.close()
        with self._photo_lock:
            if self._photos is not None:
                self._photos.close()
                self._photos = None
        with self._stores_lock:
            if self._opened is not None:
                self._opened.close()
                self._opened = None

    def _want_model_space(self) -> None:
        try:
            self.indexes.want(self.model().manifest.embedding_space)
        except Exception as exc:  # no such model here: searches say so when asked
            log.warning("history search: %s", exc)

    def model(self):
        if self._model is None:
            from stream.models.store import ModelStore

            store = ModelStore()
            self._model = store.get(self.model_name, verify=False) if self.model_name else store.get(verify=False)
        return self._model

    # -- answers (run in the thread pool) --------------------------------------------------------
    def people(self, since: float | None, until: float | None, camera: str | None) -> list[dict[str, Any]]:
        return [{**p.__dict__, "thumb": _thumb_url(p.best_track_id)}
                for p in queries.people(self.store(), since=since, until=until, source=camera)]

    def tracks(self, **filters: Any) -> list[dict[str, Any]]:
        return [track_json(row) for row in queries.tracks(self.store(), **filters)]

    def timeline(self, day: str | None, tz: str | None, camera: str | None) -> dict[str, Any]:
        store = self.store()
        zone = queries.zone_info(tz)
        if day is None:  # the latest day with tracks; a store of archives without a start: their pts
            last = queries.latest(store)
            if last is None:
                return {"day": None, "tz": zone.key, "clock": "wall", "start": None, "end": None, "cameras": {},
                        "truncated": False}
            if last < queries.PTS_CLOCK_BELOW:
                start, end = 0.0, max(queries.pts_span(store), 1.0)
                lanes, truncated = queries.timeline(store, start, end + 1e-6, camera)
                return {"day": None, "tz": zone.key, "clock": "pts", "start": start, "end": end, "cameras": lanes,
                        "truncated": truncated}
            day = queries.day_of(last, zone.key)
        start, end = queries.day_window(day, zone.key)
        lanes, truncated = queries.timeline(store, start, end, camera)
        return {"day": day, "tz": zone.key, "clock": "wall", "start": start, "end": end, "cameras": lanes,
                "truncated": truncated}

    def cameras(self) -> list[str]:
        return queries.cameras(self.store())

    def thumbnail(self, track_row_id: int) -> bytes | None:
        return self.store().thumbnail(track_row_id)

    def search_photo(self, data: bytes, filename: str, filters: dict[str, Any]) -> dict[str, Any]:
        """Detect, align and embed the photo's largest face (and its mirror image, as `facestream search`)."""
        from stream.history.search import query_vector
        from stream.photos import PhotoEmbedder, choose_face

        image = decode_image(data, filename, max_megapixels=self.max_megapixels)
        with self._photo_lock:  # one photo at a time: the CPU engine is not shared between threads
            if self._photos is None:
                self._photos = PhotoEmbedder(self.model())
            faces = self._photos.faces(image)
            index = choose_face(faces, image.shape, "largest")
            if index is None:
                raise FacestreamError(f"{filename}: no face found")
            crop = faces.crops[index:index + 1]
            embeddings = self._photos.engine.embed(np.concatenate([crop, crop[:, :, ::-1]]))
        model = self.model()
        answer = self._search(query_vector(embeddings), model.manifest.embedding_space, model.name, filters)
        answer["faces"] = len(faces)
        return answer

    def search_track(self, track_row_id: int, filters: dict[str, Any]) -> dict[str, Any]:
        """The stored track's mean as the query ("more of this stranger"); the track itself comes first."""
        from stream.history.search import unit_rows

        store = self.store()
        rows = store.get([track_row_id])
        found = store.embeddings(track_row_id)
        if not rows or found is None:
            raise FacestreamError(f"track={track_row_id}: no such track")
        row = rows[0]
        # a track's mean lies nearer its person's other tracks than a photo does: the strangers' measured
        # track-to-track cut (0.30 for dlib, where the photo-to-track one is 0.39) keeps other people out
        from stream.history.strangers import track_to_track_threshold

        threshold = filters.get("threshold") or track_to_track_threshold(row.model) or \
            track_threshold(row.model, None)
        return self._search(unit_rows(found[0]), row.embedding_space, row.model, {**filters, "threshold": threshold})

    def _search(self, query: np.ndarray, space: str, model: str, filters: dict[str, Any]) -> dict[str, Any]:
        threshold = track_threshold(model, filters.get("threshold"))
        limit = filters.get("limit") or SEARCH_LIMIT
        since, until, camera = filters.get("since"), filters.get("until"), filters.get("camera")
        store = self.store()
        # the index holds every solid track; the window and camera are applied to the rows: over-fetch
        hits, how = self.indexes.search(store, space, query, threshold, 4 * limit + 100)
        rows = {row.id: row for row in store.get([h.id for h in hits])}
        out = []
        for hit in hits:
            row = rows.get(hit.id)  # a row forgotten since the index read it is gone here
            if row is None or (camera and row.source != camera) or (since is not None and row.ended_at < since) \
                    or (until is not None and row.started_at > until):
                continue
            out.append({**track_json(row), "distance": round(hit.distance, 4)})
            if len(out) == limit:
                break
        return {"threshold": threshold, "index": how, "results": out}

    def name_stranger(self, stranger_id: str, name: str) -> str:
        from stream.web.people import check_identity

        name = check_identity(name)
        store = self.store()
        if not self.can_name:
            raise FacestreamError("this history store cannot name strangers yet")
        if not stranger_id.startswith("stranger-"):
            raise FacestreamError(f"{stranger_id}: not a stranger id (stranger-000123)")
        renamed = store.name_stranger(stranger_id, name)
        if not renamed:
            raise FacestreamError(f"{stranger_id}: no such stranger")
        return f"{stranger_id} named {name}: {renamed} track(s)"


def track_json(row: TrackRow) -> dict[str, Any]:
    pts = row.started_at < queries.PTS_CLOCK_BELOW  # an archive with no known start: its times are its pts
    return {"id": row.id, "camera": row.source, "track_id": row.track_id, "identity": row.identity,
            "stranger_id": row.stranger_id, "who": row.identity or row.stranger_id, "clock": "pts" if pts else "wall",
            "started_at": row.started_at, "ended_at": row.ended_at, "video": row.video, "start_pts": row.start_pts,
            "end_pts": row.end_pts, "score": row.score, "distance": row.distance, "faces": row.faces,
            "detector_score": round(row.detector_score, 4), "run_id": row.run_id, "thumb": _thumb_url(row.id)}


def _thumb_url(track_row_id: int | None) -> str | None:
    return None if track_row_id is None else f"/api/history/thumb/{track_row_id}"


# -- parameters ---------------------------------------------------------------------------------

def _when(params: Any, key: str) -> float | None:
    """``since``/``until`` (stream.history.times: a time without an offset is UTC here)."""
    text = params.get(key)
    return None if text is None or text == "" else parse_time(text, naive="utc", what=key)


def _int(params: Any, key: str, default: int | None, low: int = 1, high: int = MAX_LIMIT) -> int | None:
    text = params.get(key)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise FacestreamError(f"{key}={text}: not a whole number") from None
    if not low <= value <= high:
        raise FacestreamError(f"{key}={text}: not between {low} and {high}")
    return value


def _bool(params: Any, key: str) -> bool | None:
    text = params.get(key)
    if text is None or text == "":
        return None
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise FacestreamError(f"{key}={text}: not true or false")


def _threshold(params: Any) -> float | None:
    text = params.get("threshold")
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 2:
        raise FacestreamError(f"threshold={text}: not a distance in (0, 2]")
    return value


def _search_filters(params: Any) -> dict[str, Any]:
    return {"since": _when(params, "since"), "until": _when(params, "until"), "camera": params.get("camera") or None,
            "limit": _int(params, "limit", SEARCH_LIMIT), "threshold": _threshold(params)}


def _niced_call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    yield_to_the_run()
    return fn(*args, **kwargs)


async def _read(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn`` in the thread pool, at the page's priority; a store that is away (PostgreSQL restarting, a
    locked file) is a 503 with one line, not a 500 with a traceback in the log."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    try:
        return await run_in_threadpool(_niced_call, fn, *args, **kwargs)
    except (OperationalError, DBAPIError) as exc:
        first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["unavailable"])[0]
        raise Refused(503, f"the history store cannot be read now: {first}") from None


def history_routes(get_view: Any) -> list[Route]:
    """The routes; ``get_view()`` is the HistoryView or None (a view without a store answers 404)."""

    def view() -> HistoryView:
        found = get_view()
        if found is None:
            raise Refused(404, "this view has no history store (start it with --history)")
        return found

    async def people(request: Request) -> Response:
        v, q = view(), request.query_params
        return JSONResponse(await _read(v.people, _when(q, "since"), _when(q, "until"),
                                                    q.get("camera") or None))

    async def tracks(request: Request) -> Response:
        v, q = view(), request.query_params
        filters = {"who": q.get("who") or None, "source": q.get("camera") or None, "since": _when(q, "since"),
                   "until": _when(q, "until"), "unknown": _bool(q, "unknown"),
                   "limit": _int(q, "limit", DEFAULT_LIMIT)}
        return JSONResponse(await _read(v.tracks, **filters))

    async def timeline(request: Request) -> Response:
        v, q = view(), request.query_params
        return JSONResponse(await _read(v.timeline, q.get("day") or None, q.get("tz") or None,
                                                    q.get("camera") or None))

    async def cameras(request: Request) -> Response:
        return JSONResponse(await _read(view().cameras))

    async def thumb(request: Request) -> Response:
        data = await _read(view().thumbnail, int(request.path_params["id"]))
        if not data:
            return PlainTextResponse("no such thumbnail", 404)
        # faces: kept by this browser only; a forgotten person's thumbnail is gone from the store at once
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    async def search(request: Request) -> Response:
        v, q = view(), request.query_params
        filters = _search_filters(q)
        if request.method == "GET":
            track = _int(q, "track", None, 1, 2**62)
            if track is None:
                raise FacestreamError("search: give ?track=<track row id>, or POST a photo")
            return JSONResponse(await _read(v.search_track, track, filters))
        data, filename = await read_photo(request, MAX_PHOTO_BYTES)
        return JSONResponse(await _read(v.search_photo, data, filename, filters))

    async def name_stranger(request: Request) -> Response:
        v = view()
        name = await read_name(request)
        message = await _read(v.name_stranger, request.path_params["stranger"], name)
        return JSONResponse({"ok": True, "message": message})

    return [
        Route("/api/history/people", people),
        Route("/api/history/tracks", tracks),
        Route("/api/history/timeline", timeline),
        Route("/api/history/cameras", cameras),
        Route("/api/history/thumb/{id:int}", thumb),
        Route("/api/history/search", search, methods=["GET", "POST"]),
        Route("/api/history/strangers/{stranger}/name", name_stranger, methods=["POST"]),
    ]
