from __future__ import annotations

import json

import numpy as np

from tests.conftest import media_path


def test_models_list_json_marks_the_default(cli):
    proc = cli("models", "list", "--json", check=True)
    rows = json.loads(proc.stdout)
    default = [r for r in rows if r["default"]]
    assert [r["name"] for r in default] == ["dlib-resnet-v1"]
    assert default[0]["installed"] and default[0]["embedding_size"] == 128


def test_embed_json_one_object_per_image(cli):
    proc = cli("embed", "--json", media_path("two_people.jpg"), media_path("obama.jpg"), check=True)
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [len(r["faces"]) for r in records] == [2, 1]
    face = records[1]["faces"][0]
    assert set(face) == {"bbox", "score", "embedding"}
    assert len(face["embedding"]) == 128 and 0.5 < face["score"] <= 1
    x1, y1, x2, y2 = face["bbox"]
    assert x2 > x1 and y2 > y1


def test_embed_same_person_across_commands_is_consistent(cli):
    a = json.loads(cli("embed", "--json", media_path("obama.jpg"), check=True).stdout)
    b = json.loads(cli("embed", "--json", media_path("obama.jpg"), check=True).stdout)
    np.testing.assert_allclose(a["faces"][0]["embedding"], b["faces"][0]["embedding"], atol=1e-5)
