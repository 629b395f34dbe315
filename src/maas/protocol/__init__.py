"""Open Inference Protocol (v2): internal request/response types, tensor codecs, gRPC messages."""
