"""Large galleries: blocked exact search, the faiss index, appended segments, reloads off the pipeline's thread."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from stream.errors import FacestreamError
from stream.models.manifest import distance_matrix
from stream.recognize import gallery_index
from stream.recognize.gallery import Gallery, edit_gallery, file_id, list_segments, segment_dir
from stream.recognize.gallery_index import GallerySearchConfig, faiss_available, index_dir
from stream.recognize.reload import GalleryWatcher
from tests.conftest import media_path

needs_faiss = pytest.mark.skipif(not faiss_available(), reason="faiss-cpu is not installed (extra `index`)")


def _gallery(n: int, metric: str = "euclidean", seed: int = 0, dim: int = 128) -> Gallery:
    rng = np.random.default_rng(seed)
    emb = rng.normal(0, 0.12, (n, dim)).astype(np.float32)
    return Gallery("dlib-resnet-v1", "dlib-resnet-v1", metric, dim, [f"p{i % 997}" for i in range(n)], emb)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_blocked_exact_search_is_todays_result(metric, monkeypatch):
    """Precomputed norms and one GEMM per block: the same names and distances as the whole matrix."""
    monkeypatch.setattr(gallery_index, "BLOCK", 1000)  # several blocks and a ragged last one
    g = _gallery(4321, metric)
    queries = np.random.default_rng(7).normal(0, 0.12, (300, 128)).astype(np.float32)
    queries[:20] = g.embeddings[:20]  # exact hits, and ties between repeated rows are decided the same way
    names, d = g.match(queries)
    full = distance_matrix(queries, g.embeddings, metric)
    best = full.argmin(1)
    assert names == [g.names[i] for i in best]
    np.testing.assert_allclose(d, full[np.arange(len(queries)), best], atol=1e-5)


def test_matching_follows_adds_and_removals():
    g = _gallery(50)
    probe = np.full((1, 128), 3.0, np.float32)
    assert g.match(probe)[0] != ["far"]
    g.add("far", probe)
    assert g.match(probe)[0] == ["far"]  # the cached norms were dropped with the add
    g.remove("far")
    assert g.match(probe)[0] != ["far"]


def test_an_enroll_appends_a_segment_and_leaves_the_base(tmp_path: Path):
    path = tmp_path / "g.npz"
    _gallery(200).save(path)
    base_before = path.stat()
    with edit_gallery(path, None) as g:
        g.add("ann", np.full((2, 128), 0.5, np.float32), ["a1.jpg", "a2.jpg"])
    with edit_gallery(path, None) as g:
        g.add("bob", np.full((1, 128), -0.5, np.float32))
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (base_before.st_ino, base_before.st_mtime_ns)  # not rewritten
    assert [p.name for _, p in list_segments(path)] == ["000001.npz", "000002.npz"]
    loaded = Gallery.load(path)
    assert len(loaded) == 203 and loaded.names[-3:] == ["ann", "ann", "bob"]
    assert loaded.sources[-3:] == ["a1.jpg", "a2.jpg", ""] and loaded.base_rows == 200
    assert loaded.match(np.full((1, 128), -0.5, np.float32))[0] == ["bob"]


def test_a_removal_or_compact_rewrites_the_base_and_drops_the_segments(tmp_path: Path):
    path = tmp_path / "g.npz"
    _gallery(30).save(path)
    with edit_gallery(path, None) as g:
        g.add("ann", np.full((1, 128), 0.5, np.float32))
    with edit_gallery(path, None) as g:
        g.add("bob", np.full((1, 128), 0.6, np.float32))
    with edit_gallery(path, None) as g:
        assert g.remove("ann") == 1
    assert list_segments(path) == []
    loaded = Gallery.load(path)
    assert "ann" not in loaded.names and loaded.names[-1] == "bob" and loaded.base_rows == 31
    with edit_gallery(path, None) as g:
        g.add("carl", np.full((1, 128), 0.7, np.float32))
    assert [p.name for _, p in list_segments(path)] == ["000003.npz"]  # numbered past what the base holds
    with edit_gallery(path, None, compact=True):
        pass
    assert list_segments(path) == [] and Gallery.load(path).base_rows == 32


def test_segments_left_by_an_interrupted_compaction_are_not_loaded_twice(tmp_path: Path):
    path = tmp_path / "g.npz"
    _gallery(10).save(path)
    with edit_gallery(path, None) as g:
        g.add("ann", np.full((1, 128), 0.5, np.float32))
    segment = list_segments(path)[0][1]
    kept = segment.read_bytes()
    with edit_gallery(path, None, compact=True):
        pass
    segment.write_bytes(kept)  # as if the compaction died after the replace, before its deletes
    loaded = Gallery.load(path)
    assert loaded.names.count("ann") == 1 and len(loaded) == 11


def test_many_segments_are_compacted(tmp_path: Path, monkeypatch):
    from stream.recognize import gallery as gallery_mod

    monkeypatch.setattr(gallery_mod, "MAX_SEGMENTS", 3)
    path = tmp_path / "g.npz"
    _gallery(5).save(path)
    for i in range(4):
        with edit_gallery(path, None) as g:
            g.add(f"n{i}", np.full((1, 128), i / 10, np.float32))
    assert list_segments(path) == [] and Gallery.load(path).names[-4:] == ["n0", "n1", "n2", "n3"]


def test_a_bad_segment_is_one_line_naming_the_gallery(tmp_path: Path):
    path = tmp_path / "g.npz"
    _gallery(5).save(path)
    segment_dir(path).mkdir()
    (segment_dir(path) / "000001.npz").write_bytes(b"PK\x03\x04broken")
    (segment_dir(path) / ".000002.npz.123.tmp").write_bytes(b"half a write")  # not a segment: ignored
    with pytest.raises(FacestreamError) as err:
        Gallery.load(path)
    assert str(err.value).startswith(f"{path}: appended {segment_dir(path) / '000001.npz'}: not a facestream")
    assert "\n" not in str(err.value)
    (segment_dir(path) / "000001.npz").unlink()
    other = Gallery("other", "other-space", "euclidean", 128)
    other.add("x", np.zeros((1, 128), np.float32))
    other.save(segment_dir(path) / "000001.npz")
    with pytest.raises(FacestreamError, match="by another model"):
        Gallery.load(path)


def test_the_watcher_sees_an_append(tmp_path: Path, default_model):
    path = tmp_path / "g.npz"
    _gallery(5).save(path)
    watcher = GalleryWatcher(path, default_model.manifest, interval_s=0.0)
    before = file_id(path)
    with edit_gallery(path, None) as g:
        g.add("ann", np.full((1, 128), 0.5, np.float32))
    assert file_id(path) != before
    assert watcher.poll().names[-1] == "ann"
    assert watcher.poll() is None


def test_a_reload_runs_in_the_background_and_swaps_when_ready(tmp_path: Path, monkeypatch, default_model):
    """Matching goes on with the old gallery while the new one loads; poll hands it over once ready."""
    path = tmp_path / "g.npz"
    _gallery(5).save(path)
    gate = threading.Event()
    real_load = Gallery.load.__func__

    def slow_load(cls, *args, **kwargs):
        gate.wait(10)
        return real_load(cls, *args, **kwargs)

    watcher = GalleryWatcher(path, default_model.manifest, interval_s=0.0, background=True)
    with edit_gallery(path, None) as g:
        g.add("ann", np.full((1, 128), 0.5, np.float32))
    monkeypatch.setattr(Gallery, "load", classmethod(slow_load))
    started = time.monotonic()
    assert watcher.poll() is None and watcher.busy()  # the load started; poll did not wait for it
    assert watcher.poll() is None
    assert time.monotonic() - started < 1.0
    gate.set()
    watcher.wait(10)
    assert watcher.poll().names[-1] == "ann"
    assert watcher.poll() is None


def test_search_config_chooses_exact_below_the_threshold():
    assert not GallerySearchConfig().wants_index(1000)
    assert GallerySearchConfig().wants_index(GallerySearchConfig().index_min_entries)
    assert GallerySearchConfig(index="faiss").wants_index(10)
    assert not GallerySearchConfig(index="exact").wants_index(10**7)


@needs_faiss
def test_the_index_is_cached_beside_the_gallery_and_dropped_on_rewrite(tmp_path: Path, monkeypatch):
    path = tmp_path / "g.npz"
    _gallery(3000).save(path)
    config = GallerySearchConfig(index="faiss")
    g = Gallery.load(path)
    g.prepare(config, index_dir(path))
    assert g.search().index is not None and len(list(index_dir(path).glob("*.faiss"))) == 1
    built = []
    monkeypatch.setattr(gallery_index, "build_index", lambda *a, **k: built.append(1))
    again = Gallery.load(path)
    again.prepare(config, index_dir(path))
    assert built == [] and again.search().index is not None  # read from the cache, not rebuilt
    with edit_gallery(path, None) as edit:  # an append keeps the base, so the index still fits it
        edit.add("ann", np.full((1, 128), 0.9, np.float32))
    assert len(list(index_dir(path).glob("*.faiss"))) == 1
    appended = Gallery.load(path)
    appended.prepare(config, index_dir(path))
    assert built == [] and appended.search().indexed == 3000
    assert appended.match(np.full((1, 128), 0.9, np.float32))[0] == ["ann"]  # the appended row, searched exactly
    with edit_gallery(path, None) as edit:
        edit.remove("p1")
    assert list(index_dir(path).glob("*.faiss")) == []  # it held p1's embeddings


def _clip_embeddings(default_model) -> np.ndarray:
    import cv2

    from stream.photos import PhotoEmbedder

    cap = cv2.VideoCapture(str(media_path("short_hamilton_clip.mp4")))
    out = []
    with PhotoEmbedder(default_model) as photos:
        frame = 0
        while True:
            ok, image = cap.read()
            if not ok:
                break
            if frame % 2 == 0:
                out.append(photos.embed(photos.faces(image)))
            frame += 1
    return np.concatenate(out)


@needs_faiss
@pytest.mark.slow
def test_index_top1_agrees_with_exact_search_on_the_clips_faces(default_model):
    """Real query embeddings from the clip against 60k entries spread like other people's faces near
    them (see tools/bench_gallery.py): the index's top-1 is exact search's on >= 99.9% of queries."""
    from tools.bench_gallery import synthetic

    real = _clip_embeddings(default_model)
    rng = np.random.default_rng(3)
    queries = np.concatenate([real] + [real + rng.normal(0, 0.03, real.shape).astype(np.float32) for _ in range(4)])
    assert len(queries) >= 1000
    g = Gallery("dlib-resnet-v1", "dlib-resnet-v1", "euclidean", 128)
    g.add("crowd", synthetic(real, 60_000, seed=5))
    _, exact_d = g.match(queries)
    exact_rows = g.search().exact.top1(*g.search().exact.prepare(queries))[0]
    g.prepare(GallerySearchConfig(index="faiss"))
    assert g.search().index is not None
    rows, d = g.search().top1(queries)
    agree = np.mean((rows == exact_rows) | (np.abs(d - exact_d) < 1e-5))
    assert agree >= 0.999, agree
    np.testing.assert_allclose(d[rows == exact_rows], exact_d[rows == exact_rows], atol=1e-5)  # re-ranked exactly


@needs_faiss
def test_the_starting_gallery_gets_its_index_in_the_background(tmp_path: Path, default_model):
    """The publisher's first gallery matches exactly at once and through the index once it is built."""
    path = tmp_path / "g.npz"
    _gallery(3000).save(path)
    g = Gallery.load(path, default_model.manifest)
    probe = g.embeddings[:5] + 0.001
    before = g.match(probe)
    watcher = GalleryWatcher(path, default_model.manifest, interval_s=0.0, search=GallerySearchConfig(index="faiss"),
                             background=True, initial=g)
    assert g.match(probe)[0] == before[0]  # usable while the index builds
    watcher.wait(60)
    assert g.search().index is not None and g.search().indexed == 3000
    assert g.match(probe)[0] == before[0]
    assert watcher.poll() is None  # the same gallery, not a reload


