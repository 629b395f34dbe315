"""Serving: the data plane, the repository of loaded versions, and the REST and gRPC fronts."""
