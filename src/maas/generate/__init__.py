"""Generative models: tokenizer, KV cache, sampling, the continuous-batching scheduler, and the
greedy reference loop that export validation shares (numpy and onnxruntime only, never torch)."""
