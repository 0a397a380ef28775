"""Per-track identity voting.

Each embedding of a track is one observation: the nearest enrolled name and its distance. A
match (distance <= threshold) votes for that name, anything else votes "unknown". A vote weighs
more when the match is close and the face is large; observations near the threshold count little
either way, since they are the ones a model gets wrong. Evidence decays slowly, so a track reflects
who it is now, not who it was a minute ago. A name is decided once it has ``min_votes`` votes and
leads the runner-up (unknown included) by ``margin`` of the total weight; a decided name yields
only to a challenger (or to unknown) whose weight exceeds it by ``switch_ratio``.

``min_votes`` and ``decay`` count observations of a track embedded every frame of the source's own
rate. A source processed at a lower rate (``sources.fps``) sees a face one frame in ``frame_step``:
each observation then stands for the ``frame_step`` frames around it (at 30 fps they would have
said nearly the same), so ``VotingConfig.at_frame_step`` converts both and a name is decided, and
forgotten, in the same time. Weights need no scaling: every decision compares them relatively.
"""

from __future__ import annotations

from collections import defaultdict

from pydantic import BaseModel, ConfigDict, Field

from stream.track.timescale import processed_frames

UNKNOWN = "__unknown__"


class VotingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, defer_build=True)

    min_votes: int = Field(default=3, ge=1, le=1000,
                           description="matching observations a name needs to be decided (of a face embedded every "
                                       "frame at the source's own rate, whatever sources.fps)")
    margin: float = Field(default=0.25, ge=0.0, le=1.0,
                          description="lead over the runner-up (unknown included), as a share of all vote weight")
    switch_ratio: float = Field(default=2.0, ge=1.0, le=100.0,
                                description="a decided name changes only when the challenger's weight is this "
                                            "many times larger: hysteresis against flicker")
    revoke_ratio: float = Field(default=8.0, ge=1.0, le=1000.0,
                                description="a decided name falls back to unknown only when unknown evidence "
                                            "outweighs it this many times: profile views and blur produce "
                                            "non-matches for a known face, so revoking needs more than switching")
    decay: float = Field(default=0.97, gt=0.0, le=1.0,
                         description="weight kept by older evidence per new observation, at the source's own "
                                     "rate (1 = never forget)")
    min_quality: float = Field(default=0.1, ge=0.0, le=1.0,
                               description="weight of a match right at the threshold (a perfect match weighs 1)")
    unknown_weight: float = Field(default=0.5, ge=0.0, le=10.0,
                                  description="weight of a clear non-match (25% past the threshold or more)")
    full_weight_px: float = Field(default=80.0, gt=0, le=4096,
                                  description="faces at least this wide (pixels) vote with full weight")
    min_size_factor: float = Field(default=0.25, ge=0.0, le=1.0, description="weight factor of the smallest faces")
    confident_share: float = Field(default=0.6, ge=0.0, le=1.0,
                                   description="a decided name with this share of the weight, or a clear stranger "
                                               "(unknown with this share after 2 x min_votes observations), is "
                                               "confident: re-embedded only every recognition.reembed_every frames")

    def at_frame_step(self, frame_step: float) -> VotingConfig:
        """These settings for a source processed one frame in ``frame_step`` (itself at 1)."""
        if frame_step <= 1.0:
            return self
        # A name never rests on one observation where the setting asks for several: at 30 fps three
        # agreeing frames filter a one-off match; one frame at 10 fps would not.
        min_votes = processed_frames(self.min_votes, frame_step, least=min(2, self.min_votes))
        return self.model_copy(update={"min_votes": min_votes, "decay": self.decay ** frame_step})


