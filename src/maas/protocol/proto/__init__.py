"""Generated Open Inference Protocol v2 gRPC messages and stubs; rebuilt by `make proto`.

The messages live in a private descriptor pool (see the Makefile's `proto` target) so that maas and
tritonclient, which registers the same `inference.*` names, can be imported by one process.
"""
