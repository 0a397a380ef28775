"""A reader for dlib's serialization of its face ResNet (``dlib_face_recognition_resnet_model_v1.dat``).

Pure Python + numpy; dlib is not needed. The format (see dlib ``serialize.h`` and ``dnn/*.h``):
integers are a control byte (low nibble = byte count, 0x80 = negative) then little-endian bytes;
floats are a mantissa integer then an exponent integer; tensors are a version, four dims and raw
little-endian float32. The file is the loss block, then one version integer per layer wrapper
(outermost first), then the input layer, then each layer's parameters innermost (= forward) first.
Tags and skips store no ids, so the block structure comes from the known network definition,
which ``parse_dlib_resnet`` checks body by body.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stream.errors import ModelError

log = logging.getLogger(__name__)

_SPECIAL_EXPONENTS = {32000: math.inf, 32001: -math.inf, 32002: math.nan}


class _Reader:
    """Sequential decoder over the file's bytes; every error names the file and byte offset."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.pos = 0
        self.path = path
        self.context = "header"

    def fail(self, what: str) -> ModelError:
        return ModelError(f"{self.path}: {what} at byte {self.pos} (while reading {self.context})")

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ModelError(f"{self.path}: truncated at byte {len(self.data)} (while reading {self.context}; "
                             f"needed {self.pos + n - len(self.data)} more bytes)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def integer(self) -> int:
        control = self.take(1)[0]
        size = control & 0x0F
        if control & 0x70 or size > 8:
            self.pos -= 1
            raise self.fail(f"invalid integer control byte 0x{control:02x}")
        value = int.from_bytes(self.take(size), "little") if size else 0
        return -value if control & 0x80 else value

    def real(self) -> float:
        mantissa = self.integer()
        exponent = self.integer()
        if exponent in _SPECIAL_EXPONENTS:
            return _SPECIAL_EXPONENTS[exponent]
        return math.ldexp(mantissa, exponent)

    def boolean(self) -> bool:
        byte = self.take(1)
        if byte not in (b"0", b"1"):
            self.pos -= 1
            raise self.fail(f"invalid bool byte 0x{byte[0]:02x}")
        return byte == b"1"

    def string(self, max_len: int = 256) -> str:
        length = self.integer()
        if not 0 <= length <= max_len:
            raise self.fail(f"implausible string length {length}")
        raw = self.take(length)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail("non-ASCII layer name") from None

    def version(self, expected: int | tuple[int, ...]) -> int:
        value = self.integer()
        allowed = (expected,) if isinstance(expected, int) else expected
        if value not in allowed:
            raise self.fail(f"unexpected version {value} (expected {' or '.join(map(str, allowed))})")
        return value

    def dims(self) -> tuple[int, int, int, int]:
        dims = tuple(self.integer() for _ in range(4))
        if any(d < 0 for d in dims):
            raise self.fail(f"negative tensor dimension {dims}")
        return dims  # type: ignore[return-value]

    def tensor(self) -> np.ndarray:
        self.version(2)
        dims = self.dims()
        count = int(np.prod(dims, dtype=np.int64))
        raw = self.take(4 * count)
        return np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32).reshape(dims)

    def alias(self) -> tuple[int, int, int, int]:
        self.version(1)
        return self.dims()


@dataclass(frozen=True)
class Conv:
    weight: np.ndarray  # (O, C, kh, kw)
    bias: np.ndarray  # (O,)
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class Affine:
    gamma: np.ndarray  # (K,)
    beta: np.ndarray  # (K,)


@dataclass(frozen=True)
class Relu:
    pass


@dataclass(frozen=True)
class Pool:
    kind: str  # "max" | "avg"
    size: tuple[int, int]  # (0, 0) = the whole input (global pooling)
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class AddPrev:
    pass


@dataclass(frozen=True)
class FullyConnected:
    weight: np.ndarray  # (num_inputs, num_outputs): out = x @ weight


Layer = Conv | Affine | Relu | Pool | AddPrev | FullyConnected


@dataclass
class DlibNetwork:
    """The parsed file: input normalisation and the layers in forward order."""

    mean_rgb: tuple[float, float, float]
    input_size: tuple[int, int]  # (rows, cols)
    layers: list[Layer] = field(default_factory=list)
    loss: str = ""
    margin: float = 0.0
    distance_threshold: float = 0.0

    @property
    def num_parameters(self) -> int:
        total = 0
        for layer in self.layers:
            for value in vars(layer).values():
                if isinstance(value, np.ndarray):
                    total += value.size
        return total


# Wrapper versions as found in this model family: add_layer 2 (generic) or 3 (over the input
# layer), tags and skips 1.
_EXPECTED_BODIES = 108


