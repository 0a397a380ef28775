"""Real ZeroMQ sockets on 127.0.0.1."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import zmq

from stream.errors import FacestreamError
from stream.events.schema import Event
from stream.events.sinks import JsonlSink
from stream.events.subscriber import EventSubscriber
from stream.events.zmq_sink import ZmqSink
from tests.conftest import REPO
from tests.support.net import free_port


def ev(kind="identity", source="cam1", **kw) -> Event:
    return Event(type=kind, source=source, ts=time.time(), **kw)


@pytest.fixture
def endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def big(i: int) -> Event:
    """An identity event of about 360 bytes on the wire."""
    return ev(track_id=i, identity="x" * 120, bbox=[1.5, 2.5, 100.25, 200.75], frame=i, pts=i / 30)


def subscribed(pub: ZmqSink, n: int = 1) -> None:
    """Wait until the publisher has applied exactly ``n`` subscriptions: from then on sends reach them."""
    deadline = time.monotonic() + 5
    while pub.subscribers != n and time.monotonic() < deadline:
        pub.poll(0.05)
    assert pub.subscribers == n, f"{pub.subscribers} subscription(s), expected {n}"


def test_roundtrip_two_part_topic_and_seq(endpoint):
    pub = ZmqSink(endpoint)
    sub = EventSubscriber(endpoint)
    try:
        subscribed(pub, 1)
        raw = zmq.Context.instance().socket(zmq.SUB)
        raw.setsockopt(zmq.SUBSCRIBE, b"identity.")
        raw.connect(endpoint)
        subscribed(pub, 2)
        pub.publish(ev(track_id=3, identity="ann"))
        got = sub.receive(2)
        topic, body = raw.recv_multipart()
        raw.close(0)
        assert topic == b"identity.cam1"
        assert json.loads(body)["identity"] == "ann" and json.loads(body)["schema"] == 1
        assert got.identity == "ann" and got.seq == pub.seq
    finally:
        sub.close()
        pub.close()


def test_topic_filtering(endpoint):
    pub = ZmqSink(endpoint)
    sub = EventSubscriber(endpoint, topics=("identity.cam2",))
    try:
        subscribed(pub, 1)
        for _ in range(20):
            pub.publish(ev(source="cam1"))
            pub.publish(ev("track_started", source="cam2"))
            pub.publish(ev(source="cam2"))
            time.sleep(0.01)
        got = [sub.receive(1) for _ in range(5)]
        assert all(e is not None and e.type == "identity" and e.source == "cam2" for e in got)
    finally:
        sub.close()
        pub.close()


@pytest.mark.slow
def test_a_subscriber_that_never_reads_does_not_block_the_publisher(endpoint):
    pub = ZmqSink(endpoint, sndhwm=100)
    lazy = zmq.Context.instance().socket(zmq.SUB)
    lazy.setsockopt(zmq.RCVHWM, 10)
    lazy.setsockopt(zmq.SUBSCRIBE, b"")
    lazy.connect(endpoint)
    try:
        subscribed(pub, 1)
        t0 = time.monotonic()
        for i in range(50_000):
            pub.publish(ev(track_id=i))
        assert time.monotonic() - t0 < 60, "publishing must not wait for the subscriber"
        assert pub.seq == 50_000
        assert pub.dropped > 0 and pub.sent + pub.dropped == 50_000 and pub.unheard == 0
    finally:
        lazy.close(0)
        pub.close()


@pytest.mark.slow
def test_a_stalled_subscriber_s_losses_are_counted_exactly(endpoint):
    """NODROP: ``dropped`` is exactly what a subscriber that stalled and caught up never got."""
    pub = ZmqSink(endpoint, sndhwm=10)
    sub = EventSubscriber(endpoint, rcvhwm=10)
    try:
        subscribed(pub, 1)
        seqs = []
        for i in range(20):  # in step with the reader: nothing lost
            pub.publish(big(i))
            seqs.append(sub.receive(2).seq)
        assert pub.dropped == 0
        # The reader stalls: overflow both queues and the kernel's buffers (about 11,000 events of
        # this size on Linux loopback), however large they are.
        attempts = 20
        while attempts < 20_020 or (pub.dropped < 1000 and attempts < 300_000):
            pub.publish(big(attempts))
            attempts += 1
        assert pub.dropped >= 1000
        # It catches up, then one last event shows the losses at the end as a gap too (a marker
        # refused because the publisher has not yet seen the queue empty is a counted drop).
        while (got := sub.receive(0.3)) is not None:
            seqs.append(got.seq)
        deadline = time.monotonic() + 5
        attempts += 1
        while not pub.publish(ev("heartbeat")) and time.monotonic() < deadline:
            time.sleep(0.05)
            attempts += 1
        while seqs[-1] != pub.seq:
            seqs.append(sub.receive(2).seq)
        assert pub.unheard == 0 and pub.sent + pub.dropped == attempts == pub.seq
        assert pub.dropped == attempts - len(seqs)
        assert all(a < b for a, b in itertools.pairwise(seqs)), "seq strictly increases"
        assert sum(b - a - 1 for a, b in itertools.pairwise([0, *seqs])) == pub.dropped
        assert sub.gaps == pub.dropped and sub.restarts == 0
    finally:
        sub.close()
        pub.close()


def test_events_with_no_subscriber_are_unheard_not_dropped(endpoint):
    pub = ZmqSink(endpoint, sndhwm=10)
    sub = None
    try:
        for i in range(100):  # ten times the HWM: no queue, so no drop
            assert pub.publish(ev(track_id=i))
        assert (pub.sent, pub.dropped, pub.unheard, pub.seq) == (0, 0, 100, 100)
        sub = EventSubscriber(endpoint, topics=("identity.cam2",))
        subscribed(pub, 1)
        pub.publish(ev(source="cam1"))  # no subscription matches its topic
        pub.publish(ev(source="cam2"))
        assert sub.receive(2).source == "cam2"
        assert (pub.sent, pub.dropped, pub.unheard) == (1, 0, 101)
    finally:
        if sub is not None:
            sub.close()
        pub.close()


def test_subscriber_count_follows_joins_and_leaves(endpoint):
    pub = ZmqSink(endpoint)
    a = b = None
    try:
        assert pub.subscribers == 0 and pub.poll() == 0
        a = EventSubscriber(endpoint)
        subscribed(pub, 1)
        b = EventSubscriber(endpoint, topics=("identity.", "track_ended.", "identity."))
        subscribed(pub, 3)  # one per topic, a repeated topic once
        a.close()
        subscribed(pub, 2)
        b.close()
        subscribed(pub, 0)
        pub.publish(ev())
        assert (pub.sent, pub.unheard) == (0, 1)
    finally:
        for sub in (a, b):
            if sub is not None:
                sub.close()
        pub.close()


def test_a_seq_the_caller_set_is_kept_and_own_numbering_continues_above_it(endpoint):
    pub = ZmqSink(endpoint)
    try:
        first, theirs, after, stale, last = ev(), ev(seq=500), ev(), ev(seq=10), ev()
        for event in (first, theirs, after, stale, last):
            pub.publish(event)
        assert [e.seq for e in (first, theirs, after, stale, last)] == [1, 500, 501, 10, 502]
        assert pub.seq == 502
    finally:
        pub.close()


def test_gaps_and_invalid_messages_are_counted(endpoint):
    ctx = zmq.Context.instance()
    raw = ctx.socket(zmq.PUB)
    raw.bind(endpoint)
    sub = EventSubscriber(endpoint)
    try:
        time.sleep(0.3)
        for seq in (1, 2, 5):
            raw.send_multipart([b"identity.cam1", ev(seq=seq).to_json().encode()])
        raw.send_multipart([b"identity.cam1", b"{not json"])
        raw.send_multipart([b"one part only"])
        raw.send_multipart([b"identity.cam1", json.dumps({"schema": 2, "type": "x"}).encode()])
        raw.send_multipart([b"identity.cam1", ev(seq=6).to_json().encode()])
        got = [sub.receive(2) for _ in range(4)]
        assert [e.seq for e in got] == [1, 2, 5, 6]
        assert sub.gaps == 2 and sub.invalid == 3
    finally:
        sub.close()
        raw.close(0)


def test_bind_error_is_one_line(endpoint):
    pub = ZmqSink(endpoint)
    try:
        with pytest.raises(FacestreamError, match="cannot bind the event publisher"):
            ZmqSink(endpoint)
    finally:
        pub.close()


def test_jsonl_sink_appends_lines(tmp_path):
    path = tmp_path / "deep" / "events.jsonl"
    sink = JsonlSink(path)
    sink.write(ev(track_id=1))
    sink.write(ev("track_ended", track_id=1, votes={"counts": {"ann": 3}}))
    assert len(path.read_text().splitlines()) == 2, "flushed per line, before close"
    sink.close()
    assert [json.loads(line)["type"] for line in path.read_text().splitlines()] == ["identity", "track_ended"]


@pytest.mark.slow
def test_subscribe_command_records_events_and_stops_on_sigterm(endpoint, tmp_path):
    out = tmp_path / "got.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "stream", "subscribe", "--connect", endpoint, "--out", str(out)],
                            cwd=REPO, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    pub = ZmqSink(endpoint)
    try:
        deadline = time.monotonic() + 20
        while (not out.exists() or not out.read_text()) and time.monotonic() < deadline:
            pub.publish(ev(track_id=1, identity="ann"))
            time.sleep(0.05)
        for i in range(5):
            pub.publish(ev("track_ended", track_id=i))
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        pub.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "Traceback" not in err and "facestream subscribe:" in err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["type"] for e in lines].count("track_ended") == 5


@pytest.mark.slow
def test_subscribe_bad_endpoint(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "stream", "subscribe", "--connect", "nonsense://x"], cwd=REPO,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "facestream: nonsense://x: cannot connect" in proc.stderr
