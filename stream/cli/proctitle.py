"""Mask secrets in this process's command line (/proc/<pid>/cmdline, what ``ps`` shows every user).

Prefer ``${VAR}`` in --source (the secret never reaches argv); this is the defense in depth for a
password typed on the command line. Workers are spawned with a fixed ``python -c ...`` command line
and get their sources through a pipe, so only the main process needs it. The secret is visible
from the exec until here: keep this the first thing the CLI does, before anything slow.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from stream.sources.credentials import mask_credentials

log = logging.getLogger(__name__)

_COMM = Path("/proc/self/comm")


def mask_own_cmdline(argv: list[str] | None = None) -> bool:
    """Rewrite the process title to the masked command line when ``argv`` (default: the interpreter's
    own, ``sys.orig_argv``) holds a secret. True when the title was rewritten."""
    argv = list(sys.orig_argv if argv is None else argv)
    masked = [mask_credentials(arg) for arg in argv]
    if masked == argv:
        return False
    try:
        import setproctitle
    except ImportError:
        log.warning("facestream: a password on the command line is visible to every user (ps); "
                    "use ${VAR} in --source, or pip install setproctitle to mask it")
        return False
    comm = _read_comm()
    setproctitle.setproctitle(" ".join(masked))
    if comm:  # setproctitle also renames the process (ps -C, pgrep, top): keep its name
        try:
            _COMM.write_text(comm)
        except OSError as exc:  # the name is cosmetic; the command line is what mattered
            log.debug("cannot restore the process name %r: %s", comm, exc)
    return True


def _read_comm() -> str | None:
    try:
        return _COMM.read_text().strip()
    except OSError:
        return None
