"""One shard: a whole `facestream run` for some cameras, supervised by a Ray actor on some node.

The run is a child process of the actor, made to die with it (``PR_SET_PDEATHSIG``): when Ray
loses the node, or restarts the actor elsewhere, no orphaned pipeline keeps a camera busy. The
actor writes the run's config and gallery into a folder of its own on its node; a new gallery
from the driver replaces that file atomically, and the run's gallery watcher picks it up within
a second. ``${VAR}`` in a camera URL is expanded here, from this node's environment, and handed to
the run through its environment, never its command line.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from stream.distributed.deps import node_identity
from stream.sources.credentials import expand_env, mask_text

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the actor's process goes (Linux)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ShardRunner:
    """The plain class a Ray actor wraps (``ray.remote(ShardRunner)``); also usable without Ray."""

    def __init__(self, name: str, cameras: list[str], pipeline_config: dict[str, Any], events_endpoint: str,
                 gallery: bytes | None, extra_args: list[str] | None = None,
                 keys: dict[str, bytes] | None = None) -> None:
        self.name = name
        self.cameras = cameras
        self.started = time.time()
        self.dir = Path(tempfile.mkdtemp(prefix=f"facestream-{name}-"))
        config = json.loads(json.dumps(pipeline_config))  # a copy, plain data
        output = config.setdefault("output", {})
        output.update({"publish": events_endpoint, "publish_connect": True, "origin": name,
                       "publish_server_key": None, "publish_client_keys": None, "metrics_port": None,
                       "mqtt_client_id": None,  # one client id shared by shards: the broker would drop all but one
                       "publish_connect_keys": self._write_keys(keys) if keys else None})
        config.setdefault("web", {})["http"] = None  # the picture stays on the node; the site has its own page
        self.gallery = self.dir / "gallery.npz"
        if gallery:
            self._write_gallery(gallery)
            config["gallery"] = str(self.gallery)
        else:
            config["gallery"] = None
        (self.dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        args = [sys.executable, "-m", "stream", "run", "--config", str(self.dir / "config.yaml"), "--no-progress",
                "--summary-json", str(self.dir / "summary.json")]
        for i, camera in enumerate(cameras):
            camera_name, _, uri = camera.partition("=")
            env[f"FACESTREAM_CAMERA_{i}"] = expand_env(uri, f"camera {camera_name}")
            args += ["--source", f"{camera_name}=${{FACESTREAM_CAMERA_{i}}}"]
        self._log = open(self.dir / "run.log", "wb")  # noqa: SIM115 - open for the run's lifetime
        self.proc = subprocess.Popen(args + list(extra_args or []), env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        log.info("%s: run started (pid %d) for %s", name, self.proc.pid,
                 ", ".join(c.partition("=")[0] for c in cameras))

    def _write_keys(self, keys: dict[str, bytes]) -> str:
        """The site's keys for the proxy (its public key, this shard's keypair), private to this run."""
        folder = self.dir / "keys"
        folder.mkdir(mode=0o700)
        for file_name, data in keys.items():
            fd = os.open(folder / file_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        return str(folder)

    def _write_gallery(self, data: bytes) -> None:
        tmp = self.gallery.with_name(self.gallery.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, self.gallery)  # the run's watcher sees a new inode: one whole file or the old one

    def set_gallery(self, data: bytes) -> bool:
        if self.proc.poll() is not None:
            return False
        self._write_gallery(data)
        return True

    def status(self) -> dict[str, Any]:
        code = self.proc.poll()
        node = node_identity()
        out = {"shard": self.name, "cameras": [c.partition("=")[0] for c in self.cameras],
               "host": socket.gethostname(), "node_ip": node["ip"], "node_id": node["id"], "pid": self.proc.pid,
               "running": code is None, "returncode": code, "started": self.started}
        if code is not None:
            out["log_tail"] = self.log_tail()
        return out

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = (self.dir / "run.log").read_text(errors="replace")
        except OSError:
            return ""
        return mask_text("\n".join(text.strip().splitlines()[-lines:]))

    def stop(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """Drain the run (SIGINT) and return its summary."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        summary_path = self.dir / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        shutil.rmtree(self.dir, ignore_errors=True)
        return summary

