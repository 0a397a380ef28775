"""Whether an NVIDIA GPU is visible, found without importing or initialising CUDA."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


def gpu_visible() -> bool:
    """CUDA_VISIBLE_DEVICES not blanked, and a device node or nvidia-smi listing a GPU."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    if Path("/dev/nvidia0").exists():
        return True
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout
