"""Generative models on onnxruntime: decoding loops over the key/value-cache graph (no torch)."""
