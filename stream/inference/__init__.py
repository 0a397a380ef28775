"""Inference engines behind one interface: ONNX Runtime (CPU) and TensorRT (GPU)."""
