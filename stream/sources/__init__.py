"""Video sources: files, cameras and network streams -> Frame.

The names below load on first use (PEP 562): the CLI masks secrets in its own command line through
``stream.sources.credentials`` before anything imports numpy or OpenCV.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stream.sources.base import FrameSource, SourceStats, SourceTimeout
    from stream.sources.live import ReconnectPolicy
    from stream.sources.open import open_source
    from stream.sources.spec import SourceSpec, parse_source, parse_sources

_EXPORTS = {
    "FrameSource": "stream.sources.base",
    "SourceStats": "stream.sources.base",
    "SourceTimeout": "stream.sources.base",
    "ReconnectPolicy": "stream.sources.live",
    "open_source": "stream.sources.open",
    "SourceSpec": "stream.sources.spec",
    "parse_source": "stream.sources.spec",
    "parse_sources": "stream.sources.spec",
}

__all__ = ["FrameSource", "ReconnectPolicy", "SourceSpec", "SourceStats", "SourceTimeout", "open_source",
           "parse_source", "parse_sources"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
