"""Gallery files that are not exactly what the loader expects: one FacestreamError, never anything else.

The variants are the ones found crashing a run (a header that is a JSON list, no ``dim``, a name
that is not valid UTF-8 or holds a NUL) and their kin; the fuzz test mutates a real saved gallery
a few hundred ways (seeded) and asserts the loader either gives a valid Gallery or raises
FacestreamError.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from stream.errors import FacestreamError
from stream.recognize.gallery import Gallery
from stream.recognize.names import check_name

HEADER = {"schema": 1, "model": "dlib-resnet-v1", "embedding_space": "dlib-resnet-v1", "metric": "euclidean",
          "dim": 4, "created": 1.0, "updated": 2.0}


def _members(**change) -> dict:
    members = {"header": np.array(json.dumps(HEADER)), "embeddings": np.full((2, 4), 0.1, np.float32),
               "names": np.array(["ann", "bob"]), "sources": np.array(["", "b.jpg"])}
    members.update(change)
    return {k: v for k, v in members.items() if v is not None}


def _write(path: Path, **change) -> Path:
    with open(path, "wb") as f:
        np.savez(f, **_members(**change))
    return path


def _header(**change) -> np.ndarray:
    return np.array(json.dumps({k: v for k, v in {**HEADER, **change}.items() if v is not None}))


def test_the_reference_file_loads(tmp_path):
    g = Gallery.load(_write(tmp_path / "g.npz"))
    assert g.names == ["ann", "bob"] and g.dim == 4 and g.sources == ["", "b.jpg"]


BROKEN = {
    "header is a list": dict(header=np.array(json.dumps([1, 2]))),
    "header is a string": dict(header=np.array(json.dumps("x"))),
    "header is not JSON": dict(header=np.array("{nope")),
    "header is an array of strings": dict(header=np.array([json.dumps(HEADER)] * 2)),
    "header is bytes": dict(header=np.array(json.dumps(HEADER).encode())),
    "no dim": dict(header=_header(dim=None)),
    "dim a string": dict(header=_header(dim="4")),
    "dim a float": dict(header=_header(dim=4.5)),
    "dim a bool": dict(header=_header(dim=True)),
    "dim zero": dict(header=_header(dim=0)),
    "dim negative": dict(header=_header(dim=-4)),
    "dim huge": dict(header=_header(dim=10**12)),
    "no model": dict(header=_header(model=None)),
    "model a number": dict(header=_header(model=3)),
    "metric unknown": dict(header=_header(metric="manhattan")),
    "schema 2": dict(header=_header(schema=2)),
    "created a string": dict(header=_header(created="yesterday")),
    "created infinite": dict(header=np.array(json.dumps({**HEADER, "created": float("inf")}))),
    "no header": dict(header=None),
    "no names": dict(names=None),
    "no sources": dict(sources=None),
    "an extra member": dict(extra=np.zeros(3)),
    "names are numbers": dict(names=np.array([1, 2])),
    "names are bytes": dict(names=np.array([b"ann", b"bob"])),
    "names 2-D": dict(names=np.array([["ann"], ["bob"]])),
    "names too few": dict(names=np.array(["ann"])),
    "a name with a NUL": dict(names=np.array(["ann", "b\x00ob"])),
    "a name with a bidi override": dict(names=np.array(["ann", "bob\u202e"])),
    "a name not valid UTF-8": dict(names=np.array(["ann", os.fsdecode(b"b\xffob")])),
    "a name with a slash": dict(names=np.array(["ann", "../bob"])),
    "an empty name": dict(names=np.array(["ann", ""])),
    "sources too many": dict(sources=np.array(["", "", ""])),
    "sources are numbers": dict(sources=np.array([1.0, 2.0])),
    "a source with a NUL": dict(sources=np.array(["", "b\x00.jpg"])),
    "embeddings float64": dict(embeddings=np.full((2, 4), 0.1)),
    "embeddings int": dict(embeddings=np.ones((2, 4), np.int32)),
    "embeddings 1-D": dict(embeddings=np.full(8, 0.1, np.float32)),
    "embeddings 3-D": dict(embeddings=np.full((2, 4, 1), 0.1, np.float32)),
    "embeddings another dim": dict(embeddings=np.full((2, 5), 0.1, np.float32)),
    "embeddings NaN": dict(embeddings=np.array([[0.1] * 4, [np.nan] * 4], np.float32)),
    "embeddings inf": dict(embeddings=np.array([[0.1] * 4, [np.inf] * 4], np.float32)),
    "embeddings complex": dict(embeddings=np.full((2, 4), 0.1, np.complex64)),
    "embeddings a structured array": dict(embeddings=np.zeros(2, dtype=[("a", np.float32, 4)])),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_gallery_not_as_expected_is_one_line(tmp_path, case):
    path = _write(tmp_path / "g.npz", **BROKEN[case])
    with pytest.raises(FacestreamError) as info:
        Gallery.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    class Boom:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    path = tmp_path / "g.npz"
    with open(path, "wb") as f:
        np.savez(f, **_members(names=np.array([Boom(), Boom()], dtype=object)))
    with pytest.raises(FacestreamError, match="not a facestream gallery"):
        Gallery.load(path)
    assert not (tmp_path / "pwned").exists()


def _rezip(path: Path, name: str, header_shape: tuple, data_bytes: int) -> None:
    """Replace member ``name`` by a deflated .npy of ``header_shape`` float32 followed by zeros."""
    with zipfile.ZipFile(path) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": header_shape})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for member, data in parts.items():
            if member != name:
                z.writestr(member, data)
                continue
            with z.open(member, "w", force_zip64=True) as out:
                out.write(buf.getvalue())
                chunk = bytes(2**22)
                for _ in range(data_bytes // len(chunk)):
                    out.write(chunk)


def test_a_member_that_claims_a_huge_shape_is_refused_before_reading(tmp_path):
    path = _write(tmp_path / "g.npz")
    _rezip(path, "embeddings.npy", (2**30, 4), 0)  # 16 GB claimed, nothing there
    with pytest.raises(FacestreamError, match="g.npz: "):
        Gallery.load(path)


def test_a_deflate_bomb_is_refused_before_it_is_inflated(tmp_path, monkeypatch):
    """A deflated member of zeros: small on disk, far larger in memory (scaled down: the cap is lowered)."""
    from stream.recognize import gallery_file

    path = _write(tmp_path / "g.npz")
    _rezip(path, "embeddings.npy", (2**22, 4), 2**26)
    assert path.stat().st_size < 2**20
    monkeypatch.setattr(gallery_file, "MAX_GALLERY_BYTES", 2**24)
    with pytest.raises(FacestreamError, match="too large"):
        Gallery.load(path)


# -- fuzz --------------------------------------------------------------------------------------------

def _valid(g: Gallery) -> None:
    """What a loaded gallery promises the pipeline and the web view."""
    assert isinstance(g.dim, int) and g.dim > 0
    assert g.embeddings.dtype == np.float32 and g.embeddings.shape == (len(g.names), g.dim)
    assert np.isfinite(g.embeddings).all()
    assert len(g.sources) == len(g.names) and all(isinstance(s, str) and "\x00" not in s for s in g.sources)
    assert all(check_name(n) == n for n in g.names)
    assert all(isinstance(v, str) and v for v in (g.model, g.embedding_space, g.metric))


def _zip_members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {n: z.read(n) for n in z.namelist()}


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _mutations(reference: bytes, rng: np.random.Generator):
    """(label, bytes) of mutated galleries: bytes flipped, cut, members swapped, headers varied."""
    members = _zip_members(reference)
    names = sorted(members)
    for i in range(150):
        data = bytearray(reference)
        for _ in range(int(rng.integers(1, 8))):
            data[int(rng.integers(len(data)))] = int(rng.integers(256))
        yield f"flip-{i}", bytes(data)
    for i in range(40):
        yield f"cut-{i}", reference[:int(rng.integers(len(reference)))]
    for i in range(30):
        a, b = rng.choice(names, 2, replace=False)
        swapped = dict(members)
        swapped[a], swapped[b] = members[b], members[a]
        yield f"swap-{a}-{b}-{i}", _zip(swapped)
    for name in names:
        yield f"drop-{name}", _zip({k: v for k, v in members.items() if k != name})
        yield f"dup-{name}", _zip({**members, f"x{name}": members[name]})
    for i in range(60):  # flips inside one .npy member, re-zipped so the zip itself stays valid
        name = names[int(rng.integers(len(names)))]
        blob = bytearray(members[name])
        for _ in range(int(rng.integers(1, 4))):
            blob[int(rng.integers(len(blob)))] = int(rng.integers(256))
        yield f"member-{name}-{i}", _zip({**members, name: bytes(blob)})
    values = [None, 0, -1, 1.5, "x", "", [], {}, True, 10**30, float("nan"), "\x00", "a\u202eb"]
    for key in ["schema", "model", "embedding_space", "metric", "dim", "created", "updated", "segments_through",
                "extra"]:
        for value in values:
            buf = io.BytesIO()
            np.save(buf, _header(**{key: value}) if value is not None else _header(**{key: None}))
            yield f"header-{key}={value!r}", _zip({**members, "header.npy": buf.getvalue()})


@pytest.mark.slow
def test_fuzzed_galleries_load_valid_or_raise_one_line(tmp_path):
    reference_path = tmp_path / "ref.npz"
    g = Gallery("dlib-resnet-v1", "dlib-resnet-v1", "euclidean", 8)
    rng = np.random.default_rng(20)
    g.add("ann", rng.normal(size=(3, 8)).astype(np.float32), ["a1.jpg", "a2.jpg", "a3.jpg"])
    g.add("José", rng.normal(size=(1, 8)).astype(np.float32))
    g.save(reference_path)
    reference = reference_path.read_bytes()
    path = tmp_path / "g.npz"
    _load_every_mutation(path, path, reference, rng)


@pytest.mark.slow
def test_fuzzed_segments_load_valid_or_raise_one_line(tmp_path):
    """An appended segment is read by the same strict rules: a mutated one is one line naming the gallery."""
    from stream.recognize.gallery import edit_gallery, list_segments

    path = tmp_path / "g.npz"
    g = Gallery("dlib-resnet-v1", "dlib-resnet-v1", "euclidean", 8)
    rng = np.random.default_rng(22)
    g.add("ann", rng.normal(size=(2, 8)).astype(np.float32), ["a1.jpg", "a2.jpg"])
    g.save(path)
    with edit_gallery(path) as edit:
        edit.add("José", rng.normal(size=(2, 8)).astype(np.float32))
    segment = list_segments(path)[0][1]
    reference = segment.read_bytes()
    _load_every_mutation(path, segment, reference, rng, first_names=["ann", "ann"])


@pytest.mark.parametrize("name", ["ann", "Ann Lee", " ann", "ann ", ".ann", "a/b", "a\\b", "a\tb", "a\x00b", "x" * 101,
                                  "x" * 100, "~!@#$%^&*()_+{}|:<>?", "José", "e\u0301", "a\u202eb", "-", "a.b"])
def test_the_fast_name_check_agrees_with_the_rule(tmp_path, name):
    """The vectorised check for plain ASCII names gives what check_name gives, refusals included."""
    path = _write(tmp_path / "g.npz", names=np.array(["bob", name]))
    try:
        expected = check_name(name)
    except FacestreamError:
        with pytest.raises(FacestreamError, match="enrolled"):
            Gallery.load(path)
    else:
        assert Gallery.load(path).names == ["bob", expected]


def _load_every_mutation(gallery: Path, target: Path, reference: bytes, rng,
                         first_names: list[str] | None = None) -> None:
    """Write each mutation of ``reference`` to ``target`` and load ``gallery``: a valid gallery or one
    line naming it, never another exception; enough of both to mean something."""
    outcomes = {"loaded": 0, "refused": 0}
    for label, data in _mutations(reference, rng):
        target.write_bytes(data)
        try:
            loaded = Gallery.load(gallery)
        except FacestreamError as exc:
            assert str(exc).startswith(f"{gallery}: ") and "\n" not in str(exc), (label, exc)
            outcomes["refused"] += 1
        except Exception as exc:  # what the test is for
            pytest.fail(f"{label}: {type(exc).__name__}: {exc}")
        else:
            _valid(loaded)
            if first_names is not None:
                assert loaded.names[: len(first_names)] == first_names
            outcomes["loaded"] += 1
    assert sum(outcomes.values()) > 300 and outcomes["refused"] > 100, outcomes
