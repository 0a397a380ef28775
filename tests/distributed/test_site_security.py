"""The Ray site's edges: its event proxy admits only its own shards (CURVE), an unreachable cluster is one
line, the stop line says which shards were down, and a failure reason has one prefix. Real ZeroMQ sockets
on 127.0.0.1 and a real (single-node) Ray instance where one is needed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq

from stream.distributed.batch import run_video
from stream.distributed.driver import ShardState, stop_report
from stream.events.curve import CONNECT_CLIENT_KEY, CONNECT_SERVER_KEY, generate
from stream.events.schema import Event
from stream.events.subscriber import EventSubscriber
from stream.events.zmq_sink import ZmqSink
from tests.conftest import REPO
from tests.support.net import free_port


def _event(source: str = "door", seq: int = 1) -> Event:
    return Event(type="identity", source=source, ts=time.time(), track_id=1, identity="ann", seq=seq)


def _drain(sock: zmq.Socket, seconds: float) -> list[bytes]:
    got, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        if sock.poll(50):
            parts = sock.recv_multipart()
            if len(parts) == 2:  # the capture also copies subscriptions going upstream (one part)
                got.append(parts[1])
    return got


@pytest.fixture(scope="module")
def site_driver(tmp_path_factory):
    """A SiteDriver on a Ray instance of its own (no shards started): its proxy as the site runs it."""
    pytest.importorskip("ray")
    from stream.distributed.driver import SiteDriver
    from stream.distributed.site import SiteConfig

    site = SiteConfig.model_validate({"cameras": ["door=rtsp://127.0.0.1:1/x"],
                                      "sharding": {"events_bind": "tcp://127.0.0.1:0"}})
    driver = SiteDriver(site, f"tcp://127.0.0.1:{free_port()}", status_every_s=3600)
    yield driver
    driver.stop()


def _flood(endpoint: str, options: dict, control: dict, seconds: float = 1.5) -> None:
    """A PUB (as an attacker on the network would connect) sending "forged" events for ``seconds``, and
    beside it a PUB with ``control`` options (the site's shard keys) sending "door" ones."""
    socks = []
    for opts in (options, control):
        sock = zmq.Context.instance().socket(zmq.PUB)
        for option, value in opts.items():
            sock.setsockopt(option, value)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        socks.append(sock)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for sock, source in zip(socks, ("forged", "door")):
            event = _event(source)
            sock.send_multipart([event.topic.encode(), event.to_json().encode()])
        time.sleep(0.05)
    for sock in socks:
        sock.close(0)


def _only_the_shard_got_in(messages: list[bytes]) -> None:
    assert [m for m in messages if b'"door"' in m], "the control publisher with the site's keys got nothing in"
    assert not [m for m in messages if b"forged" in m]


@pytest.mark.slow
def test_a_plaintext_peer_cannot_inject_events_into_the_site(site_driver):
    # The proxy bound tcp://0.0.0.0:5557 in plaintext: anyone on the network could publish "who was where".
    tap = site_driver.proxy.tap()
    try:
        time.sleep(0.2)
        _flood(site_driver.events_endpoint, {}, site_driver.keys.client_options())
        _only_the_shard_got_in(_drain(tap, 0.5))
    finally:
        tap.close(0)


@pytest.mark.slow
def test_a_stranger_key_cannot_inject_events_into_the_site(site_driver, tmp_path):
    from stream.events.curve import client_options

    _, stranger = generate(tmp_path, "stranger")
    server_pub = site_driver.keys.folder / "proxy.key"
    tap = site_driver.proxy.tap()
    try:
        time.sleep(0.2)
        _flood(site_driver.events_endpoint, client_options(server_pub, stranger), site_driver.keys.client_options())
        _only_the_shard_got_in(_drain(tap, 0.5))
    finally:
        tap.close(0)


@pytest.mark.slow
def test_a_shard_with_the_site_keys_reaches_the_site_and_its_subscribers(site_driver, tmp_path):
    # What a shard gets from the driver, written where its run reads output.publish_connect_keys.
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    for name, data in site_driver.keys.for_shard().items():
        (keys / name).write_bytes(data)
        (keys / name).chmod(0o600)
    assert {p.name for p in keys.iterdir()} == {CONNECT_SERVER_KEY, CONNECT_CLIENT_KEY}
    tap = site_driver.proxy.tap()
    sub = EventSubscriber(site_driver.proxy.outbound)
    pub = ZmqSink(site_driver.events_endpoint, connect=True, connect_keys=keys)
    try:
        deadline = time.monotonic() + 10
        got = None
        while got is None and time.monotonic() < deadline:
            pub.poll(0.1)
            pub.publish(_event("door", 0))
            got = sub.receive(0.2)
        assert got is not None and got.source == "door"
        assert [m for m in _drain(tap, 0.5) if b'"door"' in m]
    finally:
        pub.close()
        sub.close()
        tap.close(0)


def test_subscribers_of_a_site_with_publish_keys_need_them(tmp_path):
    pytest.importorskip("ray")
    from stream.distributed.proxy import EventProxy, SiteKeys

    server_pub, server_secret = generate(tmp_path / "server", "site")
    client_pub, client_secret = generate(tmp_path / "client", "viewer")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "viewer.key").write_bytes(client_pub.read_bytes())
    keys = SiteKeys.make()
    outbound = f"tcp://127.0.0.1:{free_port()}"
    proxy = EventProxy("tcp://127.0.0.1:0", outbound, shard_keys=keys, server_key=server_secret,
                       client_keys=allowed)
    plain = EventSubscriber(outbound)
    good = EventSubscriber(outbound, server_key_file=server_pub, client_key_file=client_secret)
    pub = zmq.Context.instance().socket(zmq.PUB)
    for option, value in keys.client_options().items():
        pub.setsockopt(option, value)
    pub.connect(proxy.inbound)
    try:
        deadline = time.monotonic() + 10
        got = None
        while got is None and time.monotonic() < deadline:
            event = _event("hall")
            pub.send_multipart([event.topic.encode(), event.to_json().encode()])
            got = good.receive(0.2)
        assert got is not None and got.source == "hall"
        deadline = time.monotonic() + 5
        while plain.refused is None and time.monotonic() < deadline:
            assert plain.receive(0.2) is None
        assert plain.refused and plain.received == 0
    finally:
        pub.close(0)
        plain.close()
        good.close()
        proxy.close()
        keys.remove()


