"""ROC curves of several models in one PNG (matplotlib, optional, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stream.errors import FacestreamError


def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], path: Path, title: str) -> None:
    """``curves``: model -> (FPR, TPR, AUC). FPR on a log axis: the low-FAR end is what matters."""
    try:
        import matplotlib
    except ImportError:
        raise FacestreamError(f"{path}: --plot needs matplotlib (pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5), dpi=120)
    for name, (fpr, tpr, area) in curves.items():
        ax.step(np.maximum(fpr, 1e-4), tpr, where="post", label=f"{name} (AUC {area:.4f})")
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate (VAL)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as exc:
        raise FacestreamError(f"{path}: cannot write the plot ({exc.strerror or exc})") from None
    finally:
        plt.close(fig)
