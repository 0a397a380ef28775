"""Real ZeroMQ sockets on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import zmq

from stream.errors import FacestreamError
from stream.events.publisher import EventPublisher
from stream.events.schema import Event
from stream.events.sinks import JsonlSink
from stream.events.subscriber import EventSubscriber
from tests.conftest import REPO
from tests.support.net import free_port


def ev(kind="identity", source="cam1", **kw) -> Event:
    return Event(type=kind, source=source, ts=time.time(), **kw)


@pytest.fixture
def endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def connected(pub: EventPublisher, sub: EventSubscriber) -> None:
    """PUB/SUB has a join delay: publish probes until the subscriber sees one."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pub.publish(ev("heartbeat", "probe"))
        if sub.receive(0.05) is not None:
            return
    raise AssertionError("subscriber never connected")


def test_roundtrip_two_part_topic_and_seq(endpoint):
    pub = EventPublisher(endpoint)
    sub = EventSubscriber(endpoint)
    try:
        connected(pub, sub)
        raw = zmq.Context.instance().socket(zmq.SUB)
        raw.setsockopt(zmq.SUBSCRIBE, b"identity.")
        raw.connect(endpoint)
        time.sleep(0.3)
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
    pub = EventPublisher(endpoint)
    sub = EventSubscriber(endpoint, topics=("identity.cam2",))
    try:
        time.sleep(0.3)
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


def test_a_subscriber_that_never_reads_does_not_block_the_publisher(endpoint):
    pub = EventPublisher(endpoint, sndhwm=100)
    lazy = zmq.Context.instance().socket(zmq.SUB)
    lazy.setsockopt(zmq.RCVHWM, 10)
    lazy.setsockopt(zmq.SUBSCRIBE, b"")
    lazy.connect(endpoint)
    try:
        time.sleep(0.3)
        t0 = time.monotonic()
        for i in range(100_000):
            pub.publish(ev(track_id=i))
        assert time.monotonic() - t0 < 60, "publishing must not wait for the subscriber"
        assert pub.seq == 100_000
    finally:
        lazy.close(0)
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
    pub = EventPublisher(endpoint)
    try:
        with pytest.raises(FacestreamError, match="cannot bind the event publisher"):
            EventPublisher(endpoint)
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


def test_subscribe_command_records_events_and_stops_on_sigterm(endpoint, tmp_path):
    out = tmp_path / "got.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "stream", "subscribe", "--connect", endpoint, "--out", str(out)],
                            cwd=REPO, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    pub = EventPublisher(endpoint)
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


def test_subscribe_bad_endpoint(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "stream", "subscribe", "--connect", "nonsense://x"], cwd=REPO,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "facestream: nonsense://x: cannot connect" in proc.stderr
