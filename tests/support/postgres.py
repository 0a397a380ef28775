"""A real PostgreSQL server for the tests: Debian's `postgresql`, initdb in a temporary folder, on
127.0.0.1, as an unprivileged user (PostgreSQL refuses to run as root). Skips with a reason where absent."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Postgres:
    """One server: ``url``, and ``stop()`` / ``start()`` to take it away and bring it back mid-test."""

    def __init__(self, root: Path, user: str | None) -> None:
        self.root, self.user = root, user
        self.data = root / "data"
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.pg_ctl = _bin("pg_ctl")

    def _run(self, *args: str) -> None:
        cmd = [*(["runuser", "-u", self.user, "--"] if self.user else []), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode:
            raise RuntimeError(f"{' '.join(args)}: {proc.stderr or proc.stdout}")

    def init(self) -> None:
        self._run(str(_bin("initdb")), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        self._run(str(self.pg_ctl), "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-o",
                  f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off", "start")

    def stop(self) -> None:
        self._run(str(self.pg_ctl), "-D", str(self.data), "-m", "fast", "-w", "stop")


@contextlib.contextmanager
def postgres_server() -> Iterator[Postgres]:
    if _bin("initdb") is None or _bin("pg_ctl") is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql; .ci/run installs it)")
    pytest.importorskip("psycopg", reason="psycopg 3 is not installed (pip install -e '.[history-pg]')")
    user = None
    if os.geteuid() == 0:  # PostgreSQL refuses root: run it as nobody, in a folder nobody owns
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        user = "nobody"
    root = Path(tempfile.mkdtemp(prefix="fs-pg-"))
    if user:
        shutil.chown(root, user)
        root.chmod(0o700)
    server = Postgres(root, user)
    try:
        server.init()
        server.start()
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"PostgreSQL would not start here: {str(exc)[:300]}")
    try:
        yield server
    finally:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
