"""Reading a gallery ``.npz`` and checking it is exactly what :meth:`Gallery.save` writes.

A gallery file comes from outside the running process (another enroll, a copy, a site's driver),
so nothing in it is trusted: every member, dtype, shape, header key and name is checked, and
anything else is one FacestreamError naming the file. The sizes the zip declares are checked
before anything is inflated or allocated, so a small file cannot claim gigabytes of memory.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stream.errors import FacestreamError
from stream.recognize.names import MAX_NAME_CHARS, check_name

GALLERY_SCHEMA = 1
MEMBERS = ("embeddings", "header", "names", "sources")
#: unpacked, all members together: millions of embeddings, far beyond any site, within memory
MAX_GALLERY_BYTES = 2 * 2**30
MAX_DIM = 65536
METRICS = ("euclidean", "cosine")
_TEXT_KEYS = ("model", "embedding_space", "metric")


@dataclass
class GalleryFile:
    header: dict[str, Any]
    embeddings: np.ndarray  # (N, dim) float32, finite
    names: list[str]  # checked by the name rule, NFC
    sources: list[str]


def read_gallery_file(path: Path, max_bytes: int | None = None) -> GalleryFile:
    path = Path(path)
    arrays = _members_of(path, MAX_GALLERY_BYTES if max_bytes is None else max_bytes)
    header = _header(path, arrays["header"])
    dim = header["dim"]
    embeddings, names, sources = arrays["embeddings"], arrays["names"], arrays["sources"]
    if embeddings.dtype != np.float32 or embeddings.ndim != 2 or embeddings.shape[1] != dim:
        raise _bad(path, f"embeddings are {embeddings.dtype} {embeddings.shape}; expected float32 (N, {dim})")
    n = len(embeddings)
    for label, array in (("names", names), ("sources", sources)):
        if array.dtype.kind != "U" or array.shape != (n,):
            raise _bad(path, f"{label} are {array.dtype} {array.shape}; expected {n} strings")
    if not (_valid_text(names) and _valid_text(sources)):
        raise _bad(path, "names or sources hold characters that do not exist")
    if not np.isfinite(embeddings).all():
        raise _bad(path, "embeddings hold NaN or infinite values")
    names_list = _names(path, names)
    sources_list = sources.tolist()
    if any("\x00" in s for s in sources_list):
        raise _bad(path, "a source path holds a NUL")
    return GalleryFile(header, np.ascontiguousarray(embeddings), names_list, sources_list)


def _members_of(path: Path, max_bytes: int, wanted: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """The file's arrays (all, or the ``wanted`` ones), or a one-line error for a file that cannot be read."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, after the zip that reads it
    except OSError as exc:
        raise FacestreamError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    with f:
        return _read_members(path, f, max_bytes, wanted)


def _valid_text(array: np.ndarray) -> bool:
    """Every code point of a str array exists: numpy stores raw UCS-4, and one past U+10FFFF makes
    ``str()`` of the element raise SystemError."""
    if array.size == 0 or array.dtype.itemsize == 0:
        return True
    native = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
    return int(native.view(np.uint32).max(initial=0)) <= 0x10FFFF


def _bad(path: Path, why: str) -> FacestreamError:
    return FacestreamError(f"{path}: not a facestream gallery ({why})")


def read_gallery_header(path: Path, with_names: bool = False) -> tuple[dict[str, Any], list[str] | None]:
    """The checked header (and names) of a gallery file, without reading its embeddings: what an
    append into a 1M-entry gallery needs to know (its model; who is enrolled, to say so)."""
    path = Path(path)
    arrays = _members_of(path, MAX_GALLERY_BYTES, ("header", "names") if with_names else ("header",))
    header = _header(path, arrays["header"])
    if not with_names:
        return header, None
    return header, _names(path, _names_array(path, arrays["names"]))


def read_gallery_names_array(path: Path) -> np.ndarray:
    """The names member of a gallery file as stored (checked as text, not name by name): for
    counting who is enrolled in a 1M-entry gallery without a Python string per entry."""
    path = Path(path)
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, after the zip that reads it
    except OSError as exc:
        raise FacestreamError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    with f:
        arrays = _read_members(path, f, MAX_GALLERY_BYTES, ("header", "names"))
    _header(path, arrays["header"])
    return _names_array(path, arrays["names"])


def _names_array(path: Path, names: np.ndarray) -> np.ndarray:
    if names.dtype.kind != "U" or names.ndim != 1:
        raise _bad(path, f"names are {names.dtype} {names.shape}; expected strings")
    if not _valid_text(names):
        raise _bad(path, "names or sources hold characters that do not exist")
    return names


