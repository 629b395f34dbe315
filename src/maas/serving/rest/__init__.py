"""The REST front end of the Open Inference Protocol v2 (a lean ASGI app on our own HTTP/1.1 server, `http1`)."""