class TrackVotes:
    def __init__(self, config: VotingConfig, threshold: float) -> None:
        self.config = config
        self.threshold = threshold
        self.weights: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.best_distance: dict[str, float] = {}
        self.observations = 0
        self.decided: str | None = None
        self.by_aggregate = False  # decided by the track's mean embedding rather than by votes

    def weight(self, distance: float, face_px: float) -> tuple[str | None, float]:
        cfg = self.config
        size = min(1.0, max(cfg.min_size_factor, face_px / cfg.full_weight_px))
        ratio = distance / self.threshold
        if ratio <= 1.0:
            # quadratic: a typical same-person distance (60-80% of the threshold) still counts
            return None, (1.0 - (1.0 - cfg.min_quality) * ratio * ratio) * size
        clearness = min(1.0, max(0.2, (ratio - 1.0) / 0.25))  # barely past the threshold: weak evidence
        return UNKNOWN, cfg.unknown_weight * clearness * size

    def observe(self, name: str | None, distance: float, face_px: float) -> bool:
        """Add one observation; True when the decided identity changed."""
        kind, w = self.weight(distance, face_px)
        label = UNKNOWN if kind == UNKNOWN or name is None else name
        for key in self.weights:
            self.weights[key] *= self.config.decay
        self.weights[label] += w
        self.counts[label] += 1
        self.observations += 1
        if label != UNKNOWN:
            self.best_distance[label] = min(self.best_distance.get(label, float("inf")), float(distance))
        before = self.decided
        if not self.by_aggregate:  # a name from the mean stands or falls with the mean (adopt)
            self.decided = self._decide()
        return before != self.decided

    def adopt(self, name: str | None, distance: float) -> bool:
        """Evidence from the track's mean embedding, given after each observation.

        Names an undecided track whose mean matches ``name`` within the threshold, unless the
        votes favour another name; withdraws a name it gave once the mean no longer matches it.
        True when the decided identity changed.
        """
        matches = name is not None and distance <= self.threshold
        if self.by_aggregate:
            given, self.decided = self.decided, None
            voted = self._decide()  # the votes, had the mean said nothing
            if voted is None and matches and name == given:
                self.decided = given
                self.best_distance[name] = min(self.best_distance.get(name, float("inf")), float(distance))
                return False
            self.decided, self.by_aggregate = voted, False
            return voted != given
        if self.decided is not None or not matches or self.observations < self.config.min_votes:
            return False
        if any(k not in (UNKNOWN, name) and c >= self.config.min_votes for k, c in self.counts.items()):
            return False
        self.decided, self.by_aggregate = name, True
        self.best_distance[name] = min(self.best_distance.get(name, float("inf")), float(distance))
        return True

    def _decide(self) -> str | None:
        cfg = self.config
        total = sum(self.weights.values())
        if total <= 0:
            return self.decided
        ranked = sorted(self.weights.items(), key=lambda kv: kv[1], reverse=True)
        leader, lead_w = ranked[0]
        runner_w = ranked[1][1] if len(ranked) > 1 else 0.0
        if self.decided is None:
            if leader != UNKNOWN and self.counts[leader] >= cfg.min_votes and (lead_w - runner_w) / total >= cfg.margin:
                return leader
            return None
        incumbent_w = self.weights.get(self.decided, 0.0)
        if leader == UNKNOWN and lead_w > cfg.revoke_ratio * incumbent_w:
            return None
        if leader not in (UNKNOWN, self.decided) and lead_w > cfg.switch_ratio * incumbent_w \
                and self.counts[leader] >= cfg.min_votes:
            return leader
        return self.decided

    @property
    def share(self) -> float:
        total = sum(self.weights.values())
        return self.weights.get(self.decided, 0.0) / total if self.decided and total > 0 else 0.0

    @property
    def confident(self) -> bool:
        """Settled enough that embedding this track every frame would tell us nothing new."""
        if self.decided is not None:
            return self.share >= self.config.confident_share
        total = sum(self.weights.values())
        return (self.observations >= 2 * self.config.min_votes and total > 0
                and self.weights.get(UNKNOWN, 0.0) / total >= self.config.confident_share)

    def decision(self) -> tuple[str | None, float, float | None]:
        """(name or None, score 0..1, best distance of that name)."""
        if self.decided is None:
            return None, 0.0, None
        share = max(self.share, self.config.confident_share) if self.by_aggregate else self.share
        return self.decided, round(share, 4), round(self.best_distance.get(self.decided, float("nan")), 4)

    def summary(self) -> dict:
        def key(k: str) -> str:
            return "unknown" if k == UNKNOWN else k

        return {
            "decided": self.decided,
            "by_aggregate": self.by_aggregate,
            "score": round(self.share, 4),
            "observations": self.observations,
            "counts": {key(k): v for k, v in self.counts.items()},
            "weights": {key(k): round(v, 4) for k, v in self.weights.items()},
            "best_distance": {k: round(v, 4) for k, v in self.best_distance.items()},
        }
