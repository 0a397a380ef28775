"""Convert MediaPipe's BlazeFace ``.tflite`` files (inside the mediapipe wheel) to ONNX.

Why: MediaPipe's graph costs as much again as the network itself on every call (image
conversion, packet plumbing, its own letterbox and NMS calculators): measured 3-4 ms per
short-range call through ``solutions.face_detection`` against 1.6-2.4 ms for the bare network.
The tiled scan and the per-track looks make several calls per frame, so that overhead is the
biggest share of the detect worker's time. As ONNX the same weights run in ONNX Runtime (and
TensorRT), batched, with the pre- and post-processing in ``stream.detect.blazeface.network``.

Only the operators these two models use are converted (checked on every build, refused with a
clear error otherwise); fp16 weights are widened to fp32 and the full-range model's sparse
(CSR) weights are densified at conversion, so the ONNX graph is plain dense fp32. Activations
run NCHW inside the graph. The input is what a letterbox produces: NHWC uint8 BGR (OpenCV's
order); the graph itself casts, reverses the channels to the model's RGB and scales to [-1, 1],
so the caller does no per-pixel arithmetic in Python.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from stream.errors import ModelError
from stream.models.onnx_graph import GraphBuilder

OPSET = 17

# TFLite enums (schema.fbs), written out so the converter needs the schema package only to read.
_TFLITE_FLOAT32, _TFLITE_FLOAT16, _TFLITE_INT32 = 0, 1, 2
_PADDING_SAME = 0
_ACTIVATIONS = {0: None, 1: "Relu"}
_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


def _tflite():
    try:
        import tflite
    except ImportError as exc:
        raise ModelError(f"converting MediaPipe's detector needs the 'tflite' package ({exc})") from None
    return tflite


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's SAME padding: extra pixel at the end when the total is odd."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _densify(tensor, data: np.ndarray) -> np.ndarray:
    """Expand a TFLite sparse constant (dense and CSR levels, no blocks) into its dense array."""
    sparsity = tensor.Sparsity()
    shape = tuple(int(s) for s in tensor.ShapeAsNumpy())
    if sparsity.BlockMapLength():
        raise ModelError("block-sparse TFLite weights are not supported")
    order = [int(d) for d in sparsity.TraversalOrderAsNumpy()]
    tflite = _tflite()

    def vector(table, kind: int) -> np.ndarray:
        holder = {1: tflite.Int32Vector, 2: tflite.Uint16Vector, 3: tflite.Uint8Vector}[kind]()
        holder.Init(table.Bytes, table.Pos)
        return holder.ValuesAsNumpy().astype(np.int64)

    levels = []
    for level in range(sparsity.DimMetadataLength()):
        meta = sparsity.DimMetadata(level)
        if meta.Format() == 0:
            levels.append(("dense", int(meta.DenseSize()), None, None))
        else:
            levels.append(("csr", 0, vector(meta.ArraySegments(), meta.ArraySegmentsType()),
                           vector(meta.ArrayIndices(), meta.ArrayIndicesType())))
    dense = np.zeros([shape[d] for d in order], data.dtype)
    cursor = 0

    def walk(level: int, parent: int, index: tuple[int, ...]) -> None:
        nonlocal cursor
        if level == len(levels):
            dense[index] = data[cursor]
            cursor += 1
            return
        kind, size, segments, indices = levels[level]
        if kind == "dense":
            for i in range(size):
                walk(level + 1, parent * size + i, (*index, i))
        else:
            for position in range(segments[parent], segments[parent + 1]):
                walk(level + 1, position, (*index, int(indices[position])))

    walk(0, 0, ())
    if cursor != data.size:
        raise ModelError(f"sparse weights: {data.size} values, the index describes {cursor}")
    return dense.transpose(np.argsort(order))


class _Converter:
    def __init__(self, buffer: bytes) -> None:
        tflite = self.tflite = _tflite()
        self.model = tflite.Model.GetRootAsModel(buffer, 0)
        if self.model.SubgraphsLength() != 1:
            raise ModelError("expected a single-subgraph TFLite model")
        self.sub = self.model.Subgraphs(0)
        self.ops = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
        self.g = GraphBuilder()
        self.values: dict[int, str] = {}  # activation tensor -> ONNX name (4-D ones are NCHW)
        self.consts: dict[int, np.ndarray] = {}  # constant tensor -> array, TFLite layout

    # -- tensors ---------------------------------------------------------------------------------
    def shape(self, index: int) -> tuple[int, ...]:
        tensor = self.sub.Tensors(index)
        return tuple(int(s) for s in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()

    def const(self, index: int) -> np.ndarray:
        if index in self.consts:
            return self.consts[index]
        tensor = self.sub.Tensors(index)
        raw = self.model.Buffers(tensor.Buffer()).DataAsNumpy()
        if isinstance(raw, int) or raw.size == 0:
            raise ModelError(f"tensor {tensor.Name().decode()}: expected constant data")
        dtype = {_TFLITE_FLOAT32: np.float32, _TFLITE_FLOAT16: np.float16, _TFLITE_INT32: np.int32}.get(tensor.Type())
        if dtype is None:
            raise ModelError(f"tensor {tensor.Name().decode()}: unsupported type {tensor.Type()}")
        data = raw.view(dtype)
        value = _densify(tensor, data) if tensor.Sparsity() is not None else data.reshape(self.shape(index))
        self.consts[index] = value
        return value

    def activation(self, index: int) -> str:
        if index not in self.values:
            raise ModelError(f"tensor {self.sub.Tensors(index).Name().decode()}: used before it is computed")
        return self.values[index]

    def options(self, op, cls):
        table = op.BuiltinOptions()
        opts = cls()
        opts.Init(table.Bytes, table.Pos)
        return opts

    def fused(self, name: str, activation: int) -> str:
        if activation not in _ACTIVATIONS:
            raise ModelError(f"unsupported fused activation {activation}")
        kind = _ACTIVATIONS[activation]
        return self.g.op(kind, [name]) if kind else name

    # -- operators -------------------------------------------------------------------------------
    def convert(self) -> onnx.ModelProto:
        sub, g = self.sub, self.g
        (model_input,) = [sub.Inputs(i) for i in range(sub.InputsLength())]
        _, height, width, channels = self.shape(model_input)
        x = g.op("Transpose", [g.op("Cast", ["input"], to=TensorProto.FLOAT)], perm=[0, 3, 1, 2])
        bgr_to_rgb = g.const("rgb", np.array([2, 1, 0], np.int64))
        x = g.op("Gather", [x, bgr_to_rgb], axis=1)
        x = g.op("Mul", [x, g.const("scale", np.array(1 / 127.5, np.float32))])
        self.values[model_input] = g.op("Sub", [x, g.const("one", np.array(1.0, np.float32))])
        for i in range(sub.OperatorsLength()):
            op = sub.Operators(i)
            code = self.model.OperatorCodes(op.OpcodeIndex())
            kind = self.ops.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
            ins = [op.Inputs(j) for j in range(op.InputsLength())]
            (out,) = [op.Outputs(j) for j in range(op.OutputsLength())]
            handler = getattr(self, f"_op_{kind.lower()}", None)
            if handler is None:
                raise ModelError(f"TFLite operator {kind} is not supported by the BlazeFace converter")
            result = handler(op, ins, out)
            if isinstance(result, np.ndarray):
                self.consts[out] = result
            else:
                self.values[out] = result
        outputs = []
        for i in range(sub.OutputsLength()):
            index = sub.Outputs(i)
            shape = self.shape(index)
            name = "regressors" if shape[-1] == 16 else "classificators"
            g.nodes.append(helper.make_node("Identity", [self.activation(index)], [name], name=name))
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", *shape[1:]]))
        outputs.sort(key=lambda o: o.name != "regressors")
        graph = helper.make_graph(
            g.nodes, "blazeface",
            [helper.make_tensor_value_info("input", TensorProto.UINT8, ["batch", height, width, channels])],
            outputs, g.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="facestream", producer_version="1")
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model

    def _op_dequantize(self, op, ins, out):
        return self.const(ins[0]).astype(np.float32)

    def _op_densify(self, op, ins, out):
        return self.const(ins[0])

    def _op_pad(self, op, ins, out):
        pads = self.const(ins[1]).astype(np.int64)  # NHWC (begin, end) pairs
        order = [0, 3, 1, 2]
        onnx_pads = np.array([pads[a, 0] for a in order] + [pads[a, 1] for a in order], np.int64)
        return self.g.op("Pad", [self.activation(ins[0]), self.g.const("pads", onnx_pads)], mode="constant")

    def _conv_pads(self, ins, kh, kw, opts, dilated: bool = True) -> list[int]:
        if opts.Padding() != _PADDING_SAME:
            return [0, 0, 0, 0]
        _, h, w, _ = self.shape(ins[0])
        dh, dw = (opts.DilationHFactor(), opts.DilationWFactor()) if dilated else (1, 1)
        top, bottom = _same_pads(h, kh, opts.StrideH(), dh)
        left, right = _same_pads(w, kw, opts.StrideW(), dw)
        return [top, left, bottom, right]

    def _conv_inputs(self, ins, weight: np.ndarray) -> list[str]:
        names = [self.activation(ins[0]), self.g.const("w", weight.astype(np.float32))]
        if len(ins) > 2 and ins[2] >= 0:
            names.append(self.g.const("b", self.const(ins[2]).astype(np.float32)))
        return names

    def _op_conv_2d(self, op, ins, out):
        weight = self.const(ins[1]).transpose(0, 3, 1, 2)  # OHWI -> OIHW
        return self._conv(ins, self.options(op, self.tflite.Conv2DOptions), weight, groups=1)

    def _op_depthwise_conv_2d(self, op, ins, out):
        weight = self.const(ins[1]).transpose(3, 0, 1, 2)  # 1HW(C*M) -> (C*M)1HW
        return self._conv(ins, self.options(op, self.tflite.DepthwiseConv2DOptions), weight,
                          groups=self.shape(ins[0])[3])

    def _conv(self, ins, opts, weight: np.ndarray, groups: int) -> str:
        kh, kw = weight.shape[2:]
        y = self.g.op("Conv", self._conv_inputs(ins, weight), kernel_shape=[kh, kw], group=groups,
                      strides=[opts.StrideH(), opts.StrideW()],
                      dilations=[opts.DilationHFactor(), opts.DilationWFactor()],
                      pads=self._conv_pads(ins, kh, kw, opts))
        return self.fused(y, opts.FusedActivationFunction())

    def _op_max_pool_2d(self, op, ins, out):
        opts = self.options(op, self.tflite.Pool2DOptions)
        kh, kw = opts.FilterHeight(), opts.FilterWidth()
        y = self.g.op("MaxPool", [self.activation(ins[0])], kernel_shape=[kh, kw],
                      strides=[opts.StrideH(), opts.StrideW()], pads=self._conv_pads(ins, kh, kw, opts, dilated=False))
        return self.fused(y, opts.FusedActivationFunction())

    def _op_add(self, op, ins, out):
        if any(i in self.consts for i in ins):
            raise ModelError("ADD with a constant operand is not supported")
        opts = self.options(op, self.tflite.AddOptions)
        y = self.g.op("Add", [self.activation(ins[0]), self.activation(ins[1])])
        return self.fused(y, opts.FusedActivationFunction())

    def _op_relu(self, op, ins, out):
        return self.g.op("Relu", [self.activation(ins[0])])

    def _op_reshape(self, op, ins, out):
        x = self.activation(ins[0])
        if len(self.shape(ins[0])) == 4:  # back to TFLite's element order before flattening
            x = self.g.op("Transpose", [x], perm=[0, 2, 3, 1])
        if len(self.shape(out)) == 4:
            raise ModelError("RESHAPE to a 4-D tensor is not supported")
        target = np.array([0, *self.shape(out)[1:]], np.int64)  # 0: keep the batch axis
        return self.g.op("Reshape", [x, self.g.const("shape", target)])

    def _op_concatenation(self, op, ins, out):
        opts = self.options(op, self.tflite.ConcatenationOptions)
        rank = len(self.shape(out))
        axis = opts.Axis() % rank
        if rank == 4:
            axis = _NHWC_TO_NCHW_AXIS[axis]
        y = self.g.op("Concat", [self.activation(i) for i in ins], axis=axis)
        return self.fused(y, opts.FusedActivationFunction())

    def _op_depth_to_space(self, op, ins, out):
        opts = self.options(op, self.tflite.DepthToSpaceOptions)
        # TensorFlow's order (block row, block column, channel) is ONNX's DCR mode.
        return self.g.op("DepthToSpace", [self.activation(ins[0])], blocksize=opts.BlockSize(), mode="DCR")

    def _op_resize_bilinear(self, op, ins, out):
        opts = self.options(op, self.tflite.ResizeBilinearOptions)
        _, h, w, _ = self.shape(ins[0])
        _, oh, ow, _ = self.shape(out)
        mode = "align_corners" if opts.AlignCorners() else "half_pixel" if opts.HalfPixelCenters() else "asymmetric"
        scales = self.g.const("scales", np.array([1, 1, oh / h, ow / w], np.float32))
        return self.g.op("Resize", [self.activation(ins[0]), "", scales], mode="linear",
                         coordinate_transformation_mode=mode)


def convert_tflite(tflite_path: Path) -> onnx.ModelProto:
    """The ONNX model for one of MediaPipe's BlazeFace ``.tflite`` files."""
    try:
        buffer = Path(tflite_path).read_bytes()
    except OSError as exc:
        raise ModelError(f"{tflite_path}: cannot read ({exc.strerror})") from None
    return _Converter(buffer).convert()
