"""One loaded ONNX model on onnxruntime."""
