from __future__ import annotations

from stream.recognize.voting import TrackVotes, VotingConfig


def votes(**kw) -> TrackVotes:
    return TrackVotes(VotingConfig(**kw), threshold=0.6)


def test_steady_evidence_decides_after_min_votes():
    v = votes(min_votes=3)
    changes = [v.observe("ann", 0.35, 100) for _ in range(5)]
    assert changes == [False, False, True, False, False]
    name, score, distance = v.decision()
    assert name == "ann" and score == 1.0 and distance == 0.35


def test_single_contrary_vote_does_not_flip():
    v = votes()
    for _ in range(6):
        v.observe("ann", 0.4, 100)
    v.observe("bob", 0.2, 100)
    assert v.decided == "ann"


def test_sustained_strong_contrary_evidence_flips():
    v = votes()
    for _ in range(5):
        v.observe("ann", 0.5, 100)
    flips = [v.observe("bob", 0.2, 100) for _ in range(30)]
    assert v.decided == "bob"
    assert sum(flips) == 1


def test_mostly_unknown_stays_unknown_and_becomes_a_confident_stranger():
    v = votes(min_votes=3)
    for i in range(12):
        v.observe("ann" if i % 4 == 0 else None, 0.55 if i % 4 == 0 else 0.9, 100)
    assert v.decided is None
    assert v.confident, "a clear stranger need not be embedded every frame"


def test_small_faces_weigh_less():
    v = votes()
    _, small = v.weight(0.3, 20)
    _, large = v.weight(0.3, 120)
    assert small < large


def test_decided_then_unknown_needs_strong_evidence():
    v = votes()
    for _ in range(5):
        v.observe("ann", 0.3, 100)
    v.observe(None, 0.9, 100)
    assert v.decided == "ann"
    for _ in range(40):
        v.observe(None, 0.95, 100)
    assert v.decided is None


def test_summary_is_json_friendly():
    v = votes()
    v.observe("ann", 0.3, 100)
    v.observe(None, 0.9, 100)
    s = v.summary()
    assert s["counts"] == {"ann": 1, "unknown": 1}
    assert s["observations"] == 2