@pytest.mark.slow
@pytest.mark.parametrize("command", ["batch", "run"])
def test_an_unreachable_cluster_is_one_line_and_exit_2_at_once(tmp_path, command):
    pytest.importorskip("ray")
    video = tmp_path / "a.mp4"
    video.write_bytes(b"\x00" * 16)
    site = tmp_path / "site.yaml"
    site.write_text("cameras: ['door=rtsp://127.0.0.1:1/x']\n")
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    args = {"batch": [str(video), "--out", str(tmp_path / "out"), "--no-progress"], "run": ["--config", str(site)]}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "stream", "site", command, "--address", address,
                           *args[command]], cwd=REPO, capture_output=True, text=True, timeout=120)
    took = time.monotonic() - started
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [f"facestream: --address {address}: no Ray cluster there "
                                                "(Connection refused)"], proc.stderr[-2000:]
    assert took < 30


def test_the_stop_line_names_the_shards_that_were_down_and_for_how_long():
    t0 = 1000.0
    flaky = ShardState("shard-1", ["hall"], actor=None, up=True)
    flaky.went_down(t0 + 10)
    flaky.came_up(t0 + 51.5)
    flaky.restarts = 1
    steady = ShardState("shard-0", ["door"], actor=None, up=True)
    gone = ShardState("shard-2", ["yard"], actor=None)
    gone.went_down(t0 + 80)
    line = stop_report({"shard-0": {"frames": 2000}, "shard-1": {"frames": 333}, "shard-2": {"error": "GetTimeout"}},
                       {"shard-0": steady, "shard-1": flaky, "shard-2": gone}, now=t0 + 100)
    assert line.startswith("site stopped; 2333 frames in 3 shard(s); ")
    assert "shard-1 down 41.5 s, 1 restart(s)" in line
    assert "shard-2 down 20.0 s, down at the stop" in line and "shard-2 gave no summary (GetTimeout)" in line
    assert "shard-0" not in line
    steady_only = stop_report({"shard-0": {"frames": 5}}, {"shard-0": steady}, now=t0)
    assert steady_only == "site stopped; 5 frames in 1 shard(s); every shard up throughout"


@pytest.mark.slow
def test_a_failure_reason_has_no_second_prefix(engines_dir, monkeypatch, tmp_path):
    # It read "facestream batch: broken: facestream: ..." once the report added its own prefix.
    monkeypatch.setenv("FACESTREAM_ENGINES_DIR", str(engines_dir))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 4096)
    result = run_video(str(broken), "broken", ".mp4", {}, None)
    assert result["ok"] is False
    assert result["reason"] and not result["reason"].startswith("facestream")
    assert str(broken) in result["reason"] or "broken" in result["reason"]


@pytest.mark.slow
def test_site_keys_are_private_files():
    pytest.importorskip("ray")
    from stream.distributed.proxy import SiteKeys

    keys = SiteKeys.make()
    try:
        assert (keys.folder.stat().st_mode & 0o077) == 0
        assert (keys.server_secret.stat().st_mode & 0o077) == 0
        assert set(keys.for_shard()) == {CONNECT_SERVER_KEY, CONNECT_CLIENT_KEY}
    finally:
        keys.remove()
    assert not Path(keys.folder).exists()
