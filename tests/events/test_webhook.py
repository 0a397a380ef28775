"""The webhook sink against a real HTTP server on 127.0.0.1: one that answers, is slow, is down, and fails."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stream.events.schema import Event
from stream.events.webhook import SIGNATURE_HEADER, WebhookSink
from tests.conftest import assert_one_line_error, media_path
from tests.support.net import free_port


class Receiver:
    """What the server got, and how it answers: ``fail`` 500s first, then ``status``; ``hold`` blocks."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.signatures: list[str | None] = []
        self.requests = 0
        self.fail = 0
        self.status = 200
        self.delay_s = 0.0
        self.hold: threading.Event | None = None
        self.lock = threading.Lock()

    @property
    def events(self) -> list[dict]:
        with self.lock:
            return [json.loads(b) for b in self.bodies]


@contextmanager
def serve(port: int = 0, receiver: Receiver | None = None) -> Iterator[tuple[Receiver, str]]:
    got = receiver or Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with got.lock:
                got.requests += 1
                failing = got.fail > 0
                got.fail -= failing
            if got.hold is not None:
                got.hold.wait(10)
            if got.delay_s:
                time.sleep(got.delay_s)
            status = 500 if failing else got.status
            if status == 200:
                with got.lock:
                    got.bodies.append(body)
                    got.signatures.append(self.headers.get(SIGNATURE_HEADER))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield got, f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        if got.hold is not None:
            got.hold.set()
        server.shutdown()
        server.server_close()


def _events(n: int, start: int = 1) -> list[Event]:
    return [Event(type="identity", source="door", track_id=i, identity="ann", seq=i, ts=float(i))
            for i in range(start, start + n)]


