"""The train -> export -> validate -> register pipeline behind `maas train`.

Each stage is a plain function of its own package; this module only sequences them and keeps
the run's files (checkpoints, export folder, history) under `MAAS_HOME/runs/<name>-<spec hash>/`.
"""

from __future__ import annotations

import getpass
import json
import logging
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors.torch import save as save_safetensors

import maas
from maas.config import Settings
from maas.export.onnx import INPUT_NAME, OUTPUT_NAMES, export_onnx
from maas.export.validate import ValidationReport, validate_export
from maas.registry.store import Registry
from maas.registry.versions import ModelVersion
from maas.security.signing import required_verifier
from maas.signature import Signature, TensorSpec
from maas.train.data import Dataset, Scaler, Splits, fit_scaler, load_dataset, split_dataset
from maas.train.loop import TrainObserver, TrainOutcome, evaluate, train_model
from maas.train.models import ServingModule, build_model, count_parameters
from maas.train.spec import Spec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What one `maas train` produced."""

    spec: Spec
    run_dir: Path
    export_dir: Path
    metrics: dict[str, float]
    history: list[dict[str, float]]
    version: ModelVersion | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Prepared:
    dataset: Dataset
    splits: Splits
    scaler: Scaler


def run_dir_for(settings: Settings, spec: Spec) -> Path:
    """The folder of this spec's training run (same spec -> same folder, so --resume finds it)."""
    return settings.runs_dir / f"{spec.name}-{spec.fingerprint()}"


def prepare_data(spec: Spec, base_dir: Path | None) -> _Prepared:
    """Load, split and fit the scaler on the training rows only."""
    dataset = load_dataset(spec.data, base_dir)
    splits = split_dataset(dataset, spec.data.split, spec.seed)
    scaler = fit_scaler(splits.train_x, spec.data.scaling)
    return _Prepared(dataset, splits, scaler)


def scale_splits(splits: Splits, scaler: Scaler) -> Splits:
    """The splits with the scaler applied to every feature matrix (what the core model sees)."""
    return Splits(
        train_x=scaler.transform(splits.train_x),
        train_y=splits.train_y,
        validation_x=scaler.transform(splits.validation_x),
        validation_y=splits.validation_y,
        test_x=scaler.transform(splits.test_x),
        test_y=splits.test_y,
    )


def _signature(n_features: int, n_classes: int) -> Signature:
    return Signature(
        inputs=(TensorSpec(INPUT_NAME, "FP32", (-1, n_features)),),
        outputs=(
            TensorSpec(OUTPUT_NAMES[0], "FP32", (-1, n_classes)),
            TensorSpec(OUTPUT_NAMES[1], "INT64", (-1,)),
        ),
    )


def _lineage(
    spec: Spec, prep: _Prepared, outcome: TrainOutcome, export: dict[str, Any]
) -> dict[str, Any]:
    dataset = {
        "source": spec.data.source,
        "fingerprint": prep.dataset.fingerprint,
        "rows": len(prep.dataset.targets),
        "features": int(prep.dataset.features.shape[1]),
    }
    return run_lineage(spec, outcome, export, dataset=dataset, preprocessing=prep.scaler.to_dict())


def run_lineage(
    spec: Spec, outcome: TrainOutcome, export: dict[str, Any], **about_data: Any
) -> dict[str, Any]:
    """A training run's lineage: the spec, the run, what the data was (`about_data`, in order),
    the export and how training went."""
    return {
        "spec": spec.to_dict(),
        "run_id": f"{spec.name}-{spec.fingerprint()}",
        **about_data,
        "parent_version": None,
        "package_version": maas.__version__,
        "export": export,
        "best_epoch": outcome.best_epoch,
        "epochs_run": outcome.epochs_run,
        "stopped_early": outcome.stopped_early,
        "python": platform.python_version(),
    }


def export_files(
    spec: Spec,
    onnx_bytes: bytes,
    module: torch.nn.Module,
    manifest: dict[str, Any],
    history: list[dict[str, float]],
) -> dict[str, bytes]:
    """The files every export folder has: graph, weights, spec, history and manifest."""
    weights = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
    return {
        "model.onnx": onnx_bytes,
        "weights.safetensors": save_safetensors(weights),
        "spec.yaml": yaml.safe_dump(spec.to_dict(), sort_keys=False).encode(),
        "history.json": json.dumps(history, indent=1).encode(),
        "manifest.json": json.dumps(manifest, indent=1, sort_keys=True).encode(),
    }


