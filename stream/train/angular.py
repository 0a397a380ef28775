"""Angular-margin objectives (``--loss angular`` and ``--loss sphereface``), to compare against the triplet loss.

Two members of the SphereFace family, both with normalised class weights and no bias:

- ``angular``: the additive *cosine* margin (CosFace / AM-Softmax): ``s * (cos(theta_y) - m)`` for
  the true class, ``s * cos(theta_j)`` for the others, features normalised (scale ``s``).
- ``sphereface``: SphereFace's A-Softmax, the multiplicative *angular* margin ``cos(m * theta)``
  (integer ``m``, 4 in the paper). ``cos(m * theta)`` alone is not monotonic on [0, pi], so the
  true class gets the piecewise ``psi(theta) = (-1)^k cos(m * theta) - 2k`` for ``theta`` in
  ``[k pi / m, (k + 1) pi / m]``, which falls from 1 to ``-(2m - 1)`` continuously. The feature norm
  is kept (logits ``|x| cos(theta_j)``, ``|x| psi(theta_y)``), as in the paper. The margin is too
  hard to learn from the start, so the true class's logit is annealed from the plain softmax one:
  ``|x| (lambda cos(theta_y) + psi(theta_y)) / (1 + lambda)`` with
  ``lambda = max(lambda_min, base * (1 + gamma * iteration) ** -power)``; the paper's code (its
  ``MarginInnerProduct`` layer) uses base 1000, gamma 0.12, power 1, lambda_min 5.
  ``cos(m * theta)`` is computed as the Chebyshev polynomial ``T_m(cos theta)`` and ``k`` without
  gradient, so no ``acos`` derivative (infinite at cos = +-1) enters the backward pass.

The class-weight heads exist only in training; the exported model is the backbone alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from stream.train.deps import require_torch

SPHEREFACE_MARGINS = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class Annealing:
    """SphereFace's softmax-to-margin blend: ``lambda(iteration)``; the defaults are the paper's code's."""

    base: float = 1000.0
    gamma: float = 0.12
    power: float = 1.0
    lambda_min: float = 5.0

    def __call__(self, iteration: int) -> float:
        return max(self.lambda_min, self.base * (1.0 + self.gamma * iteration) ** -self.power)


def chebyshev(cos: Any, m: int) -> Any:
    """``cos(m * theta)`` from ``cos(theta)``: ``T_m``, by ``T_{n+1} = 2c T_n - T_{n-1}``."""
    previous, current = cos.new_ones(cos.shape), cos
    if m == 0:
        return previous
    for _ in range(m - 1):
        previous, current = current, 2 * cos * current - previous
    return current


def psi(cos: Any, m: int) -> Any:
    """SphereFace's monotonic ``psi(theta) = (-1)^k cos(m theta) - 2k`` of ``cos(theta)`` (a tensor)."""
    torch = require_torch()
    cos = cos.clamp(-1.0, 1.0)
    with torch.no_grad():
        # k = floor(m theta / pi), at most m - 1 (theta = pi belongs to the last piece)
        k = torch.floor(m * torch.acos(cos) / math.pi).clamp(max=m - 1)
    sign = 1.0 - 2.0 * torch.remainder(k, 2)
    return sign * chebyshev(cos, m) - 2.0 * k


def cosine_margin_head(embedding_size: int, classes: int, scale: float = 30.0, margin: float = 0.35) -> Any:
    torch = require_torch()
    functional = torch.nn.functional

    class CosineMarginHead(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(classes, embedding_size) * 0.01)
            self.scale, self.margin = scale, margin

        def forward(self, embeddings, labels):
            """Cross-entropy on scaled cosines with the margin taken off the true class; returns
            (loss, fraction of faces whose true class does not yet win by the margin)."""
            cos = functional.normalize(embeddings, dim=1) @ functional.normalize(self.weight, dim=1).T
            onehot = functional.one_hot(labels, classes).to(cos.dtype)
            logits = self.scale * (cos - self.margin * onehot)
            active = (logits.argmax(1) != labels).float().mean()
            return functional.cross_entropy(logits, labels), float(active)

    return CosineMarginHead()


def sphereface_head(embedding_size: int, classes: int, margin: int = 4, annealing: Annealing | None = None) -> Any:
    """A-Softmax over ``classes``; its iteration count (for ``lambda``) is a buffer, so a checkpoint
    resumes the schedule where it was. ``head.logits(x, labels, lam)`` gives the annealed logits."""
    torch = require_torch()
    functional = torch.nn.functional
    if margin not in SPHEREFACE_MARGINS:
        raise ValueError(f"SphereFace margin {margin}: an integer in {SPHEREFACE_MARGINS[0]}..{SPHEREFACE_MARGINS[-1]}")
    schedule = annealing or Annealing()

    class SphereFaceHead(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(classes, embedding_size) * 0.01)
            self.margin, self.annealing = margin, schedule
            self.register_buffer("iteration", torch.zeros((), dtype=torch.long))

        def logits(self, embeddings, labels, lam: float):
            """``|x| cos(theta_j)`` for every class, the true class's blended with ``|x| psi(theta_y)``."""
            norm = embeddings.norm(dim=1, keepdim=True).clamp_min(1e-12)
            cos = (embeddings / norm) @ functional.normalize(self.weight, dim=1).T
            true_cos = cos.gather(1, labels[:, None])
            blended = (lam * true_cos + psi(true_cos, self.margin)) / (1.0 + lam)
            return norm * cos.scatter(1, labels[:, None], blended)

        def forward(self, embeddings, labels):
            """Cross-entropy on the annealed A-Softmax logits (one iteration of the schedule per call
            in training mode); returns (loss, fraction of faces whose true class does not yet win)."""
            lam = self.annealing(int(self.iteration))
            if self.training:
                self.iteration += 1
            logits = self.logits(embeddings, labels, lam)
            active = (logits.argmax(1) != labels).float().mean()
            return functional.cross_entropy(logits, labels), float(active)

    return SphereFaceHead()