def _read_members(path: Path, f: Any, max_bytes: int, only: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    try:
        with zipfile.ZipFile(f) as z:
            infos = z.infolist()
            found = sorted(info.filename for info in infos)
            if found != [f"{m}.npy" for m in MEMBERS]:
                raise _bad(path, f"holds {', '.join(found[:6]) or 'nothing'}; expected "
                                 f"{', '.join(m + '.npy' for m in MEMBERS)}")
            total = sum(info.file_size for info in infos)
            if total > max_bytes:
                raise FacestreamError(f"{path}: too large for a gallery ({total / 2**20:.0f} MB unpacked; "
                                      f"at most {max_bytes / 2**20:.0f} MB)")
            return {info.filename[:-4]: _read_array(path, z, info) for info in infos
                    if only is None or info.filename[:-4] in only}
    except FacestreamError:
        raise
    except Exception as exc:  # zipfile and numpy's format reader raise a dozen kinds on bad bytes
        why = str(exc).splitlines()[0][:120] if str(exc) else ""
        raise _bad(path, f"{type(exc).__name__}{': ' + why if why else ''}") from None


def _read_array(path: Path, z: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    fmt = np.lib.format
    with z.open(info) as member:
        version = fmt.read_magic(member)
        if version not in ((1, 0), (2, 0)):  # what np.save writes for these arrays
            raise _bad(path, f"{info.filename}: .npy version {version}")
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _fortran, dtype = read_header(member)
        # the declared shape must fit in what the member holds: never allocate what a header claims
        if dtype.hasobject or any(not isinstance(d, int) or d < 0 for d in shape):
            raise _bad(path, f"{info.filename}: holds {dtype} {shape}")
        if math.prod(shape) * dtype.itemsize > info.file_size:
            raise _bad(path, f"{info.filename}: declares {shape} but holds {info.file_size} bytes")
    with z.open(info) as member:
        return fmt.read_array(member, allow_pickle=False)


def _header(path: Path, raw: np.ndarray) -> dict[str, Any]:
    if raw.dtype.kind != "U" or raw.shape != ():
        raise _bad(path, f"header is {raw.dtype} {raw.shape}; expected one JSON string")
    if not _valid_text(raw):
        raise _bad(path, "header holds characters that do not exist")
    try:
        header = json.loads(str(raw))
    except ValueError:
        raise _bad(path, "header is not JSON") from None
    if not isinstance(header, dict):
        raise _bad(path, f"header is a JSON {type(header).__name__}, not an object")
    schema = header.get("schema")
    if type(schema) is not int or schema != GALLERY_SCHEMA:
        raise FacestreamError(f"{path}: gallery schema {schema!r} is not supported")
    for key in _TEXT_KEYS:
        value = header.get(key)
        if not isinstance(value, str) or not value or not value.isprintable() or len(value) > 200:
            raise _bad(path, f"header {key} is {_short(value)}")
    if header["metric"] not in METRICS:
        raise _bad(path, f"header metric {_short(header['metric'])} is not one of {', '.join(METRICS)}")
    dim = header.get("dim")
    if type(dim) is not int or not 0 < dim <= MAX_DIM:
        raise _bad(path, f"header dim is {_short(dim)}; expected a whole number 1-{MAX_DIM}")
    through = header.get("segments_through", 0)
    if type(through) is not int or not 0 <= through < 10**9:
        raise _bad(path, f"header segments_through is {_short(through)}; expected a whole number >= 0")
    for key in ("created", "updated"):
        value = header.get(key)
        if value is not None and (type(value) not in (int, float) or not math.isfinite(value)):
            raise _bad(path, f"header {key} is {_short(value)}; expected a time")
    return header


def _names(path: Path, names: np.ndarray) -> list[str]:
    plain = _plain_ascii(names)
    as_list: list[str] = names.tolist()
    checked = {}
    for name in {n for n, ok in zip(as_list, plain) if not ok}:  # a gallery holds many embeddings of few people
        try:
            checked[name] = check_name(name)
        except FacestreamError as exc:
            raise FacestreamError(f"{path}: enrolled {exc}") from None
    return [checked.get(n, n) for n in as_list] if checked else as_list


def _plain_ascii(names: np.ndarray) -> np.ndarray:
    """Per name: True when it is printable ASCII that ``check_name`` returns unchanged.

    The same answer as the rule for these names, without a Python call per character: a watchlist
    of 1M people has 1M distinct names, and checking each one char by char takes seconds.
    """
    if names.size == 0 or names.dtype.itemsize == 0:
        return np.zeros(len(names), bool)
    codes = np.ascontiguousarray(names, dtype=names.dtype.newbyteorder("=")).view(np.uint32).reshape(len(names), -1)
    used = codes != 0  # numpy pads with NUL (and drops trailing NULs when storing)
    length = used.sum(1)
    printable = (codes >= 0x20) & (codes <= 0x7E) & (codes != ord("/")) & (codes != ord("\\"))
    ok = (printable | ~used).all(1) & (length > 0) & (length <= MAX_NAME_CHARS)
    ok &= (codes[:, 0] != ord(".")) & (codes[:, 0] != ord(" "))
    last = codes[np.arange(len(names)), np.maximum(length - 1, 0)]
    ok &= last != ord(" ")
    # a NUL inside a name (not padding) is not printable: the first NUL must be at the end
    ok &= used[:, :1].all(1) & (used.cumsum(1)[np.arange(len(names)), np.maximum(length - 1, 0)] == length)
    return ok


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
