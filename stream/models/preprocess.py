"""Aligned BGR uint8 crops -> the network's float32 input tensor, as the manifest says."""

from __future__ import annotations

import numpy as np

from stream.models.manifest import InputSpec


def to_input_tensor(crops_bgr: np.ndarray, spec: InputSpec, out: np.ndarray | None = None) -> np.ndarray:
    """Convert (N, H, W, 3) uint8 BGR crops to the model's layout, channel order and scale.

    ``out`` lets an engine reuse a preallocated (e.g. page-locked) buffer of the right shape.
    """
    crops = np.asarray(crops_bgr)
    expected = (spec.height, spec.width, 3)
    if crops.ndim != 4 or crops.shape[1:] != expected:
        raise ValueError(f"crops must be (N, {spec.height}, {spec.width}, 3); got {crops.shape}")
    if spec.channel_order == "RGB":
        crops = crops[..., ::-1]
    mean = np.asarray(spec.mean, dtype=np.float32)
    inv_std = 1.0 / np.asarray(spec.std, dtype=np.float32)
    if spec.layout == "NCHW":
        crops = crops.transpose(0, 3, 1, 2)
        mean = mean[:, None, None]
        inv_std = inv_std[:, None, None]
    shape = crops.shape
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif out.shape != shape or out.dtype != np.float32:
        raise ValueError(f"output buffer must be float32 {shape}; got {out.dtype} {out.shape}")
    np.subtract(crops, mean, out=out, dtype=np.float32)
    np.multiply(out, inv_std, out=out)
    return out
