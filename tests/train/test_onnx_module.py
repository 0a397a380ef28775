"""stream.train.onnx_module: ONNX graphs run as trainable torch modules, checked op by op against ONNX Runtime
on a small graph that uses every mapped op, including the awkward attributes (asymmetric pads, Pad's
N-D layout, ReduceSum's axes input)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from stream.errors import ModelError

torch = pytest.importorskip("torch", reason="PyTorch not installed: pip install -e '.[train]'")

from stream.models.torch_export import export_onnx  # noqa: E402
from stream.train import onnx_module  # noqa: E402


def _graph(extra_op: str | None = None) -> onnx.ModelProto:
    rng = np.random.default_rng(0)

    def init(name: str, value: np.ndarray):
        return numpy_helper.from_array(np.asarray(value), name)

    nodes = [
        helper.make_node("ReduceMean", ["input"], ["mean"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Sub", ["input", "mean"], ["centred"]),
        helper.make_node("Mul", ["centred", "centred"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["var"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Sqrt", ["var"], ["std"]),
        helper.make_node("Max", ["std", "floor"], ["std2"]),
        helper.make_node("Div", ["centred", "std2"], ["x"]),
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[0, 0, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Pad", ["r1", "pads"], ["p1"], mode="constant"),
        helper.make_node("MaxPool", ["p1"], ["m1"], kernel_shape=[2, 2], strides=[1, 1], pads=[1, 1, 1, 1]),
        helper.make_node("AveragePool", ["m1"], ["a1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["a1", "w2"], ["c2"], kernel_shape=[1, 1]),
        helper.make_node("Concat", ["a1", "c2"], ["cat"], axis=1),
        helper.make_node("Mul", ["cat", "scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "cat"], ["res"]),
        helper.make_node("GlobalAveragePool", ["res"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "fc"], ["mm"]),
        helper.make_node("Add", ["mm", "fc_b"], ["emb"]),
        helper.make_node("Mul", ["emb", "emb"], ["emb2"]),
        helper.make_node("ReduceSum", ["emb2", "axes"], ["ss"], keepdims=1),
        helper.make_node("Sqrt", ["ss"], ["norm"]),
        helper.make_node("Reciprocal", ["norm"], ["inv"]),
        helper.make_node("Mul", ["emb", "inv"], ["out"]),
        helper.make_node("Identity", ["out"], ["embedding"]),
    ]
    if extra_op:
        nodes.insert(-1, helper.make_node(extra_op, ["out"], ["odd"]))
    inits = [init("floor", np.float32(0.01)), init("w1", rng.normal(size=(4, 3, 3, 3)).astype(np.float32)),
             init("b1", rng.normal(size=4).astype(np.float32)), init("pads", np.array([0, 0, 0, 1, 0, 2, 1, 0])),
             init("w2", rng.normal(size=(4, 6, 1, 1)).astype(np.float32)), init("scale", np.float32(0.17)),
             init("fc", rng.normal(size=(10, 5)).astype(np.float32)),
             init("fc_b", rng.normal(size=5).astype(np.float32)), init("axes", np.array([1], np.int64))]
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, 16, 16])]
    graph = helper.make_graph(nodes, "t", inputs,
                              [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["n", 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _ort(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def test_every_mapped_op_matches_onnx_runtime() -> None:
    model = _graph()
    x = np.random.default_rng(1).uniform(0, 255, (3, 3, 16, 16)).astype(np.float32)
    module = onnx_module.from_proto(model).eval()
    with torch.no_grad():
        got = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, _ort(model, x), atol=1e-5)
    assert {n.op_type for n in model.graph.node} <= onnx_module.OPS


def test_tensors_train_scalars_and_integers_stay_fixed() -> None:
    module = onnx_module.from_proto(_graph())
    trainable = sorted(tuple(p.shape) for p in module.parameters())
    # w1, b1, w2, fc, fc_b; not the std floor, the residual scale, the pads or the axes
    assert trainable == sorted([(4, 3, 3, 3), (4,), (4, 6, 1, 1), (10, 5), (5,)])
    x = torch.from_numpy(np.random.default_rng(2).uniform(0, 255, (2, 3, 16, 16)).astype(np.float32))
    module(x).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in module.parameters())


def test_trained_module_exports_back_to_the_same_function(tmp_path: Path) -> None:
    module = onnx_module.from_proto(_graph())
    with torch.no_grad():
        next(iter(module.parameters())).mul_(1.5)  # "trained": no longer the source graph's weights
    out = tmp_path / "exported.onnx"
    export_onnx(module, 16, out)
    x = np.random.default_rng(3).uniform(0, 255, (4, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        ref = module.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(_ort(onnx.load(str(out)), x), ref, atol=1e-5)  # batch 4 though traced at 2


def test_unknown_op_is_named() -> None:
    with pytest.raises(ModelError, match="ops without a torch mapping here: Softsign"):
        onnx_module.from_proto(_graph("Softsign"))
