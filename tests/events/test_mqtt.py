"""MQTT output against a real Mosquitto broker on 127.0.0.1, and a real paho subscriber."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from stream.errors import FacestreamError
from stream.events.mqtt import MqttSink, parse_broker_url
from stream.events.schema import Event
from tests.conftest import REPO, assert_one_line_error, media_path
from tests.support.mosquitto import Broker, Listener, mosquitto_missing
from tests.support.net import free_port


@pytest.fixture
def broker(tmp_path):
    if mosquitto_missing():
        pytest.skip(mosquitto_missing())
    b = Broker(tmp_path).start()
    yield b
    b.kill()


def _event(kind: str, track: int = 1, identity: str | None = None, source: str = "door") -> Event:
    return Event(type=kind, source=source, track_id=track, identity=identity, ts=time.time())


def test_broker_urls_are_parsed_and_bad_ones_are_one_line(monkeypatch):
    monkeypatch.setenv("MQTT_PASSWORD", "s3cret")
    url = parse_broker_url("mqtt://ha:${MQTT_PASSWORD}@broker.local")
    assert (url.host, url.port, url.username, url.password, url.tls) == ("broker.local", 1883, "ha", "s3cret", False)
    assert parse_broker_url("mqtts://[::1]:8884").port == 8884
    assert "s3cret" not in url.shown
    for bad, why in [("ftp://h", "expected mqtt://"), ("mqtt://", "no broker host"), ("mqtt://h:99999", "port")]:
        with pytest.raises(FacestreamError, match=why):
            parse_broker_url(bad)


def test_events_presence_and_status_reach_a_subscriber(broker):
    listener = Listener(broker.port)
    sink = MqttSink(broker.url)
    try:
        assert sink.wait_connected(10)
        sink.write(_event("track_started", 1))
        sink.write(_event("identity", 1, "alice"))
        sink.write(_event("track_started", 2))
        (_topic, payload, _, qos), = listener.wait_for(lambda m: m[0] == "facestream/door/identity")
        assert json.loads(payload)["identity"] == "alice"
        assert qos == 1  # the subscriber asked for 1: it gets what the sink published with, capped at that
        listener.wait_for(lambda m: m[0] == "facestream/status" and m[1] == "online")
        present = listener.wait_for(lambda m: m[0] == "facestream/door/present")
        assert json.loads(present[-1][1]) | {"ts": 0} == {"identities": ["alice"], "tracks": 2, "ts": 0}
        # past the mark: the presence sent after track 1 started ({[], 1}) looks the same as the one after it ends
        mark = listener.mark()
        sink.write(_event("track_ended", 1, "alice"))
        listener.wait_for(lambda m: m[0] == "facestream/door/present" and json.loads(m[1])["identities"] == [],
                          after=mark)
        # retained: a subscriber that comes later gets who is in view, and that facestream is online
        late = Listener(broker.port)
        try:
            retained = late.wait_for(lambda m: m[0] == "facestream/door/present" and m[2])
            assert json.loads(retained[0][1])["tracks"] == 1
            late.wait_for(lambda m: m[0] == "facestream/status" and m[1] == "online" and m[2])
        finally:
            late.close()
    finally:
        sink.close()
    listener.wait_for(lambda m: m[0] == "facestream/status" and m[1] == "offline")  # the clean goodbye
    listener.close()


def test_the_last_will_says_offline_when_the_process_dies(broker):
    code = ("import time; from stream.events.mqtt import MqttSink; "
            f"s = MqttSink({broker.url!r}, client_id='doomed'); assert s.wait_connected(10); print('up', flush=True); "
            "time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    listener = Listener(broker.port)
    try:
        assert proc.stdout.readline().strip() == "up"
        listener.wait_for(lambda m: m[0] == "facestream/status" and m[1] == "online")
        proc.send_signal(signal.SIGKILL)
        # the broker notices the dead connection at once (the socket closes) and sends the will
        listener.wait_for(lambda m: m[0] == "facestream/status" and m[1] == "offline", timeout_s=30)
    finally:
        proc.kill()
        listener.close()


@pytest.mark.slow
def test_a_broker_restart_is_reconnected_and_writes_never_block(broker, tmp_path):
    sink = MqttSink(broker.url, reconnect_max_s=1)
    try:
        assert sink.wait_connected(10)
        broker.kill()
        time.sleep(0.5)
        started = time.perf_counter()
        for k in range(1000):
            sink.write(_event("identity", k, "alice"))
        sink.write(_event("identity", 1000, "carol"))  # the last presence written while the broker is away
        assert time.perf_counter() - started < 1.0  # queued, not waited for
        broker.start()
        listener = Listener(broker.port)
        try:
            sink.write(_event("identity", 5000, "bob"))
            listener.wait_for(lambda m: m[0] == "facestream/door/identity" and json.loads(m[1])["identity"] == "bob",
                              timeout_s=30)
            assert sink.connects >= 2
        finally:
            listener.close()
        # the backlog went out, in order: the retained presence is the last one written (no broker
        # persistence here, so this one was sent after the restart)
        late = Listener(broker.port)
        try:
            retained = late.wait_for(lambda m: m[0] == "facestream/door/present" and m[2])
            assert json.loads(retained[-1][1]) | {"ts": 0} == {"identities": ["alice", "bob", "carol"],
                                                               "tracks": 1002, "ts": 0}
        finally:
            late.close()
    finally:
        sink.close()
    assert sink.dropped == 0 and sink.acked == sink.published, (sink.published, sink.acked, sink.dropped)


def test_a_long_outage_drops_the_oldest_and_counts_them():
    closed = free_port()  # nothing listens: the broker is away the whole time
    sink = MqttSink(f"mqtt://127.0.0.1:{closed}", max_queued=10)
    started = time.perf_counter()
    for _ in range(25):  # the first also publishes the presence: 26 messages
        sink.write(_event("identity", 1, "alice"))
    assert time.perf_counter() - started < 0.5
    assert (sink.published, sink.dropped) == (0, 16)
    sink.close()
    assert (sink.published, sink.dropped) == (0, 26)  # what was still queued never reached a broker


@pytest.mark.slow
def test_a_password_is_used_and_never_shown(tmp_path, caplog):
    if mosquitto_missing() or not shutil.which("mosquitto_passwd"):
        pytest.skip(mosquitto_missing() or "needs mosquitto_passwd (Debian's mosquitto package)")
    broker = Broker(tmp_path, users={"ha": "s3cret-pw"}).start()
    try:
        with caplog.at_level(logging.INFO, logger="stream.events.mqtt"):
            wrong = MqttSink(f"mqtt://ha:wrong-pw@127.0.0.1:{broker.port}")
            assert not wrong.wait_connected(1.5)  # refused, retried quietly
            wrong.close()
            listener = Listener(broker.port, user="ha", password="s3cret-pw")
            os.environ["FS_TEST_MQTT_PW"] = "s3cret-pw"
            try:
                sink = MqttSink(f"mqtt://ha:${{FS_TEST_MQTT_PW}}@127.0.0.1:{broker.port}")
                assert sink.wait_connected(10)
                sink.write(_event("identity", 1, "alice"))
                listener.wait_for(lambda m: m[0] == "facestream/door/identity")
                sink.close()
            finally:
                del os.environ["FS_TEST_MQTT_PW"]
                listener.close()
        refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert len(refused) == 1 and "ha:***@" in refused[0], caplog.text
        assert "wrong-pw" not in caplog.text and "s3cret-pw" not in caplog.text
    finally:
        broker.kill()


@pytest.mark.slow
def test_a_run_publishes_to_mqtt_and_survives_a_broker_restart(broker, cli, engines_dir, tmp_path):
    gallery = tmp_path / "people.npz"
    cli("enroll", "--gallery", gallery, "--name", "lin-manuel-miranda", media_path("lin-manuel-miranda.png"),
        check=True)
    listener = Listener(broker.port)
    env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(engines_dir)}
    clip = media_path("short_hamilton_clip.mp4")
    proc = subprocess.Popen([sys.executable, "-m", "stream", "run", "--source", f"stage={clip}",
                             "--gallery", str(gallery), "--mqtt", broker.url, "--realtime", "--no-progress"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        listener.wait_for(lambda m: m[0] == "facestream/stage/track_started", timeout_s=120)
        listener.wait_for(lambda m: m[0] == "facestream/status" and m[1] == "online")
        before = listener.messages
        broker.kill()  # mid-run
        time.sleep(1.5)
        broker.start()
        listener.close()
        listener = Listener(broker.port)
        stderr = proc.communicate(timeout=120)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-2000:]
    # events made after the restart arrive (the listener subscribed then; retained ones do not count)
    listener.wait_for(lambda m: m[0].startswith("facestream/stage/") and not m[2]
                      and m[0].rsplit("/", 1)[1] in ("identity", "track_ended", "heartbeat"), timeout_s=5)
    named = [m for m in before + listener.messages if m[0] == "facestream/stage/identity"
             and json.loads(m[1])["identity"] == "lin-manuel-miranda"]
    assert named and all(m[3] == 1 for m in named)
    listener.wait_for(lambda m: m[0] == "facestream/status" and m[1] == "offline")
    listener.close()
    # what a subscriber that comes later is told (retained): nobody in view, facestream offline
    late = Listener(broker.port)
    late.wait_for(lambda m: m[0] == "facestream/stage/present" and m[2] and json.loads(m[1])["tracks"] == 0)
    late.wait_for(lambda m: m[0] == "facestream/status" and m[1] == "offline" and m[2])
    late.close()


def test_a_bad_broker_url_is_one_line_and_an_unreachable_one_only_warns(cli, tmp_path):
    proc = cli("run", "--source", media_path("short_hamilton_clip.mp4"), "--mqtt", "ftp://u:s3cret@x", "--no-progress")
    assert proc.returncode == 2
    assert_one_line_error(proc, "output.mqtt")
    assert "s3cret" not in proc.stderr
    closed = free_port()
    proc = cli("run", "--source", media_path("short_hamilton_clip.mp4"), "--mqtt",
               f"mqtt://u:s3cret@127.0.0.1:{closed}", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert f"mqtt mqtt://u:***@127.0.0.1:{closed}: broker unreachable" in proc.stderr
    assert f"mqtt mqtt://u:***@127.0.0.1:{closed}: 0 message(s) published" in proc.stderr  # the losses, said
    assert "s3cret" not in proc.stderr


@pytest.mark.slow
def test_the_mqtt_totals_cover_every_publisher_and_are_in_the_summary_line(broker, engines_dir, tmp_path):
    # A publisher killed mid-run: its successor's sink starts at zero, the run's figures must not.
    import uuid

    from tests.support.procs import processes_with

    listener = Listener(broker.port)
    marker = uuid.uuid4().hex
    env = {**os.environ, "FACESTREAM_ENGINES_DIR": str(engines_dir), "FACESTREAM_TEST_MARK": marker}
    summary_path = tmp_path / "summary.json"
    proc = subprocess.Popen([sys.executable, "-m", "stream", "run", "--source",
                             f"stage={media_path('short_hamilton_clip.mp4')}", "--mqtt", broker.url, "--realtime",
                             "--no-progress", "--summary-json", str(summary_path)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        listener.wait_for(lambda m: m[0] == "facestream/stage/track_started", timeout_s=120)
        deadline = time.monotonic() + 30
        while sum(m[0].startswith("facestream/stage/") for m in listener.messages) < 10:
            assert time.monotonic() < deadline, listener.messages
            time.sleep(0.1)
        publisher = [pid for pid, name in processes_with(marker).items() if name == "fs-publish"]
        assert publisher
        os.kill(publisher[0], signal.SIGKILL)
        before_kill = len(listener.messages)
        stderr = proc.communicate(timeout=180)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()
    assert proc.returncode == 0, stderr[-2000:]
    summary = json.loads(summary_path.read_text())
    assert summary["restarts"].get("publish") == 1, summary["restarts"]
    mqtt = summary["mqtt"]
    assert len(listener.messages) > before_kill  # the successor published too
    # Every event message a subscriber got was counted, from both publishers. The status topic is left
    # out: the killed one's "offline" is its last will, sent by the broker. A kill between paho taking a
    # message and the ledger's count of it can leave the last event and its presence update uncounted.
    received = sum(m[0].startswith("facestream/stage/") for m in listener.messages)
    assert mqtt["published"] >= received - 2, (mqtt, received)
    assert mqtt["dropped"] == 0 and mqtt["acked"] <= mqtt["published"]
    # Said at the default log level, in the summary line, with the run's totals.
    line = [ln for ln in stderr.splitlines() if ln.startswith("facestream: ") and " frames, " in ln]
    assert len(line) == 1 and f"mqtt: {mqtt['published']} published" in line[0], stderr[-2000:]