def test_a_copy_for_a_shard_holds_the_appended_rows(tmp_path: Path):
    """A site's driver and the Ray batch send one file's bytes: enrolls since the last compaction must be in it."""
    from stream.recognize.gallery import gallery_bytes

    path = tmp_path / "g.npz"
    _gallery(4).save(path)
    assert gallery_bytes(path) == path.read_bytes()
    with edit_gallery(path, None) as g:
        g.add("ann", np.full((1, 128), 0.5, np.float32), ["a.jpg"])
    copy = tmp_path / "shard" / "gallery.npz"
    copy.parent.mkdir()
    copy.write_bytes(gallery_bytes(path))
    loaded = Gallery.load(copy)
    assert len(loaded) == 5 and loaded.names[-1] == "ann" and loaded.sources[-1] == "a.jpg"


def test_enroll_compact_merges_the_segments(cli, tmp_path: Path):
    from tests.conftest import assert_one_line_error

    path = tmp_path / "g.npz"
    _gallery(6).save(path)
    for name in ("ann", "bob"):
        with edit_gallery(path, None) as g:
            g.add(name, np.full((1, 128), 0.5, np.float32))
    proc = cli("enroll", "--gallery", str(path), "--compact")
    assert proc.returncode == 0, proc.stderr
    assert "2 appended segment(s) merged" in proc.stdout
    assert list_segments(path) == [] and Gallery.load(path).names[-2:] == ["ann", "bob"]
    assert_one_line_error(cli("enroll", "--gallery", str(tmp_path / "none.npz"), "--compact"), "gallery not found")


