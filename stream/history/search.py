"""Search by face: every stored track whose mean embedding lies near a photo's, ranked.

The rule and its threshold were measured, not borrowed from enrollment (docs/history.md, "Search"):
on the Hamilton clip's labelled tracks the track's quality-weighted *mean* embedding separates people
better than the nearest of its best crops (a single crop is as noisy as a photo; the mean averages the
noise out), and a photo lies further from a track than from another photo of the same person, so the
model's photo-to-photo threshold (dlib's 0.6) lets wrong people in. Distances are taken between unit
vectors (euclidean on the sphere, a monotone function of cosine): the store's means and a photo's
embedding have different norms, and unit rows make every row's norm known in advance, so a block costs
one matrix product.

Pure functions over blocks of ``(ids, embeddings)``: the store streams the blocks
(``HistoryStore.iter_embeddings``), tests and benchmarks pass arrays.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stream.errors import FacestreamError

#: Photo-to-track thresholds (unit-sphere euclidean distance to a track's mean embedding) measured per
#: model on the shared clips (tools/bench_search.py --calibrate). The model manifest has no field for
#: a second threshold, so they live here by model name; ``--threshold`` overrides.
PHOTO_TO_TRACK_THRESHOLDS: dict[str, float] = {"dlib-resnet-v1": 0.39}

DEFAULT_LIMIT = 50
DEFAULT_BLOCK = 65536
#: Tracks searched by default: embedded at least this often, at this mean detector score (the run's
#: ``output.unknown_min_embeddings`` / ``unknown_min_score``). The store keeps every track, and the short,
#: low-scoring ones of the clip (blurred audience, a hand) sit as near a photo (0.37-0.40 from Alex
#: Lacamoire's) as the person's own tracks: a mean of a few poor crops is close to every face.
MIN_FACES = 5
MIN_DETECTOR_SCORE = 0.7


@dataclass(frozen=True)
class Hit:
    """A stored track near the query: its store row id and unit-sphere distance."""

    id: int
    distance: float


def photo_to_track_threshold(model: str, metric: str, photo_threshold: float) -> float:
    """The search threshold for a model: measured where we have it; for a cosine model the same
    cut as its photo threshold mapped to the sphere (|a-b| = sqrt(2 cos-distance)); else none."""
    if model in PHOTO_TO_TRACK_THRESHOLDS:
        return PHOTO_TO_TRACK_THRESHOLDS[model]
    if metric == "cosine":
        return float(np.sqrt(2.0 * photo_threshold))
    raise FacestreamError(f"{model}: no photo-to-track search threshold measured for this model: pass --threshold")


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, float32 (zero rows stay zero)."""
    x = np.asarray(x, np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def query_vector(embeddings: np.ndarray) -> np.ndarray:
    """One unit query from a photo's embedding(s): the mean of their unit rows (a photo and its mirror
    image: a little of the pose noise a track's mean has averaged away)."""
    e = unit_rows(np.atleast_2d(embeddings))
    if not len(e) or not np.isfinite(e).all():
        raise ValueError("no finite query embedding")
    return unit_rows(e.mean(0))


def block_distances(query: np.ndarray, block: np.ndarray) -> np.ndarray:
    """(n,) unit-sphere distances from a unit ``query`` (d,) to each row of ``block`` (n, d), any norms:
    |q - b/|b||^2 = 2 - 2 q.b/|b|, so a block costs one product and its rows' norms."""
    b = np.asarray(block, np.float32)
    dots = b @ np.asarray(query, np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", b, b))
    sq = 2.0 - 2.0 * dots / np.maximum(norms, 1e-12)
    return np.sqrt(np.maximum(sq, 0.0), dtype=np.float32)


def _nearest_per_id(ids: np.ndarray, dist: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``limit`` nearest distinct ids, each at its nearest distance, nearest first (ties by id)."""
    order = np.lexsort((ids, dist))
    ids, dist = ids[order], dist[order]
    _, first = np.unique(ids, return_index=True)
    first.sort()
    first = first[:limit]
    return ids[first], dist[first]


def search_blocks(query: np.ndarray, blocks: Iterable[tuple[np.ndarray, np.ndarray]], threshold: float,
                  limit: int = DEFAULT_LIMIT) -> list[Hit]:
    """Tracks within ``threshold`` of ``query``, nearest first, at most ``limit``.

    An id may repeat within and across blocks (several embeddings per track): it counts at its
    nearest. Memory stays at one block plus a few ``limit`` candidates however many tracks are stored.
    """
    if limit <= 0:
        return []
    keep_ids = np.zeros(0, np.int64)
    keep_dist = np.zeros(0, np.float32)
    for ids, embs in blocks:
        if not len(ids):
            continue
        d = block_distances(query, embs)
        near = d <= threshold
        if near.any():
            keep_ids = np.concatenate([keep_ids, np.asarray(ids, np.int64)[near]])
            keep_dist = np.concatenate([keep_dist, d[near]])
            if len(keep_ids) > 4 * limit:  # trim now and then, not on every block
                keep_ids, keep_dist = _nearest_per_id(keep_ids, keep_dist, limit)
    keep_ids, keep_dist = _nearest_per_id(keep_ids, keep_dist, limit)
    return [Hit(int(i), float(d)) for i, d in zip(keep_ids.tolist(), keep_dist.tolist())]


def searchable(row, min_faces: int = MIN_FACES, min_score: float = MIN_DETECTOR_SCORE) -> bool:
    """Whether a stored track (a TrackRow) is solid enough to be a search result."""
    return row.faces >= min_faces and row.detector_score >= min_score


def exact_top_k(query: np.ndarray, embeddings: np.ndarray, k: int, block: int = DEFAULT_BLOCK) -> np.ndarray:
    """Row indices of the ``k`` nearest rows of an in-memory (n, d) array, nearest first (no threshold):
    the reference an index is checked against."""
    n = len(embeddings)
    k = min(k, n)
    dist = np.empty(n, np.float32)
    for start in range(0, n, block):
        dist[start:start + block] = block_distances(query, embeddings[start:start + block])
    top = np.argpartition(dist, k - 1)[:k] if k < n else np.arange(n)
    return top[np.lexsort((top, dist[top]))]


# -- the photo side -------------------------------------------------------------------------------

@dataclass
class PhotoQuery:
    """A photo's query: the unit vector, the face chosen and how many faces the photo had."""

    vector: np.ndarray
    box: tuple[float, float, float, float]
    faces: int


def photo_query(photo: Path, model) -> PhotoQuery:
    """Detect, align and embed ``photo`` with ``model`` (an InstalledModel); the largest face when it
    has several (a portrait's subject is its largest face; the caller says so)."""
    from stream.images import read_image
    from stream.photos import PhotoEmbedder, choose_face

    image = read_image(photo)
    with PhotoEmbedder(model) as photos:
        faces = photos.faces(image)
        index = choose_face(faces, image.shape, "largest")
        if index is None:
            raise FacestreamError(f"{photo}: no face found")
        crop = faces.crops[index:index + 1]
        embeddings = photos.engine.embed(np.concatenate([crop, crop[:, :, ::-1]]))
    return PhotoQuery(query_vector(embeddings), tuple(float(v) for v in faces.xyxy[index]), len(faces))


def iter_store_blocks(store, embedding_space: str, *, since: float | None = None, until: float | None = None,
                      source: str | None = None, min_faces: int = 0, min_detector_score: float = 0.0,
                      block: int = DEFAULT_BLOCK) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The store's mean embeddings of one space, a block at a time; the quality filter (``searchable``)
    is applied by the query, so rows that cannot be results are not read."""
    yield from store.iter_embeddings(embedding_space, since=since, until=until, source=source, kind="mean",
                                     min_faces=min_faces, min_detector_score=min_detector_score, block=block)
