"""PyTorch is an optional extra: import it here so a missing install is one clear line."""

from __future__ import annotations

from typing import Any

from stream.errors import EngineUnavailable


def require_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise EngineUnavailable("PyTorch is needed to train: pip install 'facestream[train]'") from None
    return torch
