from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stream.config.schema import AppConfig, load_config
from stream.errors import FacestreamError
from tests.conftest import REPO

DEFAULT = REPO / "config" / "default.yaml"


def leaf_keys(data: dict, prefix: str = "") -> set[str]:
    keys = set()
    for k, v in data.items():
        keys |= leaf_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}"}
    return keys


def test_default_yaml_is_exactly_the_defaults():
    assert load_config(DEFAULT) == AppConfig()


def test_default_yaml_documents_every_field():
    documented = leaf_keys(yaml.safe_load(DEFAULT.read_text()))
    assert documented == leaf_keys(AppConfig().model_dump(mode="json"))


def test_missing_file_means_defaults():
    assert load_config(None) == AppConfig()


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("batching:\n  max_batch: 0\n", ["line 2", "batching.max_batch", "greater than or equal to 1"]),
        ("tracker:\n  max_age: -1\n", ["line 2", "tracker.max_age"]),
        ("engine:\n  kind: cuda\n", ["line 2", "engine.kind"]),
        ("nonsense: 1\n", ["line 1", "nonsense", "unknown key"]),
        ("voting:\n  margin: 0.2\n  bogus: 3\n", ["line 3", "voting.bogus", "unknown key"]),
        ("- a\n- b\n", ["must be a mapping"]),
        ("engine:\n  min_batch: 8\n  opt_batch: 4\n", ["engine", "min_batch <= opt_batch"]),
        ("sources:\n  reconnect_initial_s: 5\n  reconnect_max_s: 1\n", ["reconnect_max_s"]),
        # no setting takes infinity, NaN or an absurd finite value (1e400 parses as inf)
        ("pipeline:\n  stall_timeout_s: 1e400\n", ["line 2", "pipeline.stall_timeout_s", "finite"]),
        ("pipeline:\n  stall_timeout_s: 1e308\n", ["line 2", "pipeline.stall_timeout_s", "less than or equal"]),
        ("pipeline:\n  restart_window_s: .inf\n", ["line 2", "pipeline.restart_window_s"]),
        ("voting:\n  decay: .nan\n", ["line 2", "voting.decay", "finite"]),
        ("detector:\n  min_confidence: .nan\n", ["line 2", "detector.min_confidence"]),
        ("model:\n  threshold: 1e999\n", ["line 2", "model.threshold"]),
    ],
)
def test_errors_are_one_line_with_file_line_and_key(tmp_path: Path, text: str, needles: list[str]):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(FacestreamError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    for needle in needles:
        assert needle in message


def test_empty_file_means_defaults(tmp_path: Path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_config(path) == AppConfig()
