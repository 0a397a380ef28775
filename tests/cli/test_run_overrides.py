"""`run`'s flags over the config file, one table: each flag sets its field, an absent flag leaves the file's.
(--publish-key and --publish-clients need real key files: tests/events/test_curve.py runs them.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.cli import build_parser
from stream.cli.run_cmd import apply_overrides
from stream.config.schema import AppConfig, load_config
from stream.errors import FacestreamError


def _config(*argv: str) -> AppConfig:
    return apply_overrides(load_config(None), build_parser().parse_args(["run", *argv]))


def test_no_flag_changes_nothing():
    assert _config() == load_config(None)


@pytest.mark.parametrize(("argv", "path", "value"), [
    (["--gallery", "g.npz"], "gallery", Path("g.npz")),
    (["--model", "m"], "model.name", "m"),
    (["--engine", "onnxruntime"], "engine.kind", "onnxruntime"),
    (["--publish", "tcp://127.0.0.1:5"], "output.publish", "tcp://127.0.0.1:5"),
    (["--events-out", "e.jsonl"], "output.events_out", Path("e.jsonl")),
    (["--mqtt", "mqtt://127.0.0.1"], "output.mqtt", "mqtt://127.0.0.1"),
    (["--tracks-out", "t.txt"], "output.tracks_out", Path("t.txt")),
    (["--save-unknowns", "u"], "output.save_unknowns", Path("u")),
    (["--http", "8080"], "web.http", "8080"),
    (["--realtime"], "sources.realtime", True),
    (["--metrics-port", "9100"], "output.metrics_port", 9100),
    (["--max-batch", "3"], "batching.max_batch", 3),
])
def test_each_flag_sets_its_field(argv, path, value):
    node = _config(*argv)
    for key in path.split("."):
        node = getattr(node, key)
    assert node == value


def test_a_zero_is_given_and_checked_not_skipped():
    with pytest.raises(FacestreamError, match=r"output\.metrics_port"):
        _config("--metrics-port", "0")
