"""The run's one summary line says what was not processed, each kind apart, and stays quiet when all was."""

from __future__ import annotations

from stream.cli.run_cmd import format_summary


def test_dropped_and_corrupt_frames_are_said_apart():
    line = format_summary({"frames": 10, "dropped": 3, "corrupt": 1, "lost": 0})
    assert line.endswith("; frames 3 dropped, 1 corrupt")


def test_nothing_said_when_every_frame_was_processed():
    assert "frames 0" not in format_summary({"frames": 10, "dropped": 0, "corrupt": 0})
    assert "dropped" not in format_summary({"frames": 10})


def test_lost_frames_are_said_with_the_restarts_that_lost_them():
    line = format_summary({"frames": 10, "lost": 4, "restarts": {"detect": 1},
                           "per_source": {"cam": {"lost": 4}}})
    assert "restarts: detect x1 (4 frames lost)" in line
    assert "lost," not in line
