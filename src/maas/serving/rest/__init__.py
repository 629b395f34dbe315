"""The REST front end of the Open Inference Protocol v2: a lean ASGI app on `http1`."""
