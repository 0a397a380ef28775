"""LFW pairs.txt parsing and generated pairs: balanced per fold, distinct, seeded."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from stream.errors import FacestreamError
from stream.evaluate.pairs import generate_pairs, parse_lfw_pairs, scan_identities

PAIRS_TXT = """2\t2
Abel_Pacheco\t1\t4
Akhmed_Zakayev\t1\t3
Abdel_Madi_Shabneh\t1\tDean_Barker\t1
Abdel_Madi_Shabneh\t1\tGiancarlo_Fisichella\t1
Zico\t1\t3
Zoe_Ball\t1\t2
Abdullah\t3\tZinedine_Zidane\t10
Zach_Parise\t1\tZico\t2
"""


def test_lfw_pairs_txt(tmp_path: Path) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text(PAIRS_TXT)
    pairs = parse_lfw_pairs(path, tmp_path / "lfw")
    assert len(pairs) == 8
    assert [p.same for p in pairs] == [True, True, False, False] * 2
    assert [p.fold for p in pairs] == [0] * 4 + [1] * 4
    assert pairs[0].a == tmp_path / "lfw" / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg"
    assert pairs[0].b == tmp_path / "lfw" / "Abel_Pacheco" / "Abel_Pacheco_0004.jpg"
    assert pairs[6].b == tmp_path / "lfw" / "Zinedine_Zidane" / "Zinedine_Zidane_0010.jpg"


def test_single_set_header(tmp_path: Path) -> None:
    path = tmp_path / "pairsDevTest.txt"
    path.write_text("1\nZico\t1\t3\nZach_Parise\t1\tZico\t2\n")
    assert [(p.same, p.fold) for p in parse_lfw_pairs(path, tmp_path)] == [(True, 0), (False, 0)]


@pytest.mark.parametrize("text, needle", [
    ("", "empty"),
    ("ten 300\n", "line 1"),
    ("1 1\nZico 1 3\n", "1 pair lines; line 1 promises 1 x 2 x 1 = 2"),
    ("1 1\nZico 1 3 4 5\nA 1 B 2\n", "line 2: expected 'name n1 n2'"),
    ("1 1\nZico 1 3\nA 1 B\n", "line 3: expected 'name1 n1 name2 n2'"),
    ("1 1\nZico one 3\nA 1 B 2\n", "line 2: image number 'one'"),
])
def test_bad_pairs_txt_names_the_line(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    with pytest.raises(FacestreamError, match=None) as info:
        parse_lfw_pairs(path, tmp_path)
    assert str(path) in str(info.value) and needle in str(info.value)


def _dataset(root: Path, sizes: dict[str, int]) -> dict[str, list[Path]]:
    for name, n in sizes.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            (root / name / f"{i}.jpg").write_bytes(b"")
    (root / "readme.txt").write_text("not a person")
    (root / "empty").mkdir()
    return scan_identities(root)


def test_generated_pairs_are_balanced_distinct_and_seeded(tmp_path: Path) -> None:
    people = _dataset(tmp_path, {"a": 6, "b": 5, "c": 4, "d": 1, "e": 3})
    assert sorted(people) == ["a", "b", "c", "d", "e"]  # the empty folder and the file are not people
    pairs = generate_pairs(people, pairs_per_fold=3, seed=7)
    per_fold = Counter((p.fold, p.same) for p in pairs)
    assert per_fold == {(k, s): 3 for k in range(10) for s in (True, False)}
    for p in pairs:
        assert (p.a.parent.name == p.b.parent.name) == p.same and p.a != p.b
    keys = [frozenset((p.a, p.b)) for p in pairs]
    assert len(set(keys)) == len(keys)
    assert generate_pairs(people, pairs_per_fold=3, seed=7) == pairs
    assert generate_pairs(people, pairs_per_fold=3, seed=8) != pairs


def test_small_dataset_gets_fewer_pairs_per_fold(tmp_path: Path) -> None:
    people = _dataset(tmp_path, {"a": 5, "b": 2, "c": 2})  # 10 + 1 + 1 = 12 matched pairs possible
    pairs = generate_pairs(people, pairs_per_fold=300, seed=0)
    assert Counter(p.same for p in pairs) == {True: 10, False: 10}


def test_too_few_pairs_is_an_error(tmp_path: Path) -> None:
    people = _dataset(tmp_path, {"a": 3, "b": 2})  # 4 matched pairs
    with pytest.raises(FacestreamError, match="need at least 10"):
        generate_pairs(people)


def test_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(FacestreamError, match="no per-identity sub-folders"):
        scan_identities(tmp_path)
    with pytest.raises(FacestreamError, match="not found"):
        scan_identities(tmp_path / "nope")


def test_large_dataset_samples_mismatched_pairs(tmp_path: Path) -> None:
    # 700 images: 241,500 mismatched pairs possible, past the enumeration limit: sampled, still distinct.
    people = _dataset(tmp_path, {f"p{i:02d}": 10 for i in range(70)})
    pairs = generate_pairs(people, pairs_per_fold=50, seed=3)
    diff = [frozenset((p.a, p.b)) for p in pairs if not p.same]
    assert len(diff) == 500 and len(set(diff)) == 500
    assert all(p.a.parent != p.b.parent for p in pairs if not p.same)
    assert generate_pairs(people, pairs_per_fold=50, seed=3) == pairs
