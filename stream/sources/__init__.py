"""Video sources: files, cameras and network streams -> Frame."""

from stream.sources.base import FrameSource, SourceStats, SourceTimeout
from stream.sources.live import ReconnectPolicy
from stream.sources.open import open_source
from stream.sources.spec import SourceSpec, parse_source, parse_sources

__all__ = ["FrameSource", "ReconnectPolicy", "SourceSpec", "SourceStats", "SourceTimeout", "open_source",
           "parse_source", "parse_sources"]
