"""`VersionLoader`: the one way a server loads a version, at start-up and at every pick-up.

Loading is: pick the batching policy (settings, or the configuration tuned with the version),
read the artifact through the registry (digest, decryption and signature checked there), load
one onnxruntime session per instance, warm each instance up with a row of zeros, then start the
version's batcher. A version that fails any step is refused: nothing of it keeps running, and
why is kept (routing tables show it as the model's `load_failures`), counted in
`maas_version_load_failures_total` and logged, until it loads or leaves the plan.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from maas.batching.batcher import Batcher
from maas.batching.policy import BatchPolicy
from maas.errors import MaasError
from maas.metrics.prometheus import ServingMetrics
from maas.metrics.rollout import RolloutMetrics
from maas.runtime.runner import ModelRunner
from maas.serving.generative import generation_config_of, load_generative_version
from maas.serving.options import ServingConfig
from maas.serving.repository import LoadedVersion, ModelSource
from maas.serving.tuned import policy_for_version
from maas.signature import V2_TO_NUMPY, Signature

if TYPE_CHECKING:
    from maas.registry.versions import ModelVersion

log = logging.getLogger(__name__)

VersionKey = tuple[str, int]  # (model, version number)
RETRY_FAILED_S = 30.0  # a failed version is tried again this often (a fixed artifact heals)


@dataclass(frozen=True)
class LoadFailure:
    """Why a version was refused, when it was last tried (monotonic seconds) and how often.

    `error` is what failed, kept so that a start-up that can load nothing at all raises it.
    """

    reason: str
    at: float
    attempts: int
    error: BaseException


class VersionLoader:
    """Loads versions for one server and keeps the failures of those it refused.

    Args:
        source: the registry the artifacts are read from (and tuned configurations, if it has
            them).
        config: the server's settings: policies, pinned fields, the request timeout.
        metrics: the server's metric families (each loaded version registers its own).
        rollout: the roll-out metric families (failed loads are counted there).
    """

    def __init__(
        self,
        source: ModelSource,
        config: ServingConfig,
        metrics: ServingMetrics,
        rollout: RolloutMetrics,
    ) -> None:
        self._source = source
        self.config = config
        self.metrics = metrics
        self.rollout = rollout
        self._failures: dict[VersionKey, LoadFailure] = {}

    @property
    def failures(self) -> Mapping[VersionKey, LoadFailure]:
        """Version -> why it was refused, for every refused version still wanted."""
        return self._failures

    def reasons(self) -> dict[VersionKey, str]:
        """Version -> why it was refused (what routing tables show)."""
        return {key: failure.reason for key, failure in self._failures.items()}

    def is_due(self, key: VersionKey, *, retry_failed: bool = False) -> bool:
        """Whether to try `key` now: never failed, `retry_failed`, or its last try is old."""
        failure = self._failures.get(key)
        if failure is None or retry_failed:
            return True
        return time.monotonic() - failure.at >= RETRY_FAILED_S

    def forget(self, wanted: set[VersionKey]) -> None:
        """Drop the failures of versions no longer wanted."""
        for key in [key for key in self._failures if key not in wanted]:
            del self._failures[key]

    def load(self, mv: ModelVersion) -> LoadedVersion | None:
        """Load, warm up and start `mv` (blocking); None when it was refused (see `failures`)."""
        key = (mv.name, mv.version)
        try:
            policy = policy_for_version(self.config, self._source, mv)
            if generation_config_of(mv.lineage) is not None:  # a causal LM: its own scheduler
                generative = load_generative_version(
                    self._source, mv, policy, self.metrics, self.config.generation
                )
                return self._loaded(mv, generative)
            policy, runners = open_runners(self._source, mv, policy)
        except Exception as err:  # a missing file, a digest mismatch, a model ORT refuses
            self._refuse(key, f"load failed: {err}", err)
            return None
        try:
            for runner in runners:
                warm_up(runner, mv.signature)
        except Exception as err:  # the model fails on a plain row of zeros
            for runner in runners:
                runner.close()
            self._refuse(key, f"warm-up failed: {err}", err)
            return None
        return self._loaded(mv, start_version(mv, policy, runners, self.metrics))

    def _loaded(self, mv: ModelVersion, loaded: LoadedVersion) -> LoadedVersion:
        self._failures.pop((mv.name, mv.version), None)
        self.rollout.on_loaded(mv.name, str(mv.version))
        return loaded

    def _refuse(self, key: VersionKey, reason: str, err: BaseException) -> None:
        name, number = key
        previous = self._failures.get(key)
        attempts = 1 if previous is None else previous.attempts + 1
        self._failures[key] = LoadFailure(reason, time.monotonic(), attempts, err)
        self.rollout.on_load_failed(name, str(number))
        log.error(
            "version.load_failed",
            exc_info=err if not isinstance(err, MaasError) else None,
            extra={"model": name, "version": number, "reason": reason},
        )


def open_runners(
    source: ModelSource, mv: ModelVersion, policy: BatchPolicy
) -> tuple[BatchPolicy, list[ModelRunner]]:
    """Read `mv`'s artifact and load one session per instance; the policy they run under
    (one row at a time for a model without a batch dimension)."""
    model_bytes = source.read_artifact(mv)
    if not is_batchable_signature(mv.signature) and policy.max_batch_size != 1:
        policy = BatchPolicy(
            max_batch_size=1,
            max_queue_delay_us=0,
            instances=policy.instances,
            intra_op_threads=policy.intra_op_threads,
            max_queue_size=policy.max_queue_size,
        )
    label = f"{mv.name}:{mv.version}"
    runners = [
        ModelRunner(model_bytes, intra_op_threads=policy.intra_op_threads, name=label)
        for _ in range(policy.instances)
    ]
    try:
        for runner in runners:
            runner.load()
    except BaseException:
        for runner in runners:
            runner.close()
        raise
    return policy, runners


def warm_up(runner: ModelRunner, signature: Signature) -> None:
    """Run one row of zeros so the first real request does not pay for lazy set-up; a model
    with strings or unknown sizes among its inputs is not warmed (nothing sensible to invent).

    Raises:
        MaasError: the model failed on the zeros.
    """
    inputs: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        dims = [1 if d == -1 and i == 0 else d for i, d in enumerate(spec.shape)]
        if spec.datatype == "BYTES" or any(d < 0 for d in dims):
            return
        inputs[spec.name] = np.zeros(dims, dtype=V2_TO_NUMPY[spec.datatype])
    runner.infer(inputs)


def start_version(
    mv: ModelVersion, policy: BatchPolicy, runners: list[ModelRunner], metrics: ServingMetrics
) -> LoadedVersion:
    """Start the batcher of `mv`'s warmed runners; the version is ready to answer."""
    label = f"{mv.name}:{mv.version}"
    version_metrics = metrics.for_version(mv.name, str(mv.version))
    batcher = Batcher(runners, policy, observer=version_metrics, name=label)
    version_metrics.watch_queue(lambda: float(batcher.queue_depth))
    batcher.start()
    log.info("version.loaded", extra={"model": mv.name, "version": mv.version})
    return LoadedVersion(mv, policy, batcher, version_metrics, is_batchable_signature(mv.signature))


def is_batchable_signature(signature: Signature) -> bool:
    """Whether every input and output has a dynamic first (batch) dimension."""
    tensors = (*signature.inputs, *signature.outputs)
    return all(t.shape and t.shape[0] == -1 for t in tensors)
