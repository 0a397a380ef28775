"""A real Mosquitto broker on 127.0.0.1 (Debian's `mosquitto` package), killable and restartable on
the same port, for the MQTT tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from tests.support.net import free_port

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


def mosquitto_missing() -> str | None:
    return None if MOSQUITTO else "needs Debian's mosquitto (apt-get install mosquitto)"


class Broker:
    def __init__(self, folder: Path, port: int | None = None, users: dict[str, str] | None = None) -> None:
        """``users``: name -> password, and anonymous clients are refused (needs mosquitto_passwd)."""
        self.port = port or free_port()
        self.config = Path(folder) / "mosquitto.conf"
        auth = "allow_anonymous true\n"
        if users:
            passwords = Path(folder) / "mosquitto.passwd"
            passwords.touch()
            for user, password in users.items():
                subprocess.run([shutil.which("mosquitto_passwd") or "mosquitto_passwd", "-b", str(passwords), user,
                                password], check=True, capture_output=True)
            auth = f"allow_anonymous false\npassword_file {passwords}\n"
            if os.geteuid() == 0:  # else it drops to user mosquitto, who cannot read pytest's tmp folder
                auth += "user root\n"
        self.config.write_text(f"listener {self.port} 127.0.0.1\n{auth}persistence false\n"
                               "log_type error\nlog_dest stderr\n"  # only errors: why it did not start
                               # a test floods a subscriber after an outage: the default 1000 would drop
                               "max_queued_messages 20000\n")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> Broker:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"mosquitto exited: {self.proc.stderr.read().decode()}") from None
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Listener:
    """A real paho subscriber (QoS 1) that keeps every message: (topic, payload text, retained, qos)."""

    def __init__(self, port: int, topic: str = "facestream/#", user: str | None = None,
                 password: str | None = None) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, str, bool, int]] = []
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self._client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload.decode(), bool(m.retain),
                                                                            m.qos))
        self._subscribed = threading.Event()
        self._client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self._client.on_subscribe = lambda c, u, mid, rc, p: self._subscribed.set()
        if user:
            self._client.username_pw_set(user, password)
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        if not self._subscribed.wait(10):  # from here on, nothing published is missed
            raise RuntimeError("the MQTT listener did not subscribe")

    def mark(self) -> int:
        """Where the messages received so far end: ``wait_for(..., after=mark)`` looks only past it."""
        return len(self.messages)

    def wait_for(self, predicate, timeout_s: float = 20.0, after: int = 0):
        """The messages matching ``predicate``, received so far (from index ``after``) or until one comes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = [m for m in list(self.messages)[after:] if predicate(m)]
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no matching MQTT message in {timeout_s:.0f} s; got {self.messages[-5:]}")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
