"""The training loop: forward, backward, optimizer step; a checkpoint after every epoch.

Reproducibility contract: the same spec and seed give bit-identical weights, and a run stopped
after any epoch and resumed gives the same weights as one that never stopped. The data order of
epoch e comes from its own generator seeded by (seed, e); dropout draws from the global RNG whose
state is saved in every checkpoint with the optimizer, scheduler and early-stopping state.

Rows are feature vectors with one class each (logits [N, K]) or token windows with a next token
per position (logits [N, T, V]); loss and accuracy are taken over every target either way.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from maas.train.checkpoint import (
    TrainState,
    clear_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from maas.train.data import Splits
from maas.train.spec import TrainSpec

log = logging.getLogger(__name__)

EVAL_BATCH = 1024  # evaluation targets per batch: fast, yet small enough for any laptop


class TrainObserver(Protocol):
    """Receives progress (a progress bar in the CLI); every method is optional work."""

    def on_epoch_start(self, epoch: int, epochs: int, steps: int) -> None: ...

    def on_step(self, loss: float, accuracy: float) -> None: ...

    def on_epoch_end(self, metrics: dict[str, float]) -> None: ...


class SilentObserver:
    """An observer that reports nothing (the Python API's default)."""

    def on_epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        return None

    def on_step(self, loss: float, accuracy: float) -> None:
        return None

    def on_epoch_end(self, metrics: dict[str, float]) -> None:
        return None


@dataclass(frozen=True)
class TrainOutcome:
    """What the loop produced: the model holding its final weights and the per-epoch history."""

    model: nn.Module
    history: list[dict[str, float]]
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    resumed_from: int | None
    seconds: float


def build_optimizer(model: nn.Module, spec: TrainSpec) -> torch.optim.Optimizer:
    """The optimizer the spec names."""
    params = model.parameters()
    if spec.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay
        )
    if spec.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)


def build_scheduler(
    optimizer: torch.optim.Optimizer, spec: TrainSpec
) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning-rate schedule the spec names (stepped once per epoch)."""
    sched = spec.schedule
    if sched.kind == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, sched.step_size, sched.gamma)
    if sched.kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=spec.epochs)
    if sched.kind == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, sched.gamma)
    # A constant rate is a step schedule that never changes the rate (its state is plain JSON).
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=1.0)


def _scheduler_state(scheduler: torch.optim.lr_scheduler.LRScheduler) -> dict[str, Any]:
    state = scheduler.state_dict()
    return {k: v for k, v in state.items() if isinstance(v, int | float | list | bool | None)}


def epoch_order(n_rows: int, seed: int, epoch: int) -> torch.Tensor:
    """The row order of one epoch, a pure function of (seed, epoch)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n_rows, generator=generator)


def as_tensor(rows: np.ndarray) -> torch.Tensor:
    """Rows as a tensor: token ids stay int64, features become float32."""
    dtype = np.int64 if np.issubdtype(rows.dtype, np.integer) else np.float32
    return torch.from_numpy(np.ascontiguousarray(rows, dtype=dtype))