def parse_dlib_resnet(path: Path) -> DlibNetwork:
    """Parse the file completely; raise ModelError on anything unexpected, naming the byte."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{path}: not found") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror})") from None
    r = _Reader(data, path)

    r.context = "loss layer"
    r.version(1)
    loss = r.string()
    if loss not in ("loss_metric_", "loss_metric_2"):
        raise ModelError(f"{path}: not a dlib face-recognition network (outermost layer is {loss!r}, "
                         "expected loss_metric_)")
    margin = dist_thresh = 0.0
    if loss == "loss_metric_2":
        margin, dist_thresh = r.real(), r.real()

    r.context = "layer wrapper versions"
    versions: list[int] = []
    while True:
        start = r.pos
        value = r.integer()
        if value not in (1, 2, 3):
            r.pos = start  # the input layer's name length: the header has ended
            break
        versions.append(value)
        if value == 3:  # the wrapper directly over the input layer is the innermost
            break
    adds = sum(v in (2, 3) for v in versions)
    if not versions or versions[-1] != 3 or adds != _EXPECTED_BODIES:
        raise ModelError(f"{path}: unexpected network structure ({len(versions)} layer wrappers, {adds} layers; "
                         f"expected {_EXPECTED_BODIES} layers ending in the input layer)")

    r.context = "input layer"
    kind = r.string()
    if kind != "input_rgb_image_sized":
        raise r.fail(f"unexpected input layer {kind!r}")
    mean = (r.real(), r.real(), r.real())
    rows, cols = r.integer(), r.integer()

    net = DlibNetwork(mean_rgb=mean, input_size=(rows, cols), loss=loss, margin=margin,
                      distance_threshold=dist_thresh)
    for i in range(_EXPECTED_BODIES):
        r.context = f"layer {i + 1} of {_EXPECTED_BODIES}"
        net.layers.append(_read_layer(r))
        r.context = f"layer {i + 1} of {_EXPECTED_BODIES} (trailer)"
        _read_trailer(r, stem=i == 0)
    if r.pos != len(data):
        raise ModelError(f"{path}: {len(data) - r.pos} unexpected trailing bytes after the last layer")
    log.debug("parsed %s: %d layers, %d parameters", path, len(net.layers), net.num_parameters)
    return net


def _read_layer(r: _Reader) -> Layer:
    kind = r.string()
    r.context += f" ({kind})"
    if kind == "con_4":
        params = r.tensor().reshape(-1)
        num_filters, kh, kw = r.integer(), r.integer(), r.integer()
        stride = (r.integer(), r.integer())
        padding = (r.integer(), r.integer())
        filters = r.alias()
        biases = r.alias()
        for _ in range(4):
            r.real()  # learning-rate and weight-decay multipliers: training only
        out_c, in_c, fh, fw = filters
        if (out_c, fh, fw) != (num_filters, kh, kw) or biases[1] not in (0, out_c):
            raise r.fail(f"inconsistent conv shapes {filters} / {biases}")
        n_w = out_c * in_c * fh * fw
        if params.size != n_w + (out_c if biases[1] else 0):
            raise r.fail(f"conv has {params.size} parameters, expected {n_w} weights + biases")
        weight = params[:n_w].reshape(out_c, in_c, fh, fw)
        bias = params[n_w:] if biases[1] else np.zeros(out_c, np.float32)
        return Conv(weight, bias, stride, padding)
    if kind == "affine_":
        params = r.tensor().reshape(-1)
        gamma_shape, beta_shape = r.alias(), r.alias()
        mode = r.integer()
        k = gamma_shape[1]
        if mode != 0 or params.size != 2 * k or beta_shape[1] != k:
            raise r.fail(f"unsupported affine layer (mode {mode}, {params.size} params for {k} channels)")
        return Affine(params[:k].copy(), params[k:].copy())
    if kind == "relu_":
        return Relu()
    if kind in ("max_pool_2", "avg_pool_2"):
        nr, nc = r.integer(), r.integer()
        stride = (r.integer(), r.integer())
        padding = (r.integer(), r.integer())
        return Pool("max" if kind.startswith("max") else "avg", (nr, nc), stride, padding)
    if kind == "add_prev_":
        return AddPrev()
    if kind == "fc_2":
        num_outputs, num_inputs = r.integer(), r.integer()
        params = r.tensor()
        r.alias()
        biases = r.alias()
        bias_mode = r.integer()
        for _ in range(4):
            r.real()
        if bias_mode != 1 or any(biases):
            raise r.fail("fully-connected layer with a bias is not supported")
        if params.size != num_inputs * num_outputs:
            raise r.fail(f"fc has {params.size} parameters, expected {num_inputs}x{num_outputs}")
        return FullyConnected(params.reshape(num_inputs, num_outputs))
    raise r.fail(f"unexpected layer type {kind!r}")


def _read_trailer(r: _Reader, *, stem: bool) -> None:
    # Training state kept by add_layer: three flags and gradient/output caches (empty when saved
    # for inference). Read and discard, but insist on the shape of the record.
    for _ in range(3):
        r.boolean()
    for _ in range(3):
        r.tensor()
    if stem:
        r.integer()  # sample_expansion_factor
