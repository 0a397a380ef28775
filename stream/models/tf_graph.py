"""Reading a frozen TensorFlow GraphDef (.pb) without TensorFlow.

The protobuf message classes come from the ``tensorboard`` package (``tensorboard.compat.proto``),
which carries TensorFlow's .proto files compiled for plain protobuf: a few MB instead of TensorFlow's
hundreds, and no TensorFlow runtime is ever loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from stream.errors import ModelError

# TensorFlow's DataType enum values (types.proto) for the constants a frozen inference graph holds.
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64}
# Where each dtype keeps its values when they are not in tensor_content.
_VALUE_FIELDS = {1: "float_val", 2: "double_val", 3: "int_val", 9: "int64_val"}

INSTALL_HINT = "pip install 'facestream[facenet]'"


def _graph_pb2() -> Any:
    try:
        from tensorboard.compat.proto import graph_pb2
    except ImportError:
        raise ModelError(f"reading a TensorFlow graph needs the tensorboard package: {INSTALL_HINT}") from None
    return graph_pb2


class FrozenGraph:
    """The nodes of a frozen GraphDef by name, with their constants as numpy arrays."""

    def __init__(self, path: Path) -> None:
        graph = _graph_pb2().GraphDef()
        try:
            graph.ParseFromString(Path(path).read_bytes())
        except OSError as exc:
            raise ModelError(f"{path}: cannot read ({exc.strerror})") from None
        except Exception as exc:  # protobuf's DecodeError: the file is not a GraphDef
            raise ModelError(f"{path}: not a TensorFlow GraphDef ({exc})") from None
        self.path = Path(path)
        self.nodes = {node.name: node for node in graph.node}
        if not self.nodes:
            raise ModelError(f"{path}: empty TensorFlow graph")

    def node(self, ref: str) -> Any:
        """The node an input reference names (``name``, ``name:0`` or the control input ``^name``)."""
        name = ref.lstrip("^").split(":")[0]
        try:
            return self.nodes[name]
        except KeyError:
            raise ModelError(f"{self.path}: node {name!r} is referenced but missing") from None

    def const(self, ref: str) -> np.ndarray:
        """The value of a Const node as a numpy array."""
        node = self.node(ref)
        if node.op != "Const":
            raise ModelError(f"{self.path}: {node.name} is a {node.op}, expected a constant")
        tensor = node.attr["value"].tensor
        dtype = _DTYPES.get(tensor.dtype)
        if dtype is None:
            raise ModelError(f"{self.path}: {node.name}: unsupported constant dtype {tensor.dtype}")
        shape = tuple(d.size for d in tensor.tensor_shape.dim)
        if tensor.tensor_content:
            return np.frombuffer(tensor.tensor_content, dtype=np.dtype(dtype).newbyteorder("<")).astype(
                dtype).reshape(shape)
        values = np.array(getattr(tensor, _VALUE_FIELDS[tensor.dtype]), dtype=dtype)
        count = int(np.prod(shape, dtype=np.int64))
        if values.size == count:
            return values.reshape(shape)
        if values.size == 1:  # TensorFlow stores a splat as its single value
            return np.full(shape, values[0], dtype=dtype)
        raise ModelError(f"{self.path}: {node.name}: {values.size} values for shape {shape}")

    def ints(self, node: Any, attr: str) -> list[int]:
        return list(node.attr[attr].list.i)

    def text(self, node: Any, attr: str) -> str:
        return node.attr[attr].s.decode("ascii", "replace")
