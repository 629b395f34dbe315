"""Serving: the data plane, the repository of loaded versions, and the REST and gRPC fronts.

The path of one request, in order:

1. The socket belongs to a maintained server: granian (`rest.server`, HTTP/1.1 and HTTP/2, TLS)
   or grpc.aio (`grpc.server`). They parse and frame the protocol; maas writes no HTTP code.
2. The front end makes a `context.RequestContext` (request id, deadline, protocol; the caller
   once admitted). REST finds the route in the one table of `rest.routes` (method, path shape,
   endpoint kind, handler); gRPC names each method's kind in `security.acl`.
3. `admission.Admission` admits the request, on both transports: authentication, the scope the
   endpoint kind needs, the caller's and the model's rate limits, the size limits.
4. REST reads the body (up to the model's limit, under the deadline) and decodes it
   (`protocol.http`); gRPC decodes the message (`grpc.codec`).
5. `dataplane.DataPlane.infer(request, context)` resolves the version (`repository`: aliases,
   routes, canary split, shadow), validates the request against its signature (`validation`:
   shapes, types, rows, outputs named once), and queues it on the version's batcher
   (`batching.batcher`), which runs onnxruntime in its own threads. Generative versions go to
   their continuous-batching scheduler instead (`generative`, `maas.generate`).
6. The answer's size is checked before it is built (`response_size`), then encoded and sent.

Versions are loaded by one path (`loading.VersionLoader`: plan, load, warm up, swap) at start-up
and at every pick-up (`manager.ModelManager`), and the objects of a server are built in one
composition root (`server.build_server`). `workers` runs several such servers on shared ports.
"""
