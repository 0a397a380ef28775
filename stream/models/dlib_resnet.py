"""dlib's face ResNet as ONNX: the built-in default model.

The weights come from the ``face-recognition-models`` pip package (dlib's
``dlib_face_recognition_resnet_model_v1.dat``, 99.38% on LFW as published by its author); we read
dlib's own format (``stream.models.dlib_format``) and write an ONNX graph with a dynamic batch
axis, so neither dlib nor a download is needed at run time.

Graph facts that matter for exactness (checked against dlib, see tests/models/test_dlib_parity.py):
- Every batch-norm was folded into an affine by dlib; we fold each affine further into the conv
  before it (scale the filter and bias per output channel): the same function, one op fewer.
- Stride-2 convs and pools have padding 0 and floor-mode output sizes.
- dlib's ``add_prev`` sums tensors of different shapes by zero-extending each at the END of every
  dimension (channels, then bottom rows and right columns). In the last two down-sampling blocks
  the main path is spatially SMALLER than the pooled shortcut (3x3 vs 4x4, 1x1 vs 2x2), so the
  output takes the shortcut's size and only the top-left part receives the main path.
- The output is dlib's raw 128-D descriptor, not L2-normalised; dlib's threshold (0.6) applies to
  the plain euclidean distance between these.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from stream.errors import ModelError
from stream.models.dlib_format import AddPrev, Affine, Conv, DlibNetwork, FullyConnected, Pool, Relu, parse_dlib_resnet
from stream.models.manifest import AlignmentTemplate, InputSpec, ModelManifest, sha256_file
from stream.models.onnx_graph import GraphBuilder

log = logging.getLogger(__name__)

MODEL_NAME = "dlib-resnet-v1"
PACKAGE = "face_recognition_models"
DAT_FILE = "dlib_face_recognition_resnet_model_v1.dat"
OPSET = 17

# Where the five landmarks sit in dlib's 150x150 chip (get_face_chip, padding 0.25), in pixels,
# in the semantics of the keypoints our aligner gets from MediaPipe (eye centres, nose tip, and
# mouth corners whose midpoint is MediaPipe's mouth-centre keypoint). Measured by
# tools/measure_dlib_template.py on the 7 faces of tests/media: MediaPipe's keypoints on
# dlib's own chips, averaged, then made left-right symmetric about the eyes' midline (per-face
# spread ~1 px for the eyes, ~4 px for the mouth). dlib's 68-point landmarks on the same chips
# put the eyes 2-3 px higher and the mouth 3 px higher: a different definition of the points,
# so they are not used for this template.
DLIB_CHIP_TEMPLATE = {
    "left_eye": (47.2, 48.6),
    "right_eye": (102.1, 48.6),
    "nose": (74.65, 77.5),
    "mouth_left": (48.7, 108.4),
    "mouth_right": (100.6, 108.4),
}

# The network definition: (channels, number of blocks, first block down-samples) per level.
_LEVELS = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))
_ARES = (Conv, Affine, Relu, Conv, Affine, AddPrev, Relu)
_ARES_DOWN = (Conv, Affine, Relu, Conv, Affine, Pool, AddPrev, Relu)


def package_weights(file_name: str = DAT_FILE) -> Path:
    """A .dat file inside the installed face-recognition-models package, by default the ResNet's (found,
    not imported: the package's __init__ needs pkg_resources, which recent setuptools no longer ships)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the {PACKAGE} package is not installed (pip install face-recognition-models)")
    for location in spec.submodule_search_locations:
        path = Path(location) / "models" / file_name
        if path.is_file():
            return path
    raise ModelError(f"{PACKAGE} is installed but has no models/{file_name}")


def _expect(layers: list, start: int, pattern: tuple, where: str) -> list:
    chunk = layers[start : start + len(pattern)]
    kinds = tuple(type(layer) for layer in chunk)
    if kinds != pattern:
        got = ", ".join(k.__name__ for k in kinds)
        raise ModelError(f"unexpected layer sequence in {where}: {got}")
    return chunk


def _conv(g: GraphBuilder, x: str, conv: Conv, affine: Affine) -> str:
    # conv then per-channel affine == conv with scaled filters and an adjusted bias (exact math)
    weight = conv.weight * affine.gamma[:, None, None, None]
    bias = conv.bias * affine.gamma + affine.beta
    kh, kw = conv.weight.shape[2:]
    py, px = conv.padding
    return g.op("Conv", [x, g.const("w", weight.astype(np.float32)), g.const("b", bias.astype(np.float32))],
                kernel_shape=[kh, kw], strides=list(conv.stride), pads=[py, px, py, px])


def _out_size(size: int, k: int, stride: int, pad: int) -> int:
    return 1 + (size + 2 * pad - k) // stride


def _pad_to(g: GraphBuilder, x: str, shape: tuple[int, int, int], target: tuple[int, int, int]) -> str:
    extra = [t - s for s, t in zip(shape, target)]
    if not any(extra):
        return x
    pads = np.array([0, 0, 0, 0, 0, *extra], dtype=np.int64)  # begin N,C,H,W then end N,C,H,W
    return g.op("Pad", [x, g.const("pads", pads)], mode="constant")


