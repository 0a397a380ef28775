"""Stop signals: the first drains, a duplicate delivery is the same request, a later one forces."""

from __future__ import annotations

import os
import signal

import pytest

from stream.pipeline.signals import StopSignals


def test_a_signal_delivered_twice_at_once_is_one_request():
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals() as stops:
        assert stops.requested is None
        os.kill(os.getpid(), signal.SIGTERM)  # to the command...
        os.kill(os.getpid(), signal.SIGTERM)  # ...and to its process group, as timeout(1) does
        assert stops.requested == "SIGTERM" and stops.received == ["SIGTERM"]
    assert signal.getsignal(signal.SIGTERM) is before, "handlers restored"


def test_a_second_request_forces_the_stop():
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN when started in the background
    with pytest.raises(KeyboardInterrupt), StopSignals(duplicate_s=0.0) as stops:
        os.kill(os.getpid(), signal.SIGINT)
        assert stops.requested == "SIGINT"
        os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGINT) is before, "handlers restored"
