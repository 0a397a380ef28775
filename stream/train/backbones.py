"""The networks `facestream train` can train, with what the manifest needs to know about each.

- ``mobilefacenet``: MobileFaceNet (Chen et al. 2018, "MobileFaceNets: Efficient CNNs for accurate
  real-time face verification on mobile devices"): inverted-residual bottlenecks with PReLU, a
  global depthwise conv (GDConv) instead of average pooling, a linear 1x1 to 128-D. ~1 M
  parameters, 112x112 RGB in; trained from scratch. The output is L2-normalized.
- ``facenet``: the InceptionResnetV1 of ``stream.models.facenet`` (512-D, 160x160), optionally
  started from a facenet-pytorch checkpoint (the same file `models import-facenet` takes), to
  fine-tune.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream.models.facenet import FACENET_TEMPLATE
from stream.models.facenet import INPUT_SIZE as FACENET_SIZE
from stream.train.deps import require_torch

log = logging.getLogger(__name__)

BACKBONES = ("mobilefacenet", "facenet")
MOBILEFACENET_SIZE = 112
MOBILEFACENET_DIM = 128


@dataclass(frozen=True)
class BackboneSpec:
    """Input and output facts of a backbone, for the data pipeline and the manifest."""

    name: str
    size: int  # square input, pixels
    embedding_size: int
    template: dict[str, tuple[float, float]]  # landmark positions in a size x size crop
    mean: float = 127.5  # both networks take RGB (x - 127.5) / 128, as facenet-pytorch does
    std: float = 128.0


def spec_for(name: str) -> BackboneSpec:
    if name == "mobilefacenet":
        # The same 5-point template as FaceNet's (InsightFace's 112x112 one), at 112 px.
        scale = MOBILEFACENET_SIZE / FACENET_SIZE
        template = {k: (x * scale, y * scale) for k, (x, y) in FACENET_TEMPLATE.items()}
        return BackboneSpec(name, MOBILEFACENET_SIZE, MOBILEFACENET_DIM, template)
    if name == "facenet":
        return BackboneSpec(name, FACENET_SIZE, 512, dict(FACENET_TEMPLATE))
    raise ValueError(f"unknown backbone {name!r}")


def build(name: str, weights: Path | None = None) -> Any:
    """A fresh torch module (train mode) for ``name``; ``weights`` only for ``facenet``."""
    if name == "mobilefacenet":
        if weights is not None:
            raise ValueError("--weights is for --backbone facenet (MobileFaceNet trains from scratch)")
        return build_mobilefacenet().train()
    if name == "facenet":
        from stream.models.facenet import build_inception_resnet_v1, load_checkpoint, load_into_model

        if weights is None:
            log.warning("facenet backbone without --weights: training InceptionResnetV1 from random weights")
            return build_inception_resnet_v1().train()
        return load_into_model(load_checkpoint(weights), weights).train()
    raise ValueError(f"unknown backbone {name!r}")


# (expansion t, output channels c, repeats n, first stride s), the paper's Table 1.
_MOBILEFACENET_BLOCKS = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))


def build_mobilefacenet(size: int = MOBILEFACENET_SIZE, embedding_size: int = MOBILEFACENET_DIM) -> Any:
    torch = require_torch()
    nn = torch.nn

    def conv_bn(cin: int, cout: int, k: int, s: int, groups: int = 1, act: bool = True) -> nn.Sequential:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, s, k // 2 if k > 1 else 0, groups=groups, bias=False),
                                   nn.BatchNorm2d(cout)]
        if act:
            layers.append(nn.PReLU(cout))
        return nn.Sequential(*layers)

    class Bottleneck(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int, t: int) -> None:
            super().__init__()
            hidden = cin * t
            self.residual = stride == 1 and cin == cout
            self.body = nn.Sequential(conv_bn(cin, hidden, 1, 1), conv_bn(hidden, hidden, 3, stride, groups=hidden),
                                      conv_bn(hidden, cout, 1, 1, act=False))

        def forward(self, x):
            return x + self.body(x) if self.residual else self.body(x)

    class MobileFaceNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = [conv_bn(3, 64, 3, 2), conv_bn(64, 64, 3, 1, groups=64)]
            cin = 64
            for t, c, n, s in _MOBILEFACENET_BLOCKS:
                for i in range(n):
                    layers.append(Bottleneck(cin, c, s if i == 0 else 1, t))
                    cin = c
            layers.append(conv_bn(cin, 512, 1, 1))
            self.features = nn.Sequential(*layers)
            final = size // 16  # four stride-2 stages: 112 -> 7
            # GDConv: a depthwise conv over the whole final map, so each spatial position has its
            # own weight (the paper's point: a face's centre matters more than its corners).
            self.gdconv = conv_bn(512, 512, final, 1, groups=512, act=False)
            self.gdconv[0].padding = (0, 0)
            self.linear = nn.Conv2d(512, embedding_size, 1, bias=False)
            self.bn = nn.BatchNorm1d(embedding_size)

        def forward(self, x):
            x = self.linear(self.gdconv(self.features(x)))
            x = self.bn(torch.flatten(x, 1))
            return torch.nn.functional.normalize(x, p=2, dim=1)

    return MobileFaceNet()
