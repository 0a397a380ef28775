"""MediaPipe's BlazeFace: its facts, its ``.tflite`` converted to ONNX, and two ways to run it
(the ONNX network through ``stream.inference``, or MediaPipe's own graph)."""
