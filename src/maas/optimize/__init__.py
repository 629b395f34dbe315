"""Optimization: int8 quantization, pruning and the accuracy gate every optimized version passes.

Each optimized model becomes a new version of the same model, with its parent in the lineage and
the evidence (accuracy, size, speed against the parent) in its metrics.
"""
