"""Errors a user can cause and fix. The CLI prints them as one line, never a traceback."""

from __future__ import annotations


class FacestreamError(Exception):
    """A problem with the user's input or environment, explained in one line.

    The message must name the input and what is wrong with it, e.g.
    ``"video.mp4: not found"``. The CLI prints ``facestream: <message>`` and exits 2.
    """


class ModelError(FacestreamError):
    """A model file, manifest or conversion is unusable."""


class EngineUnavailable(FacestreamError):
    """An inference engine cannot run here (missing package, GPU, or incompatible build)."""