def target_loss(
    logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Cross-entropy over every target: one per row, or one per position of a sequence."""
    return nn.functional.cross_entropy(logits.flatten(0, -2), target.flatten(), reduction=reduction)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of `model` over every target of (x, y)."""
    model.eval()
    total_loss, correct = 0.0, 0
    rows = max(1, EVAL_BATCH // max(1, y[0].numel() if len(y) else 1))
    with torch.no_grad():
        for start in range(0, len(x), rows):
            logits = model(x[start : start + rows])
            target = y[start : start + rows]
            total_loss += float(target_loss(logits, target, reduction="sum"))
            correct += int((logits.argmax(-1) == target).sum())
    return total_loss / max(y.numel(), 1), correct / max(y.numel(), 1)


class _Loop:
    """One run of the loop over prepared tensors (a small class so each step stays short)."""

    def __init__(
        self,
        model: nn.Module,
        splits: Splits,
        spec: TrainSpec,
        seed: int,
        observer: TrainObserver,
    ) -> None:
        self.model = model
        self.spec = spec
        self.seed = seed
        self.observer = observer
        self.train_x = as_tensor(splits.train_x)
        self.train_y = torch.from_numpy(np.ascontiguousarray(splits.train_y, dtype=np.int64))
        self.val_x = as_tensor(splits.validation_x)
        self.val_y = torch.from_numpy(np.ascontiguousarray(splits.validation_y, dtype=np.int64))
        self.optimizer = build_optimizer(model, spec)
        self.scheduler = build_scheduler(self.optimizer, spec)

    def run_epoch(self, epoch: int) -> dict[str, float]:
        started = time.perf_counter()
        self.model.train()
        order = epoch_order(len(self.train_x), self.seed, epoch)
        steps = math.ceil(len(order) / self.spec.batch_size)
        self.observer.on_epoch_start(epoch, self.spec.epochs, steps)
        loss_sum, correct, targets = 0.0, 0, 0
        for start in range(0, len(order), self.spec.batch_size):
            index = order[start : start + self.spec.batch_size]
            x, y = self.train_x[index], self.train_y[index]
            self.optimizer.zero_grad(set_to_none=True)
            logits = self.model(x)
            loss = target_loss(logits, y)
            loss.backward()  # type: ignore[no-untyped-call]  # torch stubs
            self.optimizer.step()
            batch_correct = int((logits.argmax(-1) == y).sum())
            loss_value = float(loss.detach())
            loss_sum += loss_value * y.numel()
            correct += batch_correct
            targets += y.numel()
            self.observer.on_step(loss_value, batch_correct / y.numel())
        lr = float(self.optimizer.param_groups[0]["lr"])
        self.scheduler.step()
        val_loss, val_accuracy = evaluate(self.model, self.val_x, self.val_y)
        return {
            "epoch": float(epoch),
            "train_loss": loss_sum / targets,
            "train_accuracy": correct / targets,
            "validation_loss": val_loss,
            "validation_accuracy": val_accuracy,
            "lr": lr,
            "seconds": time.perf_counter() - started,
        }


def _clone(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def train_model(
    model: nn.Module,
    splits: Splits,
    spec: TrainSpec,
    *,
    seed: int,
    checkpoint_dir: Path,
    spec_hash: str,
    resume: bool = False,
    observer: TrainObserver | None = None,
) -> TrainOutcome:
    """Train `model` (built under `torch.manual_seed(seed)`) with a checkpoint after every epoch.

    Args:
        model: the core model (scaled rows -> logits), freshly built.
        splits: train/validation/test arrays; only train and validation are used here.
        spec: optimizer, schedule, epochs, batch size, early stopping.
        seed: the spec's seed (data order and, through the caller, initial weights).
        checkpoint_dir: where this run's checkpoints live.
        spec_hash: fingerprint of the spec; a checkpoint from another spec is refused.
        resume: continue from the newest checkpoint instead of starting over.
        observer: progress reporting.

    Returns:
        The outcome; `model` holds the best weights when early stopping is on, else the last.
    """
    torch.set_num_threads(spec.threads)
    loop = _Loop(model, splits, spec, seed, observer or SilentObserver())
    state = TrainState(0, spec_hash, b"", {}, {}, math.inf, 0, 0, [])
    best = _clone(model)
    resumed_from: int | None = None
    if resume:
        ckpt = load_checkpoint(checkpoint_dir, spec_hash)
        model.load_state_dict(ckpt.model)
        loop.optimizer.load_state_dict(ckpt.optimizer)
        loop.scheduler.load_state_dict(ckpt.state.scheduler)
        torch.set_rng_state(torch.frombuffer(bytearray(ckpt.state.rng_state), dtype=torch.uint8))
        state, best, resumed_from = ckpt.state, ckpt.best, ckpt.state.epoch
        log.info("train.resumed", extra={"epoch": resumed_from})
    else:
        clear_checkpoints(checkpoint_dir)
    started = time.perf_counter()
    patience = spec.early_stopping.patience if spec.early_stopping else None
    min_delta = spec.early_stopping.min_delta if spec.early_stopping else 0.0
    epoch = state.epoch
    while epoch < spec.epochs and not (patience and state.bad_epochs >= patience):
        epoch += 1
        metrics = loop.run_epoch(epoch)
        improved = metrics["validation_loss"] < state.best_loss - min_delta
        if improved:
            best = _clone(model)
        state = TrainState(
            epoch=epoch,
            spec_hash=spec_hash,
            rng_state=bytes(torch.get_rng_state().numpy().tobytes()),
            scheduler=_scheduler_state(loop.scheduler),
            optimizer_meta={},
            best_loss=metrics["validation_loss"] if improved else state.best_loss,
            best_epoch=epoch if improved else state.best_epoch,
            bad_epochs=0 if improved else state.bad_epochs + 1,
            history=[*state.history, metrics],
        )
        save_checkpoint(checkpoint_dir, _clone(model), best, loop.optimizer.state_dict(), state)
        loop.observer.on_epoch_end(metrics)
    stopped_early = bool(patience and state.bad_epochs >= patience)
    if spec.early_stopping is not None:
        model.load_state_dict(best)
    model.eval()
    return TrainOutcome(
        model=model,
        history=state.history,
        best_epoch=state.best_epoch,
        epochs_run=state.epoch,
        stopped_early=stopped_early,
        resumed_from=resumed_from,
        seconds=time.perf_counter() - started,
    )
