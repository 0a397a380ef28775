"""CURVE-secured events: real sockets on 127.0.0.1, real keys from `facestream keys generate`."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
import zmq

from stream.cli import main
from stream.config.schema import load_config
from stream.errors import FacestreamError
from stream.events.curve import generate, is_loopback
from stream.events.schema import Event
from stream.events.subscriber import EventSubscriber
from stream.events.zmq_sink import ZmqSink
from tests.conftest import REPO, media_path
from tests.support.net import free_port


def ev(i: int = 1) -> Event:
    return Event(type="identity", source="cam1", ts=time.time(), track_id=i, identity="ann")


@pytest.fixture
def endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    """A server keypair, an allowed client (its .key in clients/) and a stranger (not listed)."""
    server_pub, server_secret = generate(tmp_path / "server", "server")
    client_pub, client_secret = generate(tmp_path / "client", "client")
    _, stranger_secret = generate(tmp_path / "stranger", "stranger")
    clients = tmp_path / "clients"
    clients.mkdir()
    (clients / "client.key").write_bytes(client_pub.read_bytes())
    return {"server_pub": server_pub, "server_secret": server_secret, "clients": clients,
            "client_secret": client_secret, "stranger_secret": stranger_secret}


def secured(endpoint: str, keys: dict[str, Path]) -> ZmqSink:
    return ZmqSink(endpoint, server_secret_key_file=keys["server_secret"], allowed_clients_dir=keys["clients"])


def wait_subscribers(pub: ZmqSink, n: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while pub.subscribers < n and time.monotonic() < deadline:
        pub.poll(0.05)
    return pub.subscribers >= n


def test_an_authorised_subscriber_receives_events(endpoint, keys):
    pub = secured(endpoint, keys)
    sub = EventSubscriber(endpoint, server_key_file=keys["server_pub"], client_key_file=keys["client_secret"])
    try:
        assert wait_subscribers(pub, 1, 5), "the allowed client never subscribed"
        pub.publish(ev(7))
        got = sub.receive(3)
        assert got is not None and got.track_id == 7 and got.identity == "ann"
        assert pub.sent == 1 and pub.dropped == 0
    finally:
        sub.close()
        pub.close()


@pytest.mark.slow
@pytest.mark.parametrize("who", ["stranger", "plaintext", "wrong-server-key"])
def test_an_unlisted_or_plaintext_subscriber_receives_nothing(endpoint, keys, who):
    pub = secured(endpoint, keys)
    if who == "stranger":  # a valid keypair the server does not list
        sub = EventSubscriber(endpoint, server_key_file=keys["server_pub"], client_key_file=keys["stranger_secret"])
    elif who == "plaintext":
        sub = EventSubscriber(endpoint)
    else:  # an allowed client that trusts another server's key: its handshake fails too
        sub = EventSubscriber(endpoint, server_key_file=keys["stranger_secret"], client_key_file=keys["client_secret"])
    # The allowed client, as a control: events do flow while the refused one waits.
    ok = EventSubscriber(endpoint, server_key_file=keys["server_pub"], client_key_file=keys["client_secret"])
    try:
        assert wait_subscribers(pub, 1, 5)
        assert not wait_subscribers(pub, 2, 1.0), "the refused peer got a subscription in"
        for i in range(5):
            pub.publish(ev(i + 1))
        assert ok.receive(3) is not None
        assert sub.receive(1.5) is None
        assert pub.subscribers == 1
    finally:
        ok.close()
        sub.close()
        pub.close()


def test_a_plaintext_publisher_on_a_public_address_warns(caplog):
    endpoint = f"tcp://0.0.0.0:{free_port()}"
    with caplog.at_level(logging.WARNING, logger="stream.events.zmq_sink"):
        ZmqSink(endpoint).close()
    assert any("plaintext" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="stream.events.zmq_sink"):
        ZmqSink(f"tcp://127.0.0.1:{free_port()}").close()
    assert not caplog.records


def test_is_loopback():
    assert is_loopback("tcp://127.0.0.1:5556") and is_loopback("tcp://[::1]:5556")
    assert is_loopback("tcp://localhost:5556") and is_loopback("ipc:///tmp/x.sock")
    assert not is_loopback("tcp://*:5556") and not is_loopback("tcp://0.0.0.0:5556")
    assert not is_loopback("tcp://eth0:5556") and not is_loopback("epgm://eth0;239.1.1.1:5556")


def test_bad_keys_are_one_line_errors(endpoint, keys, tmp_path):
    with pytest.raises(FacestreamError, match="both"):
        ZmqSink(endpoint, server_secret_key_file=keys["server_secret"])
    with pytest.raises(FacestreamError, match="no secret key"):  # the public half cannot serve
        ZmqSink(endpoint, server_secret_key_file=keys["server_pub"], allowed_clients_dir=keys["clients"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FacestreamError, match="no client public keys"):
        ZmqSink(endpoint, server_secret_key_file=keys["server_secret"], allowed_clients_dir=empty)
    with pytest.raises(FacestreamError, match="both --server-key"):
        EventSubscriber(endpoint, server_key_file=keys["server_pub"])
    junk = tmp_path / "junk.key"
    junk.write_text("not a certificate\n")
    with pytest.raises(FacestreamError, match="junk.key"):
        EventSubscriber(endpoint, server_key_file=junk, client_key_file=keys["client_secret"])


def test_config_keys_go_together_and_must_exist(keys, tmp_path):
    def config(**output: object) -> Path:
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump({"output": {k: str(v) for k, v in output.items()}}))
        return path

    with pytest.raises(FacestreamError, match="set both or neither") as exc:
        load_config(config(publish_server_key=keys["server_secret"]))
    assert "\n" not in str(exc.value)
    with pytest.raises(FacestreamError, match="set both or neither"):
        load_config(config(publish_client_keys=keys["clients"]))
    missing = tmp_path / "nope.key_secret"
    with pytest.raises(FacestreamError, match="nope.key_secret: file not found"):
        load_config(config(publish_server_key=missing, publish_client_keys=keys["clients"]))
    with pytest.raises(FacestreamError, match="no-clients: folder not found"):
        load_config(config(publish_server_key=keys["server_secret"], publish_client_keys=tmp_path / "no-clients"))
    ok = load_config(config(publish_server_key=keys["server_secret"], publish_client_keys=keys["clients"]))
    assert ok.output.publish_server_key == keys["server_secret"]


def test_run_flags_validate_the_keys(keys, tmp_path, capsys):
    rc = main(["run", "--validate-config", "--publish-key", str(tmp_path / "missing.key_secret"),
               "--publish-clients", str(keys["clients"])])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert "missing.key_secret" in err and "\n" not in err
    assert main(["run", "--validate-config", "--publish-key", str(keys["server_secret"]),
                 "--publish-clients", str(keys["clients"])]) == 0


def test_keys_generate_writes_a_public_and_a_private_file(tmp_path, capsys):
    assert main(["keys", "generate", str(tmp_path / "k"), "--name", "cam-host"]) == 0
    public, secret = tmp_path / "k" / "cam-host.key", tmp_path / "k" / "cam-host.key_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert "secret-key" not in public.read_text() and "public-key" in public.read_text()
    pub_key, sec_key = zmq.auth.load_certificate(secret)
    assert zmq.auth.load_certificate(public) == (pub_key, None) and sec_key is not None
    assert sorted(p.name for p in (tmp_path / "k").iterdir()) == ["cam-host.key", "cam-host.key_secret"]
    # A second run never overwrites a key someone may already have handed out.
    capsys.readouterr()
    assert main(["keys", "generate", str(tmp_path / "k"), "--name", "cam-host"]) == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.slow
def test_a_secured_run_reaches_only_the_subscriber_with_the_right_keys(cli, keys, tmp_path):
    clip = media_path("short_hamilton_clip.mp4")
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    flags = ["--connect", endpoint, "--timeout", "60", "--server-key", str(keys["server_pub"])]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Subscribers first: they retry until the run binds, so they see its events from the start.
    good = subprocess.Popen([sys.executable, "-m", "stream", "subscribe", *flags, "--count", "3",
                             "--client-key", str(keys["client_secret"])],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    bad = EventSubscriber(endpoint, server_key_file=keys["server_pub"], client_key_file=keys["stranger_secret"])
    try:
        run = cli("run", "--source", str(clip), "--publish", endpoint, "--publish-key", keys["server_secret"],
                  "--publish-clients", keys["clients"], "--no-progress", timeout=300)
        assert run.returncode == 0, run.stderr
        out, err = good.communicate(timeout=90)
        assert good.returncode == 0, err
        events = [Event.from_json(line) for line in out.splitlines() if line.strip()]
        assert len(events) == 3, err
        assert bad.receive(0.5) is None and bad.received == 0
    finally:
        bad.close()
        if good.poll() is None:
            good.kill()


def _subscribe(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stream", "subscribe", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


@pytest.mark.slow
@pytest.mark.parametrize(("who", "needle"), [
    ("stranger", "refused this subscriber's key"),
    ("plaintext", "give --server-key and --client-key"),
    ("wrong-server-key", "is --server-key the publisher's public key"),
])
def test_subscribe_says_it_was_refused_and_exits(endpoint, keys, who, needle):
    # It used to wait for --timeout (or forever) and print "0 events", as if all were well.
    flags = {"stranger": ["--server-key", keys["server_pub"], "--client-key", keys["stranger_secret"]],
             "plaintext": [],
             "wrong-server-key": ["--server-key", keys["stranger_secret"], "--client-key", keys["client_secret"]]}
    pub = secured(endpoint, keys)
    try:
        started = time.monotonic()
        proc = _subscribe("--connect", endpoint, *flags[who], "--timeout", "60")
        took = time.monotonic() - started
    finally:
        pub.close()
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"facestream: {endpoint}: {lines[0].split(': ', 2)[2]}"] and needle in lines[0], proc.stderr
    assert took < 30  # at the refusal, not at --timeout


@pytest.mark.slow
def test_a_curve_subscriber_of_a_plaintext_publisher_is_told(endpoint, keys):
    pub = ZmqSink(endpoint)
    try:
        proc = _subscribe("--connect", endpoint, "--server-key", keys["server_pub"], "--client-key",
                          keys["client_secret"], "--timeout", "60")
    finally:
        pub.close()
    # libzmq reports a mechanism mismatch as such, or (racing the peer's close) without detail
    assert proc.returncode == 2 and ("not CURVE-secured" in proc.stderr or "is the publisher CURVE-secured?"
                                     in proc.stderr), proc.stderr


def test_the_subscriber_object_knows_it_was_refused(endpoint, keys):
    pub = secured(endpoint, keys)
    sub = EventSubscriber(endpoint, server_key_file=keys["server_pub"], client_key_file=keys["stranger_secret"])
    try:
        deadline = time.monotonic() + 10
        while sub.refused is None and time.monotonic() < deadline:
            assert sub.receive(0.2) is None
        assert sub.refused and "refused" in sub.refused and sub.handshakes == 0
    finally:
        sub.close()
        pub.close()


@pytest.mark.slow
def test_subscribe_to_nothing_says_so_at_its_timeout(endpoint):
    proc = _subscribe("--connect", endpoint, "--timeout", "1")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"facestream: {endpoint}: no publisher is listening there"


@pytest.mark.slow
def test_subscribe_to_a_server_that_never_answers_says_so(endpoint):
    import socket

    with socket.socket() as silent:  # accepts TCP, never speaks ZeroMQ
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        where = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        proc = _subscribe("--connect", where, "--timeout", "1")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"facestream: {where}: something accepted the connection but never completed " \
                                  "a ZeroMQ handshake"


@pytest.mark.slow
def test_a_quiet_but_connected_publisher_is_no_error(endpoint):
    pub = ZmqSink(endpoint)
    try:
        proc = _subscribe("--connect", endpoint, "--timeout", "1")
    finally:
        pub.close()
    assert proc.returncode == 0, proc.stderr
    assert "0 events" in proc.stderr
