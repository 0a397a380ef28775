"""An installed model's ONNX graph as a trainable torch module, without onnx2torch.

onnx2torch imports torchvision, and the only torchvision on the package registry for Linux is built
against CUDA torch: with the CPU torch of a CPU machine its operators fail to load. Our built-in
models use a small set of plain ops (dlib-resnet-v1: 10 op types, facenet-casia: 17, batch norms
already folded into the convolutions' biases), so this module runs the graph node by node with
torch functions instead: each float tensor initializer with more than one element (convolution
filters and biases, the bottleneck's matrix and bias) becomes a trainable parameter; scalars (the
Inception-ResNet residual scales, the prewhitening's std floor) and integer tensors (pads, axes)
stay fixed, as in the networks' own training. An op outside ``OPS`` raises ``ModelError`` naming it,
and ``backbones.convert_onnx`` then tries onnx2torch.

It traces exactly with ``torch.onnx.export`` (the ops are shape-static apart from the batch), so a
fine-tuned model is exported by the same exporter as the others.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import numpy as np

from stream.errors import ModelError
from stream.train.deps import require_torch

log = logging.getLogger(__name__)

OPS = frozenset({"Conv", "Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "Pad", "Add", "Sub", "Mul", "Div",
                 "Max", "Sqrt", "Reciprocal", "ReduceMean", "ReduceSum", "Concat", "Flatten", "MatMul", "Identity"})


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _pair_pads(pads: list[int]) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """ONNX 2-D pads [top, left, bottom, right] -> (symmetric padding for torch, or (0, 0)) and the
    F.pad amounts [left, right, top, bottom] still to apply when they are not symmetric."""
    top, left, bottom, right = [*pads, 0, 0, 0, 0][:4]
    if (top, left) == (bottom, right):
        return (top, left), (0, 0, 0, 0)
    return (0, 0), (left, right, top, bottom)


def load(onnx_path: Path) -> Any:
    """The graph of ``onnx_path`` as a torch module (float32, train mode)."""
    import onnx

    return from_proto(onnx.load(str(onnx_path)), str(onnx_path))


def from_proto(model: Any, where: str = "model") -> Any:
    from onnx import numpy_helper

    torch = require_torch()
    graph = model.graph
    unsupported = sorted({n.op_type for n in graph.node} - OPS)
    if unsupported:
        raise ModelError(f"{where}: ops without a torch mapping here: {', '.join(unsupported)}")
    init_names = {i.name for i in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in init_names]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ModelError(f"{where}: expected one input and one output, got {inputs} -> {len(graph.output)}")
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    nodes = [(n.op_type, list(n.input), list(n.output), _attrs(n)) for n in graph.node]
    return _graph_module_class()(torch, constants, nodes, inputs[0], graph.output[0].name)


@functools.cache
def _graph_module_class() -> type:
    """The module class, made on first use: torch is an optional extra, not imported with this file."""
    return type("OnnxGraphModule", (_OnnxGraphOps, require_torch().nn.Module), {})


class _OnnxGraphOps:
    """The body of ``OnnxGraphModule``: runs ``nodes`` (op, inputs, outputs, attributes) in graph order
    on torch tensors."""

    def __init__(self, torch: Any, constants: dict[str, np.ndarray], nodes: list, input_name: str,
                 output_name: str) -> None:
        super().__init__()
        self.params = torch.nn.ParameterDict()
        self.fixed: dict[str, Any] = {}  # integer tensors as numpy (pads, axes); float scalars as buffers
        self.keys: dict[str, str] = {}  # ONNX name -> ParameterDict / buffer key (no dots allowed there)
        for i, (name, value) in enumerate(constants.items()):
            key = f"t{i}"
            self.keys[name] = key
            if value.dtype.kind == "f" and value.size > 1:
                self.params[key] = torch.nn.Parameter(torch.from_numpy(value.astype(np.float32).copy()))
            elif value.dtype.kind == "f":
                self.register_buffer(key, torch.from_numpy(value.astype(np.float32).copy()))
            else:
                self.fixed[name] = value
        self.nodes = nodes
        self.input_name = input_name
        self.output_name = output_name

    def _const(self, name: str) -> Any:
        key = self.keys[name]
        return self.params[key] if key in self.params else getattr(self, key)

    def forward(self, x: Any) -> Any:
        values: dict[str, Any] = {self.input_name: x}
        for op, ins, outs, attrs in self.nodes:
            # integer constants (and omitted optional inputs, named "") are read by the ops from ``ins``
            args = [values[n] if n in values else (None if n in self.fixed or not n else self._const(n)) for n in ins]
            values[outs[0]] = getattr(self, f"_{op}")(args, ins, attrs)
        return values[self.output_name]

    # -- ops: (tensor args, input names, attributes) -> tensor ------------------------------------------
    def _Conv(self, a: list, ins: list, at: dict) -> Any:
        F = require_torch().nn.functional
        padding, extra = _pair_pads(at.get("pads", [0, 0, 0, 0]))
        x = F.pad(a[0], extra) if any(extra) else a[0]
        return F.conv2d(x, a[1], a[2] if len(a) > 2 else None, tuple(at.get("strides", (1, 1))), padding,
                        tuple(at.get("dilations", (1, 1))), at.get("group", 1))

    def _Relu(self, a: list, ins: list, at: dict) -> Any:
        return require_torch().relu(a[0])

    def _pool(self, a: list, at: dict, kind: str) -> Any:
        F = require_torch().nn.functional
        padding, extra = _pair_pads(at.get("pads", [0, 0, 0, 0]))
        if any(extra):
            raise ModelError(f"{kind} with asymmetric pads {at['pads']} is not supported")
        kernel, strides = tuple(at["kernel_shape"]), tuple(at.get("strides", (1, 1)))
        ceil = bool(at.get("ceil_mode", 0))
        if kind == "max":
            return F.max_pool2d(a[0], kernel, strides, padding, ceil_mode=ceil)
        return F.avg_pool2d(a[0], kernel, strides, padding, ceil_mode=ceil,
                            count_include_pad=bool(at.get("count_include_pad", 0)))

    def _MaxPool(self, a: list, ins: list, at: dict) -> Any:
        return self._pool(a, at, "max")

    def _AveragePool(self, a: list, ins: list, at: dict) -> Any:
        return self._pool(a, at, "avg")

    def _GlobalAveragePool(self, a: list, ins: list, at: dict) -> Any:
        return a[0].mean(dim=(2, 3), keepdim=True)

    def _Pad(self, a: list, ins: list, at: dict) -> Any:
        F = require_torch().nn.functional
        mode = at.get("mode", b"constant")
        pads = [int(p) for p in self.fixed[ins[1]]]
        value = 0.0
        if len(ins) > 2 and ins[2]:  # the optional constant_value: a float scalar buffer, or integer
            value = float(self.fixed[ins[2]]) if ins[2] in self.fixed else float(a[2])
        if mode not in (b"constant", "constant") or len(ins) > 3:
            raise ModelError(f"Pad mode {mode!r} is not supported")
        rank = len(pads) // 2
        torch_pads: list[int] = []
        for dim in reversed(range(rank)):  # F.pad: last dimension first, (begin, end) each
            torch_pads += [pads[dim], pads[dim + rank]]
        return F.pad(a[0], torch_pads, value=value)

    def _Add(self, a: list, ins: list, at: dict) -> Any:
        return a[0] + a[1]

    def _Sub(self, a: list, ins: list, at: dict) -> Any:
        return a[0] - a[1]

    def _Mul(self, a: list, ins: list, at: dict) -> Any:
        return a[0] * a[1]

    def _Div(self, a: list, ins: list, at: dict) -> Any:
        return a[0] / a[1]

    def _Max(self, a: list, ins: list, at: dict) -> Any:
        return require_torch().maximum(a[0], a[1])

    def _Sqrt(self, a: list, ins: list, at: dict) -> Any:
        return a[0].sqrt()

    def _Reciprocal(self, a: list, ins: list, at: dict) -> Any:
        return a[0].reciprocal()

    def _ReduceMean(self, a: list, ins: list, at: dict) -> Any:
        axes = at.get("axes")
        if axes is None and len(ins) > 1:
            axes = self.fixed[ins[1]]
        dims = tuple(int(d) for d in axes) if axes is not None else tuple(range(a[0].dim()))
        return a[0].mean(dim=dims, keepdim=bool(at.get("keepdims", 1)))

    def _ReduceSum(self, a: list, ins: list, at: dict) -> Any:
        axes = self.fixed[ins[1]] if len(ins) > 1 else at.get("axes")
        dims = tuple(int(d) for d in np.atleast_1d(axes)) if axes is not None else tuple(range(a[0].dim()))
        return a[0].sum(dim=dims, keepdim=bool(at.get("keepdims", 1)))

    def _Concat(self, a: list, ins: list, at: dict) -> Any:
        return require_torch().cat(a, dim=int(at["axis"]))

    def _Flatten(self, a: list, ins: list, at: dict) -> Any:
        return require_torch().flatten(a[0], int(at.get("axis", 1)))

    def _MatMul(self, a: list, ins: list, at: dict) -> Any:
        return a[0] @ a[1]

    def _Identity(self, a: list, ins: list, at: dict) -> Any:
        return a[0]
