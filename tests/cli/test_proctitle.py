"""The main process's command line is masked only when it holds a secret; without setproctitle, a warning."""

from __future__ import annotations

import logging
import sys

from stream.cli.proctitle import mask_own_cmdline


def test_a_command_line_without_secrets_is_left_alone():
    assert not mask_own_cmdline(["python", "-m", "stream", "run", "--source", "rtsp://10.0.0.5/live", "clip.mp4"])


def test_without_setproctitle_a_one_line_warning_and_the_run_goes_on(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "setproctitle", None)  # import setproctitle -> ImportError
    caplog.set_level(logging.WARNING, logger="stream.cli.proctitle")
    assert not mask_own_cmdline(["facestream", "run", "--source", "door=rtsp://admin:hunter2@10.0.0.5/live"])
    [record] = caplog.records
    message = record.getMessage()
    assert "\n" not in message and "hunter2" not in message and "${VAR}" in message
