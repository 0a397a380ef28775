"""One rule for identity names, wherever a name enters: the CLI, folders, the web view, the gallery file."""

from __future__ import annotations

import os

import numpy as np
import pytest

from stream.errors import FacestreamError
from stream.recognize.gallery import Gallery
from stream.recognize.names import MAX_NAME_CHARS, check_name


@pytest.mark.parametrize("name", ["ann", "Barack Obama", "lin-manuel-miranda", "José Núñez", "王小明", "O'Brien",
                                  "a.b", "x" * MAX_NAME_CHARS])
def test_ordinary_names_are_kept(name):
    assert check_name(name) == name


def test_names_are_stripped_and_composed():
    assert check_name("  ann \n") == "ann"
    # the same name typed on Linux and read from a macOS folder (decomposed) is one person
    assert check_name("Jose\u0301") == "José"


@pytest.mark.parametrize(("name", "why"), [
    ("", "empty"),
    ("   ", "empty"),
    ("a\x00b", "U+0000"),
    ("a\nb", "U+000A"),
    ("a\tb", "U+0009"),
    ("a\x7fb", "U+007F"),
    ("ann\u202egnp.exe", "U+202E"),  # right-to-left override: shows as another name
    ("a\u2066b", "U+2066"),
    ("a\u200bb", "U+200B"),  # zero-width space: looks like "ab"
    ("a\ufeffb", "U+FEFF"),
    ("a\u2028b", "U+2028"),
    ("a\u00a0b", "U+00A0"),  # a space that is not a space
    ("a\ue000b", "U+E000"),  # private use
    ("a\U000e0001b", "U+E0001"),
    ("a/b", "path separator"),
    ("a\\b", "path separator"),
    ("..", "starts with '.'"),
    (".hidden", "starts with '.'"),
    ("x" * (MAX_NAME_CHARS + 1), "characters"),
    ("\U0001f600" * 60, "bytes"),  # 60 characters, 240 bytes: longer than a folder name may be
])
def test_unusable_names_are_refused_with_the_reason(name, why):
    with pytest.raises(FacestreamError, match="not a usable name") as info:
        check_name(name)
    message = str(info.value)
    assert why in message and "\n" not in message and "\x00" not in message and "\u202e" not in message


def test_a_name_that_was_not_utf8_is_shown_as_its_bytes():
    name = os.fsdecode(b"caf\xe9")  # a Latin-1 folder name, as Python hands it over
    with pytest.raises(FacestreamError, match=r"'caf\\xe9': not a usable folder name: not valid UTF-8"):
        check_name(name, "folder name")


def test_gallery_add_takes_the_same_rule(default_model):
    gallery = Gallery.new(default_model.manifest)
    for bad in ("a\x00b", "ann\u202e", os.fsdecode(b"\xff"), "a/b"):
        with pytest.raises(FacestreamError, match="not a usable name"):
            gallery.add(bad, np.zeros((1, 128), np.float32))
    gallery.add(" ann ", np.zeros((1, 128), np.float32))
    assert gallery.names == ["ann"]
