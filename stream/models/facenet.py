"""FaceNet import: an InceptionResnetV1 checkpoint in the facenet-pytorch layout -> ONNX + manifest.

The published checkpoints (VGGFace2, CASIA-WebFace; 160x160 RGB in, 512-D L2-normalised out) are
plain state dicts. PyTorch is needed only here, to read the checkpoint and export the graph
(``pip install 'facestream[export]'``); the imported model then runs in ONNX Runtime or TensorRT
like any other. Checkpoints are read with ``torch.load(weights_only=True)``: tensors only, never
arbitrary pickled objects.

The architecture is written out here (rather than depending on the facenet-pytorch package,
whose pinned torch range no longer installs) with module names that match its state-dict keys.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from stream.errors import EngineUnavailable, ModelError
from stream.models.manifest import AlignmentTemplate, InputSpec, ModelManifest, sha256_file
from stream.models.store import InstalledModel, ModelStore
from stream.models.torch_export import export_onnx

log = logging.getLogger(__name__)

INPUT_SIZE = 160
EMBEDDING_SIZE = 512
# InsightFace's 5-point template for 112x112 crops, scaled to 160x160. facenet-pytorch itself
# feeds MTCNN box crops (no landmark alignment); a fixed template is what our aligner needs and
# keeps the face where the network saw it in training, centred with a margin.
_ARCFACE_112 = {
    "left_eye": (38.2946, 51.6963),
    "right_eye": (73.5318, 51.5014),
    "nose": (56.0252, 71.7366),
    "mouth_left": (41.5493, 92.3655),
    "mouth_right": (70.7299, 92.2041),
}
FACENET_TEMPLATE = {k: (x * INPUT_SIZE / 112, y * INPUT_SIZE / 112) for k, (x, y) in _ARCFACE_112.items()}
# Typical L2 distance between normalised FaceNet embeddings at the equal-error point on LFW-like
# data; uncalibrated for any particular deployment: tune model.threshold on your own cameras.
FACENET_THRESHOLD = 1.1
PARITY_ATOL = 1e-4


def _torch():
    try:
        import torch
    except ImportError:
        raise EngineUnavailable(
            "PyTorch is needed to import a FaceNet checkpoint: pip install 'facestream[export]'") from None
    return torch


def build_inception_resnet_v1() -> Any:
    """An InceptionResnetV1 (eval mode) whose parameter names match facenet-pytorch's checkpoints."""
    torch = _torch()
    nn = torch.nn
    functional = torch.nn.functional

    class BasicConv2d(nn.Module):
        def __init__(self, cin: int, cout: int, kernel, stride: int, padding=0) -> None:
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, kernel_size=kernel, stride=stride, padding=padding, bias=False)
            self.bn = nn.BatchNorm2d(cout, eps=0.001, momentum=0.1, affine=True)
            self.relu = nn.ReLU(inplace=False)

        def forward(self, x):
            return self.relu(self.bn(self.conv(x)))

    class Residual(nn.Module):
        """Inception-ResNet block: branches, concat, 1x1 up-projection, scaled residual, ReLU."""

        def __init__(self, channels: int, branches: list, width: int, scale: float, relu: bool = True) -> None:
            super().__init__()
            self.scale = scale
            for i, branch in enumerate(branches):
                setattr(self, f"branch{i}", branch)
            self.n = len(branches)
            self.conv2d = nn.Conv2d(width, channels, kernel_size=1, stride=1)
            self.use_relu = relu
            if relu:
                self.relu = nn.ReLU(inplace=False)

        def forward(self, x):
            out = torch.cat([getattr(self, f"branch{i}")(x) for i in range(self.n)], 1)
            out = self.conv2d(out) * self.scale + x
            return self.relu(out) if self.use_relu else out

    def block35(scale: float) -> nn.Module:
        return Residual(256, [
            BasicConv2d(256, 32, 1, 1),
            nn.Sequential(BasicConv2d(256, 32, 1, 1), BasicConv2d(32, 32, 3, 1, padding=1)),
            nn.Sequential(BasicConv2d(256, 32, 1, 1), BasicConv2d(32, 32, 3, 1, padding=1),
                          BasicConv2d(32, 32, 3, 1, padding=1)),
        ], 96, scale)

    def block17(scale: float) -> nn.Module:
        return Residual(896, [
            BasicConv2d(896, 128, 1, 1),
            nn.Sequential(BasicConv2d(896, 128, 1, 1), BasicConv2d(128, 128, (1, 7), 1, padding=(0, 3)),
                          BasicConv2d(128, 128, (7, 1), 1, padding=(3, 0))),
        ], 256, scale)

    def block8(scale: float, relu: bool = True) -> nn.Module:
        return Residual(1792, [
            BasicConv2d(1792, 192, 1, 1),
            nn.Sequential(BasicConv2d(1792, 192, 1, 1), BasicConv2d(192, 192, (1, 3), 1, padding=(0, 1)),
                          BasicConv2d(192, 192, (3, 1), 1, padding=(1, 0))),
        ], 384, scale, relu)

    class Concat(nn.Module):
        def __init__(self, branches: list) -> None:
            super().__init__()
            for i, branch in enumerate(branches):
                setattr(self, f"branch{i}", branch)
            self.n = len(branches)

        def forward(self, x):
            return torch.cat([getattr(self, f"branch{i}")(x) for i in range(self.n)], 1)

    class InceptionResnetV1(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv2d_1a = BasicConv2d(3, 32, 3, 2)
            self.conv2d_2a = BasicConv2d(32, 32, 3, 1)
            self.conv2d_2b = BasicConv2d(32, 64, 3, 1, padding=1)
            self.maxpool_3a = nn.MaxPool2d(3, stride=2)
            self.conv2d_3b = BasicConv2d(64, 80, 1, 1)
            self.conv2d_4a = BasicConv2d(80, 192, 3, 1)
            self.conv2d_4b = BasicConv2d(192, 256, 3, 2)
            self.repeat_1 = nn.Sequential(*[block35(0.17) for _ in range(5)])
            self.mixed_6a = Concat([
                BasicConv2d(256, 384, 3, 2),
                nn.Sequential(BasicConv2d(256, 192, 1, 1), BasicConv2d(192, 192, 3, 1, padding=1),
                              BasicConv2d(192, 256, 3, 2)),
                nn.MaxPool2d(3, stride=2),
            ])
            self.repeat_2 = nn.Sequential(*[block17(0.10) for _ in range(10)])
            self.mixed_7a = Concat([
                nn.Sequential(BasicConv2d(896, 256, 1, 1), BasicConv2d(256, 384, 3, 2)),
                nn.Sequential(BasicConv2d(896, 256, 1, 1), BasicConv2d(256, 256, 3, 2)),
                nn.Sequential(BasicConv2d(896, 256, 1, 1), BasicConv2d(256, 256, 3, 1, padding=1),
                              BasicConv2d(256, 256, 3, 2)),
                nn.MaxPool2d(3, stride=2),
            ])
            self.repeat_3 = nn.Sequential(*[block8(0.20) for _ in range(5)])
            self.block8 = block8(1.0, relu=False)
            self.avgpool_1a = nn.AdaptiveAvgPool2d(1)
            self.dropout = nn.Dropout(0.6)
            self.last_linear = nn.Linear(1792, 512, bias=False)
            self.last_bn = nn.BatchNorm1d(512, eps=0.001, momentum=0.1, affine=True)

        def forward(self, x):
            for name in ("conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a",
                         "conv2d_4b", "repeat_1", "mixed_6a", "repeat_2", "mixed_7a", "repeat_3", "block8",
                         "avgpool_1a", "dropout"):
                x = getattr(self, name)(x)
            x = self.last_bn(self.last_linear(torch.flatten(x, 1)))
            return functional.normalize(x, p=2, dim=1)

    return InceptionResnetV1().eval()


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The state dict of a checkpoint (plain, or under "state_dict"), loaded tensors-only."""
    torch = _torch()
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: not found" if not path.exists() else f"{path}: not a file")
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, zipfile errors...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: not a weights-only PyTorch checkpoint ({first[:160]})") from None
    if isinstance(data, dict) and "state_dict" in data and isinstance(data["state_dict"], dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ModelError(f"{path}: not a state dict of tensors")
    return data


def load_into_model(state: dict[str, Any], path: Path) -> Any:
    model = build_inception_resnet_v1()
    expected = set(model.state_dict())
    given = {k for k in state if not k.startswith("logits.")}  # the training classifier head
    missing = [k for k in model.state_dict() if k not in given]  # in network order: first layer first
    unexpected = sorted(given - expected)
    if missing or unexpected:
        raise ModelError(f"{path}: not an InceptionResnetV1 (facenet-pytorch) checkpoint: missing "
                         f"{missing[:3]}{'...' if len(missing) > 3 else ''}, unexpected "
                         f"{unexpected[:3]}{'...' if len(unexpected) > 3 else ''}")
    wrong = [k for k in given if tuple(state[k].shape) != tuple(model.state_dict()[k].shape)]
    if wrong:
        raise ModelError(f"{path}: tensor {wrong[0]} has shape {tuple(state[wrong[0]].shape)}, expected "
                         f"{tuple(model.state_dict()[wrong[0]].shape)}")
    model.load_state_dict({k: state[k] for k in given})
    return model.eval()


def check_parity(model: Any, onnx_path: Path, batch: int = 3) -> float:
    """Max abs difference between torch and ONNX Runtime on random input; raises when off."""
    import onnxruntime as ort

    torch = _torch()
    x = np.random.default_rng(0).normal(size=(batch, 3, INPUT_SIZE, INPUT_SIZE)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (out,) = session.run(["embedding"], {"input": x})
    diff = float(np.abs(out - ref).max())
    if diff > PARITY_ATOL:
        raise ModelError(f"{onnx_path}: exported model differs from PyTorch by {diff:.2e} (> {PARITY_ATOL})")
    return diff


def manifest_for(name: str, checkpoint: Path, onnx_path: Path) -> ModelManifest:
    return ModelManifest(
        name=name,
        description="FaceNet InceptionResnetV1 (facenet-pytorch layout), 512-D L2-normalised",
        source=str(checkpoint),
        source_sha256=sha256_file(checkpoint),
        sha256=sha256_file(onnx_path),
        input=InputSpec(name="input", width=INPUT_SIZE, height=INPUT_SIZE, channel_order="RGB",
                        mean=(127.5, 127.5, 127.5), std=(128.0, 128.0, 128.0)),
        output_name="embedding",
        embedding_size=EMBEDDING_SIZE,
        output_normalized=True,
        metric="euclidean",
        threshold=FACENET_THRESHOLD,
        alignment=AlignmentTemplate(width=INPUT_SIZE, height=INPUT_SIZE, points=FACENET_TEMPLATE),
        precision="fp32",
        max_batch_hint=64,
    )


def import_facenet(checkpoint: Path, name: str = "facenet-vggface2", store: ModelStore | None = None,
                   *, force: bool = False) -> InstalledModel:
    """Convert a checkpoint to ONNX, check it against PyTorch, and install it with its manifest."""
    store = store or ModelStore()
    checkpoint = Path(checkpoint)
    if not force and name in store.installed_names():
        raise ModelError(f"{name}: already installed (use --force to replace it, or --name)")
    model = load_into_model(load_checkpoint(checkpoint), checkpoint)
    with tempfile.TemporaryDirectory(prefix="facenet-") as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        export_onnx(model, INPUT_SIZE, onnx_path)
        diff = check_parity(model, onnx_path)
        log.info("exported %s: ONNX vs PyTorch max abs diff %.2e", checkpoint, diff)
        return store.install(manifest_for(name, checkpoint, onnx_path), onnx_path)
