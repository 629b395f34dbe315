"""The reference server `make bench` compares `maas serve` with: a plain FastAPI + uvicorn app.

It is what a user would write by hand to put an ONNX model behind HTTP: one process, one
onnxruntime session per model, `session.run` once per request (no batching), answers built with
the standard library's json. It speaks just enough of the Open Inference Protocol v2 REST API
for perf_analyzer to drive it: health, server and model metadata, model configuration,
statistics (answered requests) and inference with JSON tensors or the binary tensor extension.

    python -m benchmarks.reference_app --models DIR --port 8000

serves every `DIR/<name>.onnx` as model `<name>`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastapi
import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse

HEADER_LENGTH = "inference-header-content-length"
MAX_BATCH_SIZE = 1024  # the app itself has no limit; perf_analyzer wants a figure to plan with
DATATYPES: dict[str, tuple[str, np.dtype[Any]]] = {  # onnxruntime type -> (v2, numpy)
    "tensor(float)": ("FP32", np.dtype(np.float32)),
    "tensor(double)": ("FP64", np.dtype(np.float64)),
    "tensor(int64)": ("INT64", np.dtype(np.int64)),
    "tensor(int32)": ("INT32", np.dtype(np.int32)),
}


@dataclass
class Model:
    """One served model: its session and how many requests it answered (for perf_analyzer)."""

    name: str
    session: ort.InferenceSession
    success_count: int = 0
    success_ns: int = 0
    run_ns: int = 0
    types: dict[str, tuple[str, np.dtype[Any]]] = field(default_factory=dict)  # by tensor name
    output_names: list[str] = field(default_factory=list)

    def count(self, request_ns: int, run_ns: int) -> None:
        """Count one answered request, its time in the handler and in `session.run`."""
        self.success_count += 1
        self.success_ns += request_ns
        self.run_ns += run_ns

    def tensor_info(self, node: Any) -> dict[str, Any]:
        datatype = DATATYPES[node.type][0]
        shape = [d if isinstance(d, int) else -1 for d in node.shape]
        return {"name": node.name, "datatype": datatype, "shape": shape}


def load_models(folder: Path) -> dict[str, Model]:
    """One single-threaded session per `*.onnx` file in `folder`, named after the file."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # like the in-process reference and one maas runner
    options.inter_op_num_threads = 1
    models = {}
    for path in sorted(folder.glob("*.onnx")):
        sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        types = {n.name: DATATYPES[n.type] for n in [*sess.get_inputs(), *sess.get_outputs()]}
        outputs = [n.name for n in sess.get_outputs()]
        models[path.stem] = Model(path.stem, sess, types=types, output_names=outputs)
    return models


def create_app(models: dict[str, Model]) -> FastAPI:
    """The FastAPI app serving `models` (every model route also under /versions/{version})."""
    app = FastAPI(title="reference v2 server")
    h = Handlers(models)
    app.add_exception_handler(HTTPException, h.error)
    for path in ("/v2/health/live", "/v2/health/ready"):
        app.add_api_route(path, h.ready)
    app.add_api_route("/v2", h.server_metadata)
    app.add_api_route("/v2/models/stats", h.all_stats)  # perf_analyzer's statistics call
    for model_path in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        app.add_api_route(model_path, h.model_metadata)
        app.add_api_route(f"{model_path}/ready", h.ready)
        app.add_api_route(f"{model_path}/config", h.model_config)
        app.add_api_route(f"{model_path}/stats", h.model_stats)
        app.add_api_route(f"{model_path}/infer", h.infer, methods=["POST"])
    return app


class Handlers:
    """The route handlers over the loaded models."""

    def __init__(self, models: dict[str, Model]) -> None:
        self.models = models

    def find(self, name: str) -> Model:
        if name not in self.models:
            raise HTTPException(404, f"unknown model {name}")
        return self.models[name]

    async def error(self, request: Request, exc: Exception) -> Response:
        """Errors in the v2 shape, {"error": message}."""
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return JSONResponse({"error": detail}, status_code=status)

    async def ready(self) -> dict[str, bool]:
        return {"ready": True}

    async def server_metadata(self) -> dict[str, Any]:
        extensions = ["binary_tensor_data", "model_configuration", "statistics"]
        return {"name": "reference", "version": "1", "extensions": extensions}

    async def all_stats(self) -> dict[str, Any]:
        return {"model_stats": [_stats(m) for m in self.models.values()]}

    async def model_metadata(self, name: str) -> dict[str, Any]:
        return _metadata(self.find(name))

    async def model_config(self, name: str) -> dict[str, Any]:
        return _config(self.find(name))

    async def model_stats(self, name: str) -> dict[str, Any]:
        return {"model_stats": [_stats(self.find(name))]}

    async def infer(self, name: str, request: Request) -> Response:
        """Decode, run the session once on the event loop (no batching), encode."""
        model = self.find(name)
        start = time.perf_counter_ns()
        body = await request.body()
        try:
            answer, run_ns = _infer(model, body, request.headers.get(HEADER_LENGTH))
        except (KeyError, ValueError, TypeError) as err:
            raise HTTPException(400, f"bad inference request: {err}") from err
        model.count(time.perf_counter_ns() - start, run_ns)
        return answer


