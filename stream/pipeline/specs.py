"""What each pipeline process is started with: one small picklable spec per process kind.

The runner builds them; the process loops (stream/pipeline/workers.py) and the stage objects
they drive (e.g. stream/pipeline/publishing.py) read them, so neither needs the other's module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream.config.schema import AppConfig
from stream.models.manifest import ModelManifest
from stream.pipeline.shm import RingLayout
from stream.sources.spec import SourceSpec


@dataclass
class ReaderSpec:
    index: int
    source: SourceSpec
    config: AppConfig
    layout: RingLayout
    free_slots: Any  # Channel[int]: free slot tokens
    out: Any  # Channel to the source's detect worker
    go: Any = None  # Event: every downstream worker is ready; start reading
    hold_still: bool = True  # a live source's still frames may be held back while idle (not with --annotate)


@dataclass
class DetectSpec:
    index: int
    config: AppConfig
    manifest: ModelManifest
    layouts: dict[str, RingLayout]  # the sources this worker owns
    inbox: Any
    feedback: Any  # Channel[TrackStatus] from the publisher
    out: Any  # Channel to the embedder
    ready: Any = None  # Event set once the detector is loaded


@dataclass
class EmbedSpec:
    index: int
    config: AppConfig
    model_name: str
    layouts: dict[str, RingLayout]
    inbox: Any
    out: Any
    ready: Any  # Event set once the engine is loaded and warm
    engine_info: Any  # Channel: one dict describing the engine chosen


@dataclass
class PublishSpec:
    index: int
    config: AppConfig
    manifest: ModelManifest
    layouts: dict[str, RingLayout]
    inbox: Any
    free_slots: dict[str, Any]  # per source: Channel[int]
    feedback: dict[str, Any]  # per source: the owning detect worker's feedback queue
    summary: Any  # Channel: one dict at the end
    ready: Any = None  # Event set once sinks are open
    annotate: Path | None = None
    source_fps: dict[str, float] = field(default_factory=dict)
    # Registered from outside the pipeline (the web view): (name, make a sink) and make an observer;
    # picklable callables, called in the publisher process (stream/events/registry.py, observers.py).
    sinks: list[tuple[str, Callable[[], Any]]] = field(default_factory=list)
    observers: list[Callable[[], Any]] = field(default_factory=list)
    source_files: dict[str, str] = field(default_factory=dict)  # the sources that are recorded files: their path
