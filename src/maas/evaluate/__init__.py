"""Evaluation: accuracy, calibration, speed and size measures, explanations and HTML reports.

`timing`, `occlusion` and `metrics` import only numpy and onnxruntime, so a server can use them
without torch; `explain` adds integrated gradients where PyTorch weights are at hand.
"""
