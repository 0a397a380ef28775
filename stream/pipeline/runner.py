"""Build the process graph for a run, drive it to the end, and clean up.

    reader (1 per source) -> detect worker(s) -> embedder (1, owns the model) -> publisher (1)
                 \\______________ frame slots returned by the publisher ______________/

Frames and crops live in per-source shared-memory rings created and unlinked here.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import resource
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream.config.schema import AppConfig, SourceConfig
from stream.errors import FacestreamError
from stream.models.manifest import ModelManifest
from stream.models.store import InstalledModel, ModelStore
from stream.pipeline.ledger import RunLedger
from stream.pipeline.messages import EndOfSource
from stream.pipeline.process import Shared
from stream.pipeline.queues import Channel, Inbox
from stream.pipeline.shm import FrameRing, RingLayout
from stream.pipeline.signals import StopSignals
from stream.pipeline.specs import DetectSpec, EmbedSpec, PublishSpec, ReaderSpec
from stream.pipeline.supervisor import PipelineFailed, ProcessSpec, Supervisor
from stream.pipeline.workers import detect_main, embed_main, publish_main, reader_main
from stream.sources.file import FileSource
from stream.sources.spec import SourceSpec

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 10.0  # after a stop signal, how long the workers get to finish what they hold


@dataclass(frozen=True)
class SourceInfo:
    spec: SourceSpec
    width: int
    height: int
    fps: float
    frame_count: int  # 0 when unknown (live)


def probe_source(spec: SourceSpec, open_timeout_s: float = 10.0, read_timeout_s: float = 5.0) -> SourceInfo:
    """Open a source once up front, so a bad path, URL or video, or a camera device that gives no
    video, fails (one line, exit status 2) before any process starts; a stream that is down does not."""
    if spec.live:
        return probe_sources([spec], open_timeout_s, read_timeout_s)[0]
    source = FileSource(spec, open_timeout_s=open_timeout_s, read_timeout_s=read_timeout_s)
    source.open()
    try:
        return SourceInfo(spec, source.width, source.height, source.fps, source.frame_count)
    finally:
        source.close()


def probe_sources(specs: list[SourceSpec], open_timeout_s: float = 10.0, read_timeout_s: float = 5.0,
                  cfg: SourceConfig | None = None) -> list[SourceInfo]:
    """probe_source for every source: the cameras and streams all at once, so N unreachable ones cost
    one timeout (and one error line names every one that can never work), then the files. A stream
    that is down is warned about, not an error: its reader retries it (``cfg``: how)."""
    from stream.sources.live import ReconnectPolicy
    from stream.sources.probe import probe_live_sources

    cfg = cfg or SourceConfig()
    probe_live_sources([s for s in specs if s.live], open_timeout_s, read_timeout_s,
                       retry=ReconnectPolicy(initial_s=cfg.reconnect_initial_s, max_s=cfg.reconnect_max_s),
                       give_up_after_s=cfg.give_up_after_s)
    # A live source is probed for reachability only: its ring is sized from pipeline.max_frame_*.
    return [SourceInfo(s, 0, 0, 0.0, 0) if s.live else probe_source(s, open_timeout_s, read_timeout_s) for s in specs]


#: Read by OpenBLAS and OpenMP when numpy loads, which in a spawned worker happens while it unpickles
#: its target, before any of our code runs: so they must be in the environment it inherits. Each
#: worker does small matrix work; a pool of spinning BLAS threads per process only burns the cores
#: the other stages need (seen: an idle detect worker at 94% of a core in sched_yield).
_WORKER_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def single_threaded_math_in_workers() -> None:
    """One BLAS/OpenMP thread in every process spawned from here on, unless the user set otherwise."""
    for name in _WORKER_THREAD_VARS:
        os.environ.setdefault(name, "1")


def run_pipeline(
    config: AppConfig,
    sources: list[SourceSpec],
    *,
    annotate: Path | None = None,
    progress: bool = True,
    log_level: str = "WARNING",
    ready_timeout_s: float = 120.0,
    open_view: Callable[..., tuple[AppConfig, Any]] | None = None,
) -> dict[str, Any]:
    """Run until every source ends (files) or a stop signal; return the run summary.

    ``open_view``: a front end of the run (the web view, stream/web/live.py ``open_run_view``),
    given by the caller so the pipeline knows no web module: called with (config, frame sizes per
    source, run dir, run id, ledger), it returns the config to run with and the view, whose
    ``publish_sinks()`` and ``publish_observers()`` the publisher opens and which is closed at the end.
    """
    if not sources:
        raise FacestreamError("no sources given")
    from stream.inference.select import choose_backend

    choose_backend(config.engine)  # engine.kind=tensorrt without TensorRT fails here, before any process starts
    model = ModelStore().get(config.model.name, verify=False)  # the sha256 check runs while workers start
    manifest = model.manifest
    if config.gallery is not None:
        from stream.recognize.gallery import Gallery

        Gallery.load(config.gallery, manifest)  # fail now, in one line, not inside a worker
    infos = probe_sources(sources, config.sources.open_timeout_s, config.sources.read_timeout_s, config.sources)
    ctx = mp.get_context("spawn")  # CUDA and MediaPipe must never inherit a forked parent's state
    single_threaded_math_in_workers()
    run_id = f"fs{os.getpid()}-{secrets.token_hex(3)}"
    layouts = {info.spec.name: _layout(run_id, i, info, config, manifest) for i, info in enumerate(infos)}
    rings = {name: FrameRing.create(layout) for name, layout in layouts.items()}
    run_dir = Path(tempfile.mkdtemp(prefix=f"facestream-{run_id}-"))
    ledger = RunLedger.create(ctx, {name: layout.slots for name, layout in layouts.items()},
                              _worker_names(infos, config), run_dir / "tracks.journal")
    shared = Shared(stop=ctx.Event(), heartbeats=ctx.Array("d", len(ledger.workers)), errors=Channel(ctx),
                    ledger=ledger, log_level=log_level, supervisor_pid=os.getpid())
    web = None
    try:
        if open_view is not None:
            sizes = {name: (lay.max_height, lay.max_width) for name, lay in layouts.items()}
            config, web = open_view(config, sizes, run_dir, run_id, ledger)
        return _run(config, model, infos, layouts, shared, ctx, annotate, progress, ready_timeout_s, web)
    finally:
        if web is not None:
            web.close()
        for ring in rings.values():
            ring.close()
            ring.unlink()
        shutil.rmtree(run_dir, ignore_errors=True)


def _frames_fps(info: SourceInfo, config: AppConfig) -> float:
    """The rate of the frames a source gives the pipeline (an annotated video's): its processing rate
    where one is set below its own (0: unknown, a live source's before it connects)."""
    rate = info.spec.rate(config.sources.fps)
    if rate is None:
        return info.fps
    return min(info.fps, rate) if info.fps > 0 else rate


def _worker_names(infos: list[SourceInfo], config: AppConfig) -> list[str]:
    """Process names by heartbeat index, in the order ``_start`` starts them."""
    n_detect = min(config.pipeline.detect_workers, len(infos))
    return ([f"detect-{k}" for k in range(n_detect)] + ["publish", "embed"]
            + [f"reader-{info.spec.name}" for info in infos])


def _layout(run_id: str, i: int, info: SourceInfo, config: AppConfig, manifest: ModelManifest) -> RingLayout:
    pc = config.pipeline
    h, w = (info.height, info.width) if not info.spec.live else (pc.max_frame_height, pc.max_frame_width)
    return RingLayout(f"{run_id}-{i}", pc.frame_slots, h, w, config.recognition.max_faces_per_frame,
                      manifest.input.height, manifest.input.width)


@dataclass
class _Running:
    """The started process graph, as the main loop needs it."""

    sup: Supervisor
    summary_q: Channel
    engine_info: dict[str, Any]


def _run(config: AppConfig, model: InstalledModel, infos: list[SourceInfo],
         layouts: dict[str, RingLayout], shared: Shared, ctx: Any, annotate: Path | None,
         progress: bool, ready_timeout_s: float, web: Any = None) -> dict[str, Any]:
    running = _start(config, model, infos, layouts, shared, ctx, annotate, ready_timeout_s, web)
    bar = _progress_bar(infos) if progress else None
    stops = StopSignals()
    try:
        with stops:
            summary = _drive(running, shared, stops, bar)
    except PipelineFailed as exc:
        raise FacestreamError(str(exc)) from None
    finally:
        if bar is not None:
            bar.close()
        running.sup.shutdown()
    summary["engine"] = running.engine_info
    summary["cpu_s"] = _cpu_seconds(running.sup)
    summary["restarts"] = dict(running.sup.restarts)
    summary["restarts_total"] = running.sup.restart_count
    summary["interrupted"] = stops.requested is not None
    return summary


def _start(config: AppConfig, model: InstalledModel, infos: list[SourceInfo], layouts: dict[str, RingLayout],
           shared: Shared, ctx: Any, annotate: Path | None, ready_timeout_s: float, web: Any = None) -> _Running:
    """Create the queues, start every process and wait until all are warm; then let readers read."""
    model_name, manifest = model.name, model.manifest
    names = [info.spec.name for info in infos]
    n_detect = min(config.pipeline.detect_workers, len(infos))

    def channel() -> Channel:  # one reader, one writing process at a time: see stream/pipeline/queues.py
        return Channel(ctx)

    free_slots = {name: channel() for name in names}
    for name in names:
        for slot in range(layouts[name].slots):
            free_slots[name].put(slot)
    worker_of = {name: i % n_detect for i, name in enumerate(names)}
    frames_in = {name: channel() for name in names}  # reader -> its detect worker
    feedback = [channel() for _ in range(n_detect)]
    to_embed = [channel() for _ in range(n_detect)]  # detect worker k -> embedder
    publish_in, summary_q, engine_info = channel(), channel(), channel()
    embed_ready, publish_ready, go = ctx.Event(), ctx.Event(), ctx.Event()
    detect_ready = [ctx.Event() for _ in range(n_detect)]

    sup = Supervisor(ctx, shared, max_restarts=config.pipeline.max_restarts,
                     restart_window_s=config.pipeline.restart_window_s,
                     stall_timeout_s=config.pipeline.stall_timeout_s, incarnations=shared.ledger.incarnations)
    try:
        slot_of = iter(range(len(shared.heartbeats)))
        # Everything starts at once, the slowest to warm up (MediaPipe) first; readers hold their first
        # read until every worker is warm (the `go` event), so start-up costs the slowest worker only.
        for k in range(n_detect):
            mine = {n: layouts[n] for n in names if worker_of[n] == k}
            idx = next(slot_of)
            inbox = Inbox([frames_in[n] for n in mine])
            sup.start(ProcessSpec(f"detect-{k}", detect_main, (DetectSpec(
                idx, config, manifest, mine, inbox, feedback[k], to_embed[k], detect_ready[k]),), idx,
                watch_stall=detect_ready[k].is_set))
        idx = next(slot_of)
        sup.start(ProcessSpec("publish", publish_main, (PublishSpec(
            idx, config, manifest, layouts, publish_in, free_slots, {n: feedback[worker_of[n]] for n in names},
            summary_q, publish_ready, annotate, {i.spec.name: _frames_fps(i, config) for i in infos},
            web.publish_sinks() if web is not None else [], web.publish_observers() if web is not None else [],
            source_files={i.spec.name: i.spec.uri for i in infos if not i.spec.live}),),
            idx))
        idx = next(slot_of)
        sup.start(ProcessSpec("embed", embed_main, (EmbedSpec(
            idx, config, model_name, layouts, Inbox(to_embed), publish_in, embed_ready, engine_info),), idx,
            watch_stall=embed_ready.is_set))
        for source_info in infos:
            name = source_info.spec.name
            idx = next(slot_of)
            sup.start(ProcessSpec(
                f"reader-{name}", reader_main,
                (ReaderSpec(idx, source_info.spec, config, layouts[name], free_slots[name], frames_in[name], go,
                            hold_still=annotate is None),),  # an annotated video shows every frame
                idx, on_give_up=lambda reason, n=name: _give_up_reader(shared, frames_in[n], n, reason),
            ))
        started = time.monotonic()
        model.verify()  # ~0.1 s for a 22 MB model, overlapped with the workers' start-up
        _wait_ready([publish_ready, embed_ready, *detect_ready], sup, ready_timeout_s)
        info = engine_info.get(timeout=5)
        log.info("pipeline ready in %.2f s; engine: %s", time.monotonic() - started, info)
        go.set()
    except PipelineFailed as exc:
        sup.shutdown()
        raise FacestreamError(str(exc)) from None
    except BaseException:
        sup.shutdown()
        raise
    return _Running(sup, summary_q, info)


def _give_up_reader(shared: Shared, frames_out: Channel, name: str, reason: str) -> None:
    """A reader that keeps dying ends its source, so the rest of the pipeline can finish."""
    ledger = shared.ledger.sources[name]
    if not ledger["end_read"]:
        frames_out.put(EndOfSource(name, int(ledger["read_next"]), int(ledger["live_dropped"]), f"reader {reason}"))
        ledger.mark_ended("reader")


def _drive(running: _Running, shared: Shared, stops: StopSignals, bar: Any) -> dict[str, Any]:
    """Supervise until the publisher has the run summary, or a drain after a stop signal times out."""
    drain_deadline: float | None = None
    while True:
        if stops.requested and drain_deadline is None:
            shared.stop.set()
            drain_deadline = time.monotonic() + DRAIN_TIMEOUT_S
            log.warning("%s: draining (send again to force)", stops.requested)
        running.sup.poll()
        if bar is not None:
            # frames skipped for the processing rate are part of the way through a file too
            bar.n = sum(int(led["frames"]) + int(led["skipped"]) for led in shared.ledger.sources.values())
            bar.refresh()
        if running.sup.is_done("publish"):
            try:
                return running.summary_q.get(timeout=5)
            except queue.Empty:
                raise FacestreamError("the publisher ended without a run summary (see the log above)") from None
        if drain_deadline is not None and time.monotonic() > drain_deadline:
            log.warning("drain timed out; stopping now")
            return {}
        running.sup.wait(0.25)


def _cpu_seconds(sup: Supervisor) -> dict[str, float]:
    """CPU seconds (user + system) of every process of the run, all its incarnations together."""
    out = {name: round(seconds, 3) for name, seconds in sup.cpu_s.items()}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["main"] = round(usage.ru_utime + usage.ru_stime, 3)
    return out


def _wait_ready(events: list[Any], sup: Supervisor, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(e.is_set() for e in events):
        sup.poll()
        if time.monotonic() > deadline:
            raise FacestreamError(f"the pipeline did not start within {timeout_s:.0f} s (model or engine load)")
        time.sleep(0.05)


def _progress_bar(infos: list[SourceInfo]):
    from tqdm import tqdm

    total = sum(i.frame_count for i in infos) if all(not i.spec.live for i in infos) else None
    return tqdm(total=total, unit="frame", desc="facestream", leave=False, dynamic_ncols=True)