def test_an_enroll_reads_the_header_not_the_embeddings(tmp_path: Path, monkeypatch, default_model):
    """Appending to a large gallery must not read its rows; a removal in the same edit still can."""
    path = tmp_path / "g.npz"
    _gallery(40).save(path)
    with edit_gallery(path, None) as g:
        g.add("bob", np.full((1, 128), 0.4, np.float32))
    real_load = Gallery.load.__func__
    loads = []

    def counting_load(cls, *args, **kwargs):
        loads.append(args[0])
        return real_load(cls, *args, **kwargs)

    monkeypatch.setattr(Gallery, "load", classmethod(counting_load))
    with edit_gallery(path, default_model.manifest) as g:
        g.add("ann", np.full((1, 128), 0.5, np.float32))
    assert loads == [] and g.identities() == sorted({f"p{i}" for i in range(40)} | {"ann", "bob"})
    with edit_gallery(path, default_model.manifest) as g:
        g.add("carl", np.full((1, 128), 0.6, np.float32))
        assert g.remove("ann") == 1  # reads the stored rows, then rewrites
    assert len(loads) == 1 and list_segments(path) == []
    monkeypatch.undo()
    assert Gallery.load(path).names[-2:] == ["bob", "carl"]
    other = default_model.manifest.model_copy(update={"name": "facenet-vggface2", "embedding_size": 512})
    with pytest.raises(FacestreamError, match="built with model"), edit_gallery(path, other):
        pass