def write_export(export_dir: Path, files: dict[str, bytes]) -> None:
    """Write the export folder atomically enough: a staging folder renamed into place."""
    staging = export_dir.with_name(export_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name, data in files.items():
        (staging / name).write_bytes(data)
    shutil.rmtree(export_dir, ignore_errors=True)
    staging.rename(export_dir)


def register_run(
    settings: Settings, export_dir: Path, *, source: str, actor: str | None
) -> ModelVersion:
    """Register an export folder as a new version (signed, when the settings require it)."""
    verifier = required_verifier(settings.security)
    registry = Registry.from_settings(settings, source=source, signature_verifier=verifier)
    try:
        return registry.register_export(export_dir, actor=actor or getpass.getuser())
    finally:
        registry.close()


def train(
    spec: Spec,
    settings: Settings,
    *,
    base_dir: Path | None = None,
    resume: bool = False,
    register: bool = True,
    observer: TrainObserver | None = None,
    actor: str | None = None,
    source: str = "api",
) -> TrainResult:
    """Train the spec's model, export it to ONNX, validate it and (unless told not to) register it.

    Args:
        spec: a validated spec (see `maas.train.spec.load_spec`).
        settings: where runs and the registry live.
        base_dir: folder that relative data paths are resolved against (the spec file's folder).
        resume: continue from the run's newest checkpoint.
        register: record the validated model as a new registry version.
        observer: progress reporting.
        actor: who registers (audit log); defaults to the OS user.
        source: where the action came from, for the audit log ("api", "cli").

    Returns:
        The run's folders, metrics, history and the registered version.
    """
    if spec.model.kind == "gpt":
        from maas.causal_lm_pipeline import train_causal_lm

        return train_causal_lm(
            spec,
            settings,
            base_dir=base_dir,
            resume=resume,
            register=register,
            observer=observer,
            actor=actor,
            source=source,
        )
    started = time.perf_counter()
    prep = prepare_data(spec, base_dir)
    scaled = scale_splits(prep.splits, prep.scaler)
    n_features = int(prep.dataset.features.shape[1])
    n_classes = len(prep.dataset.labels)
    torch.manual_seed(spec.seed)
    core = build_model(spec.model, n_features, n_classes, prep.dataset.image_shape)
    run_dir = run_dir_for(settings, spec)
    outcome = train_model(
        core,
        scaled,
        spec.train,
        seed=spec.seed,
        checkpoint_dir=run_dir / "checkpoints",
        spec_hash=spec.fingerprint(),
        resume=resume,
        observer=observer,
    )
    test_x_t = torch.from_numpy(np.ascontiguousarray(scaled.test_x, dtype=np.float32))
    test_y_t = torch.from_numpy(np.ascontiguousarray(scaled.test_y, dtype=np.int64))
    torch_loss, torch_accuracy = evaluate(outcome.model, test_x_t, test_y_t)
    module = ServingModule(outcome.model, prep.scaler.offset, prep.scaler.scale).eval()
    raw_test_x = np.ascontiguousarray(prep.splits.test_x, dtype=np.float32)
    onnx_bytes, export_info = export_onnx(
        module, torch.from_numpy(raw_test_x[:2]), spec.export.opset
    )
    report: ValidationReport = validate_export(
        onnx_bytes,
        module,
        raw_test_x,
        prep.splits.test_y,
        parity_atol=spec.validate_.parity_atol,
        parity_samples=spec.validate_.parity_samples,
        min_test_accuracy=spec.validate_.min_test_accuracy,
    )
    last = outcome.history[-1] if outcome.history else {}
    metrics = report.to_metrics() | {
        "torch_test_accuracy": torch_accuracy,
        "torch_test_loss": torch_loss,
        "validation_accuracy": float(last.get("validation_accuracy", 0.0)),
        "validation_loss": float(last.get("validation_loss", 0.0)),
        "train_seconds": outcome.seconds,
        "total_seconds": time.perf_counter() - started,
        "parameters": float(count_parameters(outcome.model)),
        "size_bytes": float(len(onnx_bytes)),
    }
    manifest = {
        "name": spec.name,
        "signature": _signature(n_features, n_classes).to_dict(),
        "labels": list(prep.dataset.labels),
        "metrics": metrics,
        "lineage": _lineage(spec, prep, outcome, export_info.to_dict()),
        "files": ["weights.safetensors", "spec.yaml", "history.json"],
    }
    export_dir = run_dir / "export"
    write_export(export_dir, export_files(spec, onnx_bytes, module, manifest, outcome.history))
    version = register_run(settings, export_dir, source=source, actor=actor) if register else None
    log.info("train.finished", extra={"name": spec.name, "test_accuracy": report.test_accuracy})
    return TrainResult(spec, run_dir, export_dir, metrics, outcome.history, version)
