"""ONNX Runtime engine: the CPU path that runs anywhere, and the one CI tests."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from stream.errors import EngineUnavailable
from stream.inference.base import Engine
from stream.inference.network import NetworkSpec
from stream.models.manifest import ModelManifest

log = logging.getLogger(__name__)


class OnnxRuntimeEngine(Engine):
    backend = "onnxruntime"

    def __init__(
        self,
        manifest: ModelManifest,
        onnx_path: Path,
        *,
        max_batch: int = 32,
        intra_threads: int = 0,
        inter_threads: int = 1,
        providers: list[str] | None = None,
        spin: bool = False,
    ) -> None:
        """``intra_threads=0`` lets ONNX Runtime use every core; set 1 when several engines share a box.
        ``spin=True`` lets idle worker threads busy-wait: a little faster alone, slower beside other work."""
        super().__init__(manifest, max_batch)
        self.onnx_path = Path(onnx_path)
        self.intra_threads = intra_threads
        self.inter_threads = inter_threads
        self.providers = providers or ["CPUExecutionProvider"]
        self.spin = spin
        self._session = None

    def _load(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - a hard dependency
            raise EngineUnavailable(f"onnxruntime is not installed ({exc})") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.intra_threads
        opts.inter_op_num_threads = self.inter_threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        # ORT's worker threads busy-wait between ops by default; in a pipeline that shares the
        # cores with decoding and detection, that spinning steals the CPU those stages need.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spin else "0")
        try:
            self._session = ort.InferenceSession(str(self.onnx_path), opts, providers=self.providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise EngineUnavailable(f"{self.onnx_path}: ONNX Runtime cannot load it ({exc})") from None

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        if self._session is None:
            raise RuntimeError("OnnxRuntimeEngine used after close()")
        (out,) = self._session.run(
            [self.manifest.output_name], {self.manifest.input.name: np.ascontiguousarray(batch)}
        )
        return np.asarray(out, dtype=np.float32)

    def _release(self) -> None:
        self._session = None


class OnnxRuntimeNetwork:
    """A ``network.NetworkSpec`` on ONNX Runtime's CPU provider."""

    backend = "onnxruntime"

    def __init__(self, spec: NetworkSpec, *, threads: int = 1) -> None:
        self.spec = spec
        self.threads = threads
        self._session = None

    def load(self) -> OnnxRuntimeNetwork:
        if self._session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            self._session = ort.InferenceSession(str(self.spec.onnx_path), options,
                                                 providers=["CPUExecutionProvider"])
        return self

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        session = self._session or self.load()._session
        return session.run(list(self.spec.output_names), {self.spec.input_name: batch})

    def close(self) -> None:
        self._session = None
