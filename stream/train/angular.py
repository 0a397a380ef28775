"""The angular-margin objective (``--loss angular``), to compare against the triplet loss.

Of the SphereFace family we use the simplest stable member, the additive *cosine* margin
(CosFace / AM-Softmax: ``s * (cos(theta_y) - m)`` for the true class, ``s * cos(theta_j)`` for the
others), not SphereFace's multiplicative A-Softmax ``cos(m * theta)``, which needs a piecewise
``psi`` and an annealed softmax blend to train at all. The class-weight head exists only in
training; the exported model is the backbone alone.
"""

from __future__ import annotations

from typing import Any

from stream.train.deps import require_torch


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
