"""A stand-in for the few TensorRT enums the engines' I/O checks read (TensorRT cannot be installed here)."""

from __future__ import annotations

import enum


class FakeTrtTypes:
    class TensorIOMode(enum.Enum):
        INPUT = 0
        OUTPUT = 1

    class DataType(enum.Enum):
        FLOAT = 0
        HALF = 1
        UINT8 = 2
