"""Quantizing a registered version: `quantize_version` behind `maas optimize --quantize`.

It reads the parent from the registry, builds int8 candidates, measures them with the parent in one
run, applies the accuracy gate and the objective, and registers the winner as the next version of
the same model (or keeps the parent and says why).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from maas.actors import AnyActor
from maas.optimize import quantize as q
from maas.optimize.candidates import (
    Decision,
    Measured,
    Objective,
    accuracy_of,
    choose,
    judge,
    time_models,
)
from maas.optimize.gate import QUANTIZE_MAX_DROP_POINTS, AccuracyGateFailed
from maas.optimize.registration import (
    OptimizeOutcome,
    measured_dict,
    parent_files,
    register_child,
)
from maas.optimize.source import SourceVersion, load_source, require_float
from maas.registry.store import Registry

log = logging.getLogger(__name__)

QuantizeMode = Literal["dynamic", "static"]


@dataclass(frozen=True)
class QuantizeRequest:
    """What `maas optimize --quantize` asks for.

    Attributes:
        mode: dynamic (int8 weights, activations at run time) or static (calibrated QDQ).
        objective: latency (keep int8 only if faster) or size (smallest that passes the gate).
        max_drop_points: the accuracy gate, in points of test accuracy.
        static: calibration settings for static mode.
    """

    mode: QuantizeMode = "static"
    objective: Objective = "latency"
    max_drop_points: float = QUANTIZE_MAX_DROP_POINTS
    static: q.StaticOptions = field(default_factory=q.StaticOptions)


def _static_candidates(
    source: SourceVersion, prepared: bytes, request: QuantizeRequest, parent_val_acc: float
) -> list[Measured]:
    opts = request.static
    cal = q.calibration_rows(source.splits.train_x, opts.samples, opts.seed)
    test_x, test_y = source.test_x, source.splits.test_y
    calibration = {"method": opts.method, "samples": len(cal)}
    full = q.quantize_static_int8(prepared, cal, opts)
    compact_opts = q.StaticOptions(opts.method, opts.samples, per_channel=False, seed=opts.seed)
    compact = q.quantize_static_int8(prepared, cal, compact_opts, compact=True)
    out = [
        Measured(
            "int8",
            "int8",
            full,
            accuracy_of(full, test_x, test_y),
            details={"calibration": calibration, "per_channel": opts.per_channel},
        ),
        Measured(
            "int8-compact",
            "int8",
            compact,
            accuracy_of(compact, test_x, test_y),
            details={"calibration": calibration, "per_channel": False, "float_bias": True},
        ),
    ]
    full_drop = (parent_val_acc - _val_accuracy(full, source)) * 100.0
    if full_drop > request.max_drop_points:
        partial = _partial_candidate(source, prepared, full, cal, request, parent_val_acc)
        if partial is not None:
            out.append(partial)
    return out


def _val_accuracy(model_bytes: bytes, source: SourceVersion) -> float:
    val_x = np.ascontiguousarray(source.splits.validation_x, dtype=np.float32)
    return accuracy_of(model_bytes, val_x, source.splits.validation_y)


def _partial_candidate(
    source: SourceVersion,
    prepared: bytes,
    full: bytes,
    cal: np.ndarray,
    request: QuantizeRequest,
    parent_val_acc: float,
) -> Measured | None:
    """Keep the most damaged layers in fp32, one more at a time, until validation accuracy holds.

    The search looks at the validation split only; the test split stays for the gate.
    """
    ranked = q.rank_sensitive_layers(prepared, full, source.splits.validation_x)
    for count in range(1, len(ranked)):
        excluded = [e.node for e in ranked[:count]]
        model = q.quantize_static_int8(prepared, cal, request.static, exclude=excluded)
        drop = (parent_val_acc - _val_accuracy(model, source)) * 100.0
        log.info("quantize.partial", extra={"excluded": excluded, "drop_points": drop})
        if drop <= request.max_drop_points:
            return Measured(
                "int8-partial",
                "int8-partial",
                model,
                accuracy_of(model, source.test_x, source.splits.test_y),
                details={
                    "excluded_layers": excluded,
                    "layer_sqnr_db": {e.node: round(e.score_db, 2) for e in ranked},
                    "calibration": {"method": request.static.method, "samples": len(cal)},
                },
            )
    return None


def _candidates(source: SourceVersion, request: QuantizeRequest) -> tuple[Measured, list[Measured]]:
    prepared = q.prepare_graph(source.onnx_bytes)
    parent = Measured(
        "fp32",
        "fp32",
        source.onnx_bytes,
        accuracy_of(source.onnx_bytes, source.test_x, source.splits.test_y),
    )
    if request.mode == "dynamic":
        dyn = q.quantize_dynamic_int8(prepared)
        acc = accuracy_of(dyn, source.test_x, source.splits.test_y)
        return parent, [Measured("int8-dynamic", "int8", dyn, acc, details={"dynamic": True})]
    parent_val = _val_accuracy(source.onnx_bytes, source)
    return parent, _static_candidates(source, prepared, request, parent_val)


def _refuse_if_no_pass(decision: Decision, source: SourceVersion) -> None:
    if any(j.gate.passed for j in decision.judged):
        return
    best = max(decision.judged, key=lambda j: j.candidate.test_accuracy)
    raise AccuracyGateFailed(
        f"accuracy gate failed: the best int8 candidate of {source.version.ref} "
        f"({best.candidate.variant}) has {best.gate.describe()}; nothing registered "
        "(raise --max-accuracy-drop to accept it)"
    )


def quantize_version(
    registry: Registry,
    name: str,
    ref: str | int,
    request: QuantizeRequest,
    *,
    actor: AnyActor = None,
) -> OptimizeOutcome:
    """Quantize a version to int8 and register the variant the objective prefers.

    Raises:
        ModelNotFound: no such version.
        InvalidInput: the version has no training spec, or an option is invalid.
        AccuracyGateFailed: no candidate keeps accuracy within the gate.
    """
    require_float(registry.get(name, ref), "quantize")
    source = load_source(registry, name, ref)
    parent, candidates = _candidates(source, request)
    timed = time_models([parent, *candidates], source.test_x)
    parent, candidates = timed[0], timed[1:]
    decision = choose(parent, judge(parent, candidates, request.max_drop_points), request.objective)
    log.info("quantize.decided", extra={"model": source.version.ref, "reason": decision.reason})
    _refuse_if_no_pass(decision, source)
    registered = None
    if decision.winner is not None:
        winner = decision.winner.candidate
        optimization = {
            "method": "quantize",
            "mode": request.mode,
            "variant": winner.variant,
            "objective": request.objective,
            "max_accuracy_drop_points": request.max_drop_points,
            "reason": decision.reason,
            "candidates": [j.to_dict() for j in decision.judged],
            **winner.details,
        }
        registered = register_child(
            registry,
            source,
            decision.winner,
            parent,
            parameters=float(source.version.metrics.get("parameters", 0.0)),
            optimization=optimization,
            files=parent_files(registry, source.version),
            lineage_updates={"quantized_from_float_weights": True},
            actor=actor,
        )
    return OptimizeOutcome(
        parent_ref=source.version.ref,
        action="quantize",
        reason=decision.reason,
        registered=registered,
        parent=measured_dict(parent),
        candidates=[j.to_dict() for j in decision.judged],
    )
