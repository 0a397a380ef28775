"""The web view of a running pipeline: preview boards, the event feed and the server, set up together.

Made by the run's main process (the supervisor), which owns the boards' shared memory and reads
the run's counters from its ledger; the publisher only writes frames and events into them.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stream.config.web import WebConfig
from stream.images import MAX_MEGAPIXELS
from stream.web.app import WebContext, create_app
from stream.web.cameras import CameraFeed
from stream.web.feed import EventFeed, WebFeedSink
from stream.web.guard import HostPolicy
from stream.web.history import HistoryView
from stream.web.people import PhotoEnroller
from stream.web.preview import PreviewBoard, PreviewLayout, PreviewObserver
from stream.web.server import WebServer, parse_bind, resolve_token

log = logging.getLogger(__name__)


class RunWebView:
    def __init__(self, web: WebConfig, frame_sizes: dict[str, tuple[int, int]], run_dir: Path, run_id: str,
                 ledger: Any, *, gallery: Path | None, unknowns: Path | None, model_name: str,
                 max_megapixels: float = MAX_MEGAPIXELS, hide_unknowns: int | None = None,
                 history_url: str | None = None) -> None:
        token = resolve_token(web.token)
        self.previews = {name: PreviewLayout(f"{run_id}-view{i}", h, w)
                         for i, (name, (h, w)) in enumerate(frame_sizes.items())}
        self.feed_endpoint = f"ipc://{run_dir}/web-events.sock"
        self._max_fps = web.max_fps
        self._hide_unknowns = hide_unknowns  # privacy.unknowns: blur (tracker.max_age), else None
        self._boards = {name: PreviewBoard.create(layout) for name, layout in self.previews.items()}
        self.feed = EventFeed(self.feed_endpoint)
        self._enroller = PhotoEnroller(model_name, gallery, max_megapixels) if gallery is not None else None
        # the run's own store, read in this process (the supervisor), never in the publisher that writes it
        self._history = HistoryView(history_url, model_name, max_megapixels) if history_url else None

        def camera_state() -> dict[str, dict]:
            return {name: led.counters.as_dict() for name, led in ledger.sources.items()}

        ctx = WebContext(
            cameras={name: CameraFeed(name, board, web.jpeg_quality) for name, board in self._boards.items()},
            feed=self.feed, camera_state=camera_state, gallery=gallery, unknowns=unknowns,
            enroller=self._enroller, token=token, history=self._history,
            hosts=HostPolicy.for_bind(parse_bind(web.http)[0], web.allowed_hosts))
        try:
            self.server = WebServer(create_app(ctx), web.http, token).start()
        except BaseException:
            self._close_parts()
            raise

    def publish_sinks(self) -> list[tuple[str, Callable[[], Any]]]:
        """The event sink the publisher opens for this view, by name (picklable: it crosses processes)."""
        return [("web", functools.partial(WebFeedSink, self.feed_endpoint))]

    def publish_observers(self) -> list[Callable[[], Any]]:
        """The frame observer that fills this view's preview boards in the publisher."""
        return [functools.partial(PreviewObserver, self.previews, self._max_fps, self._hide_unknowns)]

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def where(self) -> str:
        return self.server.where

    def close(self) -> None:
        self.server.stop()
        self._close_parts()

    def _close_parts(self) -> None:
        self.feed.close()
        if self._enroller is not None:
            self._enroller.close()
        if self._history is not None:
            self._history.close()
        for board in self._boards.values():
            board.close()


def open_run_view(config: Any, frame_sizes: dict[str, tuple[int, int]], run_dir: Path, run_id: str,
                  ledger: Any) -> tuple[Any, RunWebView]:
    """Start a run's web view (``run_pipeline(open_view=...)``); the page lists strangers to name, so
    unknown tracks are saved (in the run's own folder unless output.save_unknowns says where)."""
    if config.output.save_unknowns is None and not config.privacy.blur:  # blur: no stranger is kept to name
        config = config.model_copy(update={"output": config.output.model_copy(
            update={"save_unknowns": run_dir / "unknowns"})})
    hide = config.tracker.max_age if config.privacy.blur else None  # privacy.unknowns: blur
    web = RunWebView(config.web, frame_sizes, run_dir, run_id, ledger, gallery=config.gallery,
                     unknowns=config.output.save_unknowns, model_name=config.model.name,
                     max_megapixels=config.photos.max_megapixels, hide_unknowns=hide,
                     history_url=config.history.url)
    print(f"facestream: web view on {web.where}", file=sys.stderr)
    return config, web