def _infer(model: Model, body: bytes, header_length: str | None) -> tuple[Response, int]:
    split = int(header_length) if header_length else len(body)
    request = json.loads(body[:split])
    feeds = _decode_inputs(model, request["inputs"], memoryview(body)[split:])
    wanted = request.get("outputs") or [{"name": n} for n in model.output_names]
    as_binary = bool(request.get("parameters", {}).get("binary_data_output", False))
    binary = {
        o["name"]: bool(o.get("parameters", {}).get("binary_data", as_binary)) for o in wanted
    }
    start = time.perf_counter_ns()
    results = model.session.run(list(binary), feeds)
    run_ns = time.perf_counter_ns() - start
    return _encode_outputs(model, dict(zip(binary, results, strict=True)), binary), run_ns


def _decode_inputs(
    model: Model, inputs: list[dict[str, Any]], raw: memoryview
) -> dict[str, np.ndarray]:
    feeds, offset = {}, 0
    for item in inputs:
        dtype = model.types[item["name"]][1]
        size = item.get("parameters", {}).get("binary_data_size")
        if size is None:
            array = np.asarray(item["data"], dtype=dtype)
        else:
            array = np.frombuffer(raw[offset : offset + size], dtype=dtype)
            offset += size
        feeds[item["name"]] = array.reshape(item["shape"])
    return feeds


def _encode_outputs(
    model: Model, results: dict[str, np.ndarray], binary: dict[str, bool]
) -> Response:
    outputs, chunks = [], []
    for name, array in results.items():
        entry: dict[str, Any] = {
            "name": name,
            "datatype": model.types[name][0],
            "shape": list(array.shape),
        }
        if binary[name]:
            chunk = np.ascontiguousarray(array).tobytes()
            entry["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        else:
            entry["data"] = array.ravel().tolist()
        outputs.append(entry)
    document = {"model_name": model.name, "model_version": "1", "outputs": outputs}
    if not chunks:
        return JSONResponse(document)
    header = json.dumps(document).encode()
    return Response(
        b"".join([header, *chunks]),
        media_type="application/octet-stream",
        headers={HEADER_LENGTH: str(len(header))},
    )


def _metadata(model: Model) -> dict[str, Any]:
    return {
        "name": model.name,
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": [model.tensor_info(n) for n in model.session.get_inputs()],
        "outputs": [model.tensor_info(n) for n in model.session.get_outputs()],
    }


def _config(model: Model) -> dict[str, Any]:
    def dims(node: Any) -> list[int]:
        return [d if isinstance(d, int) else -1 for d in node.shape[1:]]

    def entry(node: Any) -> dict[str, Any]:
        datatype = DATATYPES[node.type][0]
        return {"name": node.name, "data_type": f"TYPE_{datatype}", "dims": dims(node)}

    return {
        "name": model.name,
        "version": "1",
        "platform": "onnxruntime_onnx",
        "backend": "onnxruntime",
        "max_batch_size": MAX_BATCH_SIZE,
        "input": [entry(n) for n in model.session.get_inputs()],
        "output": [entry(n) for n in model.session.get_outputs()],
        "instance_group": [{"count": 1, "kind": "KIND_CPU"}],
    }


def _stats(model: Model) -> dict[str, Any]:
    """Statistics in the v2 shape, as perf_analyzer reads them: it finds the model version
    whose queue count grew and wants equal compute counts, so every answered request counts
    once in each (queued for no time, decoding and encoding untimed: only the run is timed)."""
    answered = model.success_count
    untimed = {"count": answered, "ns": 0}
    return {
        "name": model.name,
        "version": "1",
        "last_inference": 0,
        "inference_count": answered,
        "execution_count": answered,
        "inference_stats": {
            "success": {"count": answered, "ns": model.success_ns},
            "fail": {"count": 0, "ns": 0},
            "queue": untimed,
            "compute_input": untimed,
            "compute_infer": {"count": answered, "ns": model.run_ns},
            "compute_output": untimed,
        },
        "batch_stats": [],
    }


def describe_reference() -> str:
    """The frameworks the app runs on, as uvicorn's defaults pick them here."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    parser = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return (
        f"FastAPI {fastapi.__version__} on uvicorn {uvicorn.__version__} (its defaults pick "
        f"the {loop} event loop and the {parser} HTTP parser)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=Path, required=True, help="folder of <name>.onnx files")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    app = create_app(load_models(args.models))
    # No access log: one line per request would cost the reference more than maas pays.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