def build_onnx(net: DlibNetwork) -> onnx.ModelProto:
    """Turn the parsed network into an ONNX graph with a dynamic batch axis."""
    g = GraphBuilder()
    layers = net.layers
    rows, cols = net.input_size
    stem = _expect(layers, 0, (Conv, Affine, Relu, Pool), "the stem")
    x = g.op("Relu", [_conv(g, "input", stem[0], stem[1])])
    c = stem[0].weight.shape[0]
    h = _out_size(rows, stem[0].weight.shape[2], stem[0].stride[0], stem[0].padding[0])
    w = _out_size(cols, stem[0].weight.shape[3], stem[0].stride[1], stem[0].padding[1])
    pool = stem[3]
    x = g.op("MaxPool", [x], kernel_shape=list(pool.size), strides=list(pool.stride),
             pads=[pool.padding[0], pool.padding[1]] * 2)
    h = _out_size(h, pool.size[0], pool.stride[0], pool.padding[0])
    w = _out_size(w, pool.size[1], pool.stride[1], pool.padding[1])
    i = 4
    for level, (channels, blocks, down_first) in enumerate(_LEVELS):
        for b in range(blocks):
            where = f"level {level} block {b}"
            if down_first and b == 0:
                conv1, aff1, _, conv2, aff2, skip_pool, _, _ = _expect(layers, i, _ARES_DOWN, where)
                i += len(_ARES_DOWN)
                main = g.op("Relu", [_conv(g, x, conv1, aff1)])
                main = _conv(g, main, conv2, aff2)
                mh = _out_size(h, conv1.weight.shape[2], conv1.stride[0], conv1.padding[0])
                mw = _out_size(w, conv1.weight.shape[3], conv1.stride[1], conv1.padding[1])
                main_shape = (conv2.weight.shape[0], mh, mw)
                skip = g.op("AveragePool", [x], kernel_shape=list(skip_pool.size), strides=list(skip_pool.stride),
                            pads=[skip_pool.padding[0], skip_pool.padding[1]] * 2)
                skip_shape = (c, _out_size(h, skip_pool.size[0], skip_pool.stride[0], skip_pool.padding[0]),
                              _out_size(w, skip_pool.size[1], skip_pool.stride[1], skip_pool.padding[1]))
                out_shape = tuple(max(a, b_) for a, b_ in zip(main_shape, skip_shape))
                summed = g.op("Add", [_pad_to(g, main, main_shape, out_shape), _pad_to(g, skip, skip_shape, out_shape)])
                x = g.op("Relu", [summed])
                c, h, w = out_shape
            else:
                conv1, aff1, _, conv2, aff2, _, _ = _expect(layers, i, _ARES, where)
                i += len(_ARES)
                main = g.op("Relu", [_conv(g, x, conv1, aff1)])
                main = _conv(g, main, conv2, aff2)
                x = g.op("Relu", [g.op("Add", [main, x])])
            if c != channels:
                raise ModelError(f"{where}: {c} channels, expected {channels}")
    head = _expect(layers, i, (Pool, FullyConnected), "the head")
    if i + 2 != len(layers) or head[0].kind != "avg" or head[0].size != (0, 0):
        raise ModelError("unexpected network head (expected global average pooling then fc)")
    x = g.op("GlobalAveragePool", [x])
    x = g.op("Flatten", [x], axis=1)
    fc = head[1]
    if fc.weight.shape[0] != c:
        raise ModelError(f"fc expects {fc.weight.shape[0]} inputs, the network gives {c}")
    out = g.op("MatMul", [x, g.const("fc", fc.weight)])
    g.nodes.append(helper.make_node("Identity", [out], ["embedding"], name="embedding"))

    graph = helper.make_graph(
        g.nodes, "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, rows, cols])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", fc.weight.shape[1]])],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="facestream", producer_version="1")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def convert(dat_path: Path, onnx_path: Path) -> DlibNetwork:
    """Parse dlib's file and write the ONNX model; returns the parsed network."""
    net = parse_dlib_resnet(dat_path)
    model = build_onnx(net)
    onnx_path = Path(onnx_path)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(onnx_path))
    return net


def manifest_for(net: DlibNetwork, onnx_path: Path, dat_path: Path, dat_sha256: str) -> ModelManifest:
    rows, cols = net.input_size
    return ModelManifest(
        name=MODEL_NAME,
        description="dlib face ResNet (29 conv layers, metric loss), 99.38% LFW as published by dlib",
        source=f"{dat_path} (pip package face-recognition-models 0.3.0)",
        source_sha256=dat_sha256,
        sha256=sha256_file(onnx_path),
        input=InputSpec(name="input", width=cols, height=rows, channel_order="RGB",
                        mean=tuple(float(np.float32(m)) for m in net.mean_rgb), std=(256.0, 256.0, 256.0)),
        output_name="embedding",
        embedding_size=128,
        output_normalized=False,
        metric="euclidean",
        threshold=0.6,
        alignment=AlignmentTemplate(width=cols, height=rows, points=DLIB_CHIP_TEMPLATE),
        precision="fp32",
        max_batch_hint=64,
    )


def build_builtin(workdir: Path) -> tuple[ModelManifest, Path]:
    """The store's hook: convert the packaged weights into ``workdir/model.onnx``."""
    dat = package_weights()
    onnx_path = Path(workdir) / "model.onnx"
    net = convert(dat, onnx_path)
    return manifest_for(net, onnx_path, dat, sha256_file(dat)), onnx_path