def test_identity_count_without_reading_the_rows(tmp_path: Path, default_model):
    path = tmp_path / "g.npz"
    _gallery(3000).save(path)  # p0..p996
    with edit_gallery(path, None) as g:
        g.add("ann", np.full((1, 128), 0.4, np.float32))
    with edit_gallery(path, default_model.manifest) as g:
        g.add("José", np.full((1, 128), 0.5, np.float32))
        g.add("p5", np.full((1, 128), 0.6, np.float32))  # already enrolled: not counted twice
        assert g.identity_count() == 999
    assert g._lazy is not None  # counted without reading the embeddings
    assert Gallery.load(path).identity_count() == len(Gallery.load(path).identities()) == 999


@needs_faiss
def test_a_run_with_a_large_indexed_gallery_names_lin(cli, tmp_path: Path):
    """A real run: photos enrolled (appended) into a gallery of 20k others, matched through the
    index the publisher builds in the background and caches beside the gallery."""
    import json

    path = tmp_path / "people.npz"
    crowd = _gallery(20_000, seed=9)
    crowd.names = [f"other-{i}" for i in range(len(crowd))]
    crowd.save(path)
    cli("enroll", "--gallery", path, "--name", "lin-manuel-miranda", media_path("lin-manuel-miranda.png"), check=True)
    cli("enroll", "--gallery", path, "--name", "alex-lacamoire", media_path("alex-lacamoire.png"), check=True)
    assert len(list_segments(path)) == 2
    config = tmp_path / "config.yaml"
    config.write_text("gallery_search:\n  index: faiss\n")
    cli("run", "--config", config, "--source", media_path("short_hamilton_clip.mp4"), "--gallery", path,
        "--events-out", tmp_path / "events.jsonl", "--no-progress", check=True)
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    names = {e["identity"] for e in events if e["type"] == "identity" and e["identity"]}
    assert "lin-manuel-miranda" in names and not any(n.startswith("other-") for n in names), names
    assert len(list(index_dir(path).glob("*.faiss"))) == 1  # built by the publisher over the base


