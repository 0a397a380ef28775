"""The networks `facestream train` can train, with what the manifest needs to know about each.

- ``mobilefacenet``: MobileFaceNet (Chen et al. 2018, "MobileFaceNets: Efficient CNNs for accurate
  real-time face verification on mobile devices"): inverted-residual bottlenecks with PReLU, a
  global depthwise conv (GDConv) instead of average pooling, a linear 1x1 to 128-D. ~1 M
  parameters, 112x112 RGB in; trained from scratch. The output is L2-normalized.
- ``facenet``: the InceptionResnetV1 of ``stream.models.facenet`` (512-D, 160x160), optionally
  started from a facenet-pytorch checkpoint (the same file `models import-facenet` takes), to
  fine-tune.
- ``onnx:<model-name>``: an installed model of the store (e.g. ``onnx:dlib-resnet-v1``, the default
  model, or ``onnx:facenet-casia``, FaceNet's CASIA-WebFace weights; ``facenet-casia`` alone is an
  alias), its ONNX graph turned into a trainable torch module, to fine-tune the production model itself.
  ``stream.train.onnx_module`` runs the graphs of both built-in models with plain torch ops (no extra
  package); other graphs go to ``onnx2torch``, which needs a torchvision matching torch. Its manifest
  gives the input size, normalisation and alignment template. The conversion is checked against ONNX
  Runtime on real crops before training (``check_conversion``). The module is wrapped to L2-normalise
  its output: the triplet loss's margin is only meaningful on the unit sphere, and exporting the
  normalised output keeps what is trained and what is matched the same space (the new manifest says
  ``output_normalized`` and its threshold is re-measured on the held-out pairs, since e.g. dlib's raw
  0.6 no longer applies).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stream.errors import FacestreamError, ModelError
from stream.models.facenet import FACENET_TEMPLATE
from stream.models.facenet import INPUT_SIZE as FACENET_SIZE
from stream.models.manifest import ModelManifest
from stream.models.store import ModelStore
from stream.train.deps import require_torch

log = logging.getLogger(__name__)

BACKBONES = ("mobilefacenet", "facenet")
ONNX_PREFIX = "onnx:"  # --backbone onnx:<installed model name>
# Built-in models one can name without the prefix: FaceNet's own weights, the start the paper's
# fine-tuning assumes (``facenet`` alone is the architecture, from a facenet-pytorch checkpoint).
ONNX_ALIASES = {"facenet-casia": "onnx:facenet-casia"}
CONVERSION_ATOL = 1e-4  # converted torch module vs ONNX Runtime, max abs difference
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
    # Set for ``onnx:<name>``: the installed model's manifest, whose input spec (per-channel
    # mean/std, channel order) and template replace the fields above, and its ONNX file.
    base: ModelManifest | None = None
    onnx_path: Path | None = None


def is_onnx(name: str) -> bool:
    return name.startswith(ONNX_PREFIX) or name in ONNX_ALIASES


def onnx_model_name(name: str) -> str:
    """The store's model name behind ``onnx:<name>`` or an alias."""
    return ONNX_ALIASES.get(name, name)[len(ONNX_PREFIX):]


def spec_for(name: str, store: ModelStore | None = None) -> BackboneSpec:
    if is_onnx(name):
        model_name = onnx_model_name(name)
        store = store or ModelStore()
        if model_name not in store.available_names():
            raise FacestreamError(f"--backbone {name}: no model {model_name!r} (installed or built-in: "
                                  f"{', '.join(store.available_names())})")
        installed = store.get(model_name)  # builds a built-in model (dlib-resnet-v1) on first use
        m = installed.manifest
        if m.input.width != m.input.height:
            raise FacestreamError(f"--backbone {name}: input {m.input.width}x{m.input.height}; training needs square")
        return BackboneSpec(name, m.input.width, m.embedding_size, dict(m.alignment.points),
                            base=m, onnx_path=installed.onnx_path)
    if name == "mobilefacenet":
        # The same 5-point template as FaceNet's (InsightFace's 112x112 one), at 112 px.
        scale = MOBILEFACENET_SIZE / FACENET_SIZE
        template = {k: (x * scale, y * scale) for k, (x, y) in FACENET_TEMPLATE.items()}
        return BackboneSpec(name, MOBILEFACENET_SIZE, MOBILEFACENET_DIM, template)
    if name == "facenet":
        return BackboneSpec(name, FACENET_SIZE, 512, dict(FACENET_TEMPLATE))
    raise ValueError(f"unknown backbone {name!r}")


def build(name: str, weights: Path | None = None, spec: BackboneSpec | None = None) -> Any:
    """A fresh torch module (train mode) for ``name``; ``weights`` only for ``facenet``; ``spec``
    (from ``spec_for``) for ``onnx:<model>``."""
    if is_onnx(name):
        if weights is not None:
            raise ValueError("--weights is not for --backbone onnx:<model> (the weights are the model's)")
        if spec is None or spec.onnx_path is None:
            raise ValueError(f"{name}: build needs the spec_for() of it")
        return normalized_output(convert_onnx(spec.onnx_path)).train()
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


def convert_onnx(onnx_path: Path) -> Any:
    """The ONNX graph as a torch module whose float tensors are trainable parameters: by
    ``onnx_module`` when it knows every op of the graph (the built-in models), else by onnx2torch."""
    torch = require_torch()
    from stream.train import onnx_module

    try:
        return onnx_module.load(onnx_path).to(torch.float32)
    except ModelError as exc:
        log.info("%s; trying onnx2torch", exc)
    try:
        from onnx2torch import convert
    except ImportError as exc:
        raise ModelError(f"{onnx_path}: has ops only onnx2torch converts, which needs "
                         f"pip install 'facestream[finetune]' and a torchvision matching torch: {exc}") from None
    try:
        module = convert(str(onnx_path))
    except NotImplementedError as exc:  # onnx2torch's way to say an op (or an op's attribute) has no converter
        raise ModelError(f"{onnx_path}: onnx2torch cannot convert this graph: {exc}") from None
    for p in module.parameters():
        p.requires_grad_(True)
    return module.to(torch.float32)


def normalized_output(inner: Any) -> Any:
    """``inner`` with its output L2-normalised (see the module docstring for why)."""
    torch = require_torch()

    class NormalizedEmbedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return torch.nn.functional.normalize(self.inner(x), p=2, dim=1)

    return NormalizedEmbedding()


def check_conversion(module: Any, onnx_path: Path, inputs: np.ndarray, atol: float = CONVERSION_ATOL) -> float:
    """Max abs difference between the converted ``module`` (raw output, eval mode) and ONNX Runtime on
    ``inputs`` (NCHW float32, preprocessed as the manifest says); raises ``ModelError`` above ``atol``,
    so a silently wrong conversion never gets trained and installed."""
    import onnxruntime as ort

    torch = require_torch()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    (expected,) = session.run(None, {name: inputs})
    was_training = module.training
    module.eval()
    with torch.no_grad():
        got = module(torch.from_numpy(inputs)).numpy()
    module.train(was_training)
    diff = float(np.abs(got - expected).max())
    if not diff <= atol:
        raise ModelError(f"{onnx_path}: the torch conversion differs from ONNX Runtime by {diff:.2e} (> {atol})")
    return diff
