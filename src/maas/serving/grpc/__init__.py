"""The gRPC front end: `inference.GRPCInferenceService` over one `DataPlane` (see server.py)."""
