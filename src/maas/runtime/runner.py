"""`ModelRunner`: owns one onnxruntime session for one model version."""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

import numpy as np

from maas.errors import MaasError

log = logging.getLogger(__name__)


class Runner(Protocol):
    """What the batcher needs from a loaded model: named arrays in, named arrays out."""

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on one (already batched) set of inputs."""
        ...


class RunnerError(MaasError):
    """The model could not be loaded or failed on inputs that passed validation."""


class ModelRunner:
    """One onnxruntime session over an ONNX model held in memory.

    The session runs sequentially with `intra_op_threads` threads for one operator and a single
    inter-op thread: the server gets its parallelism from several instances (one thread each),
    not from oversubscribing the cores inside one call.

    Args:
        model_bytes: the ONNX model (already digest-verified by the registry).
        intra_op_threads: threads onnxruntime may use inside one operator.
        name: a label for logs (`model@version`).
    """

    def __init__(self, model_bytes: bytes, *, intra_op_threads: int = 1, name: str = "") -> None:
        if intra_op_threads < 1:
            raise RunnerError(f"intra_op_threads must be at least 1, got {intra_op_threads}")
        self._model_bytes = model_bytes
        self._intra_op_threads = intra_op_threads
        self._name = name
        self._session: Any = None
        self._output_names: list[str] = []
        self._lock = threading.Lock()

    @property
    def is_loaded(self) -> bool:
        """Whether `load()` has run and `close()` has not."""
        return self._session is not None

    def load(self) -> None:
        """Create the onnxruntime session (graph optimizations on); idempotent."""
        import onnxruntime as ort

        with self._lock:
            if self._session is not None:
                return
            options = ort.SessionOptions()
            options.intra_op_num_threads = self._intra_op_threads
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            try:
                session = ort.InferenceSession(
                    self._model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
                )
            except Exception as err:  # onnxruntime raises its own untyped errors
                raise RunnerError(f"cannot load model {self._name}: {err}") from err
            self._output_names = [o.name for o in session.get_outputs()]
            self._session = session
        log.debug("runner.loaded", extra={"model": self._name})

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model once; returns every output by name.

        Raises:
            RunnerError: the runner is not loaded, or onnxruntime rejected the inputs.
        """
        session = self._session
        if session is None:
            raise RunnerError(f"model {self._name} is not loaded")
        try:
            results = session.run(self._output_names, inputs)
        except Exception as err:  # onnxruntime raises its own untyped errors
            raise RunnerError(f"model {self._name} failed: {err}") from err
        return dict(zip(self._output_names, results, strict=True))

    def tensor_names(self) -> tuple[list[str], list[str]]:
        """The graph's input and output names.

        Raises:
            RunnerError: the runner is not loaded.
        """
        session = self._session
        if session is None:
            raise RunnerError(f"model {self._name} is not loaded")
        return [i.name for i in session.get_inputs()], list(self._output_names)

    def close(self) -> None:
        """Release the session; `load()` may be called again."""
        with self._lock:
            self._session = None
