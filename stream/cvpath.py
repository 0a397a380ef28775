"""File names on their way to OpenCV, which must be valid UTF-8.

Python keeps a name's undecodable bytes as surrogate escapes (``b"\\xff"`` becomes ``"\\udcff"``);
OpenCV's Python binding cannot encode such a string and crashes the process (SIGSEGV, exit 139,
no output) in ``VideoCapture``, ``VideoWriter`` and ``imread`` alike. Every path or URI handed to
OpenCV goes through ``opencv_path`` first, which refuses it in one line instead. (Opening through
``/proc/self/fd`` would work for a file we read, but not for a file OpenCV writes or for a URL, and
the run would then show a name the user never typed: one clear refusal is simpler.)
"""

from __future__ import annotations

import os
from pathlib import Path

from stream.errors import FacestreamError


def shown(path: str | Path) -> str:
    """``path`` printable anywhere: undecodable bytes written as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def opencv_path(path: str | Path, label: str | None = None) -> str:
    """``str(path)``, or a one-line error naming it (``label``: how to show it, e.g. with a password masked)
    when OpenCV cannot be given it."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise FacestreamError(f"{shown(label if label is not None else text)}: the name is not valid UTF-8, "
                              "which OpenCV cannot open (rename it)") from None
    return text
