"""Export to ONNX and validate the exported graph before it may be registered."""
