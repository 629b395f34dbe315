"""Generative models: tokenizer, KV cache, sampling and the continuous-batching scheduler."""
