"""The one rule for identity names, wherever a name enters: `enroll --name`, a person's folder, the web
view, `enroll --remove`, a gallery file being loaded.

A name becomes a folder (``<gallery>.photos/<name>/``, ``<unknowns>/.named/<name>/``), a label on
the picture, a line in an events file and a key in JSON, so it must be one visible line that is a
safe single path component: printable Unicode only (no control, format, bidi-override, zero-width,
private-use or unassigned characters, which let one name show as another or break a line), no path
separators, not hidden, and short enough to be a file name on every filesystem.
"""

from __future__ import annotations

import unicodedata

from stream.errors import FacestreamError

MAX_NAME_CHARS = 100
#: a folder name may be 255 bytes; a name of 100 four-byte characters would not fit
MAX_NAME_BYTES = 200


def show(text: str) -> str:
    """``text`` quoted for one line of output: what could not be shown or was not UTF-8 escaped.

    A str from a non-UTF-8 file name holds its bytes as surrogates (surrogateescape): shown as
    ``\\xNN``, the bytes that are on disk.
    """
    out = []
    if len(text) > 80:  # a name the length limit refused is shown by its start
        text = text[:60] + "..."
    for c in text:
        if 0xDC80 <= ord(c) <= 0xDCFF:
            out.append(f"\\x{ord(c) - 0xDC00:02x}")
        elif c == "\\":
            out.append("\\\\")
        elif _unusable(c):
            out.append(repr(c)[1:-1] if ord(c) < 0x80 else _escape(c))
        else:
            out.append(c)
    return "'" + "".join(out) + "'"


def check_name(name: str, what: str = "name", shown_as: str | None = None) -> str:
    """``name`` stripped and NFC-composed, or a FacestreamError saying what is wrong with it.

    ``what`` words the error ("folder name"); ``shown_as`` is the input to name in it (a folder's
    path) instead of the name itself.
    """
    if not isinstance(name, str):
        raise FacestreamError(f"{shown_as or repr(name)}: not a usable {what}: not text")
    label = shown_as or show(name)

    def refuse(why: str) -> FacestreamError:
        return FacestreamError(f"{label}: not a usable {what}: {why}")

    if any(0xD800 <= ord(c) <= 0xDFFF for c in name):
        raise refuse("not valid UTF-8 (rename it)")
    name = unicodedata.normalize("NFC", name.strip(" \t\r\n"))
    if not name:
        raise refuse("empty")
    for c in name:
        if c in "/\\":
            raise refuse(f"contains {c!r}, a path separator")
        if _unusable(c):
            raise refuse(f"contains {_describe(c)}, a control or invisible character")
    if name.startswith("."):
        raise refuse("starts with '.'")
    if len(name) > MAX_NAME_CHARS:
        raise refuse(f"{len(name)} characters; at most {MAX_NAME_CHARS}")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise refuse(f"{len(name.encode())} bytes in UTF-8; at most {MAX_NAME_BYTES}")
    return name


def _unusable(c: str) -> bool:
    # C*: control, format (bidi overrides, zero-width), surrogate, private use, unassigned.
    # Z* other than the plain space: line/paragraph separators and spaces that look like one.
    category = unicodedata.category(c)
    return category.startswith("C") or (category.startswith("Z") and c != " ")


def _escape(c: str) -> str:
    return f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}"


def _describe(c: str) -> str:
    code = f"U+{ord(c):04X}"
    label = unicodedata.name(c, "")
    return f"{code} {label}" if label else code