def _people_gallery(n: int, seed: int) -> tuple[Gallery, np.ndarray]:
    """``n`` entries of n/4 people (4 photos each, ~0.4 apart) and 1200 queries near some of them: as
    a gallery of faces, not uniform noise, so nearest-neighbour ties are close."""
    rng = np.random.default_rng(seed)
    people = rng.normal(0, 0.1, (n // 4, 128)).astype(np.float32)
    who = np.repeat(np.arange(len(people)), 4)
    emb = people[who] + rng.normal(0, 0.025, (len(who), 128)).astype(np.float32)
    g = Gallery("dlib-resnet-v1", "dlib-resnet-v1", "euclidean", 128, [f"p{i}" for i in who], emb)
    queries = people[rng.integers(0, len(people), 1200)] + rng.normal(0, 0.03, (1200, 128)).astype(np.float32)
    return g, queries


@needs_faiss
@pytest.mark.slow
@pytest.mark.parametrize("config", [GallerySearchConfig(index="faiss"),
                                    GallerySearchConfig(index="faiss", index_type="hnsw"),
                                    GallerySearchConfig(index="faiss", index_type="ivf", nprobe=64)],
                         ids=["ivfpq", "hnsw", "ivf"])
def test_the_index_top1_agrees_with_exact_search(config):
    """Seeded: each index's top-1 name is exact search's on >= 99.9% of queries, at exact distances."""
    g, queries = _people_gallery(12_000, seed=11)
    exact_names, exact_d = g.match(queries)
    g.prepare(config)
    assert g.search().index is not None and g.search().indexed == len(g)
    names, d = g.match(queries)
    same = np.array([a == b for a, b in zip(names, exact_names)])
    assert same.mean() >= 0.999, same.mean()
    np.testing.assert_allclose(d[same], exact_d[same], atol=1e-5)  # re-ranked exactly
    assert (d >= exact_d - 1e-5).all()  # never nearer than the truth


@needs_faiss
@pytest.mark.slow
def test_the_cached_index_is_the_kind_asked_for(tmp_path: Path):
    """An HNSW cache is not read back as an IVF index (or one with other links, or an IVF of codes as
    one of rows): each is its own file."""
    import faiss

    path = tmp_path / "g.npz"
    _gallery(2000).save(path)
    for config, kind in ((GallerySearchConfig(index="faiss"), faiss.IndexIVFPQFastScan),
                         (GallerySearchConfig(index="faiss", index_type="hnsw"), faiss.IndexHNSW),
                         (GallerySearchConfig(index="faiss", index_type="ivf"), faiss.IndexIVFFlat),
                         (GallerySearchConfig(index="faiss", index_type="hnsw", hnsw_m=16), faiss.IndexHNSW)):
        g = Gallery.load(path)
        g.prepare(config, index_dir(path))
        assert isinstance(g.search().index, kind)
        assert [p.name.split(".")[1] for p in index_dir(path).glob("*.faiss")] == [config.index_tag]
    g = Gallery.load(path)
    g.prepare(GallerySearchConfig(index="faiss", index_type="hnsw", hnsw_m=16, ef_search=7), index_dir(path))
    assert g.search().index.hnsw.efSearch == 7 and g.search().index.hnsw.nb_neighbors(1) == 16  # read, re-tuned
    g = Gallery.load(path)
    g.prepare(GallerySearchConfig(index="faiss", nprobe=3, pq_candidates=40), index_dir(path))
    assert isinstance(g.search().index, faiss.IndexIVFPQFastScan)  # built again: the cache held other kinds
    assert g.search().index.nprobe == 3 and g.search().candidates == 40
