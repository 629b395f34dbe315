"""Prometheus metrics and Triton-style statistics, built per server."""