def _until(check, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def test_every_event_is_posted_in_order_as_json_and_signed(monkeypatch):
    monkeypatch.setenv("FS_TEST_HOOK_SECRET", "s3cret")
    with serve() as (got, url):
        sink = WebhookSink(url, secret="${FS_TEST_HOOK_SECRET}")
        sent = _events(20)
        for event in sent:
            sink.write(event)
        assert _until(lambda: len(got.bodies) == 20)
        sink.close()
    assert got.events == [json.loads(e.to_json()) for e in sent]  # the same JSON as --events-out, in order
    for body, signature in zip(got.bodies, got.signatures):
        assert signature == "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    stats = sink.stats()
    assert (stats.delivered, stats.dropped, stats.queued) == (20, 0, 0)


def test_500s_are_retried_and_nothing_is_lost_or_reordered():
    with serve() as (got, url):
        got.fail = 3
        sink = WebhookSink(url, retry_first_s=0.05, retry_max_s=0.1)
        for event in _events(5):
            sink.write(event)
        assert _until(lambda: len(got.bodies) == 5)
        sink.close()
    assert [e["seq"] for e in got.events] == [1, 2, 3, 4, 5]
    assert sink.retries == 3 and got.requests == 8
    assert (sink.stats().delivered, sink.stats().dropped) == (5, 0)


def test_a_receiver_that_refuses_an_event_costs_that_event_only():
    with serve() as (got, url):
        got.status = 400
        sink = WebhookSink(url, retry_first_s=0.05)
        sink.write(_events(1)[0])
        assert _until(lambda: sink.stats().dropped == 1)
        got.status = 200
        sink.write(_events(1, start=2)[0])
        assert _until(lambda: len(got.bodies) == 1)
        sink.close()
    assert [e["seq"] for e in got.events] == [2] and got.requests == 2  # a 4xx is not tried again
    assert (sink.stats().delivered, sink.stats().dropped) == (1, 1)


def test_a_slow_receiver_never_holds_up_the_writer_and_the_queue_is_bounded():
    with serve() as (got, url):
        got.hold = threading.Event()  # the first request waits until the writer is done
        sink = WebhookSink(url, queue=10, timeout_s=30)
        first, *rest = _events(50)
        sink.write(first)
        assert _until(lambda: got.requests == 1)  # on its way, and held there
        for event in rest:
            sink.write(event)  # returns while the receiver holds the first request
        stats = sink.stats()
        assert stats.queued == 11 and stats.dropped == 39  # 10 waiting + 1 in flight; the oldest dropped
        got.hold.set()
        assert _until(lambda: sink.stats().queued == 0)
        sink.close()
    # The first (in flight when the queue overflowed) and the newest 10 came through, in order.
    assert [e["seq"] for e in got.events] == [1, *range(41, 51)]
    stats = sink.stats()
    assert stats.delivered + stats.dropped == 50 and stats.delivered == 11


def test_a_receiver_slower_than_the_timeout_is_retried():
    with serve() as (got, url):
        got.delay_s = 0.6
        sink = WebhookSink(url, timeout_s=0.3, retry_first_s=0.05, retry_max_s=0.1)
        sink.write(_events(1)[0])
        assert _until(lambda: got.requests >= 2)  # timed out, tried again
        got.delay_s = 0.0
        assert _until(lambda: sink.stats().delivered == 1)
        sink.close()
    assert sink.retries >= 1 and [e["seq"] for e in got.events][-1] == 1


def test_a_receiver_that_is_down_gets_the_queue_when_it_is_back_and_the_overflow_is_counted():
    port = free_port()
    sink = WebhookSink(f"http://127.0.0.1:{port}/hook", queue=5, retry_first_s=0.05, retry_max_s=0.2)
    for event in _events(12):
        sink.write(event)
    assert _until(lambda: sink.retries >= 2)  # nobody listening: refused, and tried again
    with serve(port) as (got, _):
        assert _until(lambda: sink.stats().queued == 0)
        sink.close()
    stats = sink.stats()
    assert stats.delivered + stats.dropped == 12 and stats.dropped >= 6
    seqs = [e["seq"] for e in got.events]
    assert seqs == sorted(seqs) and seqs[-5:] == list(range(8, 13))  # the newest kept, in order


def test_closing_while_the_receiver_is_down_ends_within_the_drain_time_and_counts_the_rest():
    sink = WebhookSink(f"http://127.0.0.1:{free_port()}/hook", drain_s=0.5, retry_first_s=0.05, retry_max_s=0.1)
    for event in _events(4):
        sink.write(event)
    started = time.monotonic()
    sink.close()
    assert time.monotonic() - started < 5
    stats = sink.stats()
    assert (stats.delivered, stats.dropped, stats.queued) == (0, 4, 0)
    sink.write(_events(1)[0])  # after close: counted, not kept
    assert sink.stats().dropped == 5


def test_a_bad_webhook_is_one_line_before_the_run_starts(cli, tmp_path, monkeypatch):
    clip = media_path("short_hamilton_clip.mp4")
    assert_one_line_error(cli("run", "--source", clip, "--webhook", "ftp://example/x", "--no-progress"),
                          "webhooks", "expected http[s]://")
    config = tmp_path / "c.yaml"
    config.write_text("output:\n  webhooks:\n    - url: http://127.0.0.1:9/x\n      secret: ${FS_UNSET_HOOK_SECRET}\n")
    monkeypatch.delenv("FS_UNSET_HOOK_SECRET", raising=False)
    assert_one_line_error(cli("run", "--source", clip, "--config", config, "--no-progress"), "FS_UNSET_HOOK_SECRET")


@pytest.mark.slow
def test_a_run_posts_every_event_it_writes_to_events_out(cli, tmp_path):
    with serve() as (got, url):
        proc = cli("run", "--source", media_path("short_hamilton_clip.mp4"), "--webhook", url,
                   "--events-out", tmp_path / "events.jsonl", "--summary-json", tmp_path / "summary.json",
                   "--no-progress", check=True)
    written = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert written and got.events == written  # the same events, fields and order
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["sinks"]["webhook"]["delivered"] == len(written) and summary["sinks"]["webhook"]["dropped"] == 0
    assert summary["sinks"]["jsonl"]["delivered"] == len(written)
    assert f"webhook: {len(written)} delivered, 0 dropped" in proc.stderr
