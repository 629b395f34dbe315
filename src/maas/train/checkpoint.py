"""Checkpoints as safetensors + JSON (never pickles), written atomically every epoch.

Layout of a run's `checkpoints/` folder:
    epoch-0003/model.safetensors      weights after epoch 3
    epoch-0003/best.safetensors       best weights so far (early stopping restores them)
    epoch-0003/optimizer.safetensors  optimizer tensors (moments, steps)
    epoch-0003/state.json             epoch, RNG, scheduler, early stopping, history, spec hash
    latest.json                       {"epoch": 3, "dir": "epoch-0003"}: replaced atomically last

A run killed at any moment leaves `latest.json` naming a complete checkpoint (or none at all).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from maas.errors import ResumeError

LATEST = "latest.json"


@dataclass(frozen=True)
class TrainState:
    """Everything besides tensors that a resumed run needs to continue bit-identically."""

    epoch: int
    spec_hash: str
    rng_state: bytes
    scheduler: dict[str, Any]
    optimizer_meta: dict[str, Any]
    best_loss: float
    best_epoch: int
    bad_epochs: int
    history: list[dict[str, float]]

    def to_json(self) -> dict[str, Any]:
        doc = self.__dict__.copy()
        doc["rng_state"] = base64.b64encode(self.rng_state).decode()
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> TrainState:
        doc = dict(doc)
        doc["rng_state"] = base64.b64decode(doc["rng_state"])
        return cls(**doc)


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read back from disk."""

    model: dict[str, torch.Tensor]
    best: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    state: TrainState


def _split_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimizer state -> (tensors for safetensors, the rest as JSON)."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, slots in state_dict["state"].items():
        for key, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value.detach().clone().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        index, _, key = name.partition(".")
        state.setdefault(int(index), {})[key] = tensor
    for index, slots in meta["scalars"].items():
        state.setdefault(int(index), {}).update(slots)
    return {"state": state, "param_groups": meta["param_groups"]}


def _write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as handle:
        json.dump(doc, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def save_checkpoint(
    folder: Path,
    model: dict[str, torch.Tensor],
    best: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
    state: TrainState,
) -> Path:
    """Write one epoch's checkpoint, then point `latest.json` at it and drop older ones."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"epoch-{state.epoch:04d}"
    target = folder / name
    staging = folder / f".{name}.{os.getpid()}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    opt_tensors, opt_meta = _split_optimizer(optimizer_state)
    save_file({k: v.contiguous() for k, v in model.items()}, str(staging / "model.safetensors"))
    save_file({k: v.contiguous() for k, v in best.items()}, str(staging / "best.safetensors"))
    save_file(opt_tensors, str(staging / "optimizer.safetensors"))
    state_doc = state.to_json() | {"optimizer_meta": opt_meta}
    (staging / "state.json").write_text(json.dumps(state_doc))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    _write_json_atomic(folder / LATEST, {"epoch": state.epoch, "dir": name})
    for old in folder.glob("epoch-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return target


def latest_epoch(folder: Path) -> int | None:
    """The epoch of the newest complete checkpoint, or None."""
    pointer = folder / LATEST
    if not pointer.exists():
        return None
    return int(json.loads(pointer.read_text())["epoch"])


def load_checkpoint(folder: Path, spec_hash: str) -> Checkpoint:
    """Read the newest complete checkpoint; refuse one made from a different spec."""
    pointer = folder / LATEST
    if not pointer.exists():
        raise ResumeError(f'no checkpoint to resume in "{folder}"; run without --resume')
    target = folder / json.loads(pointer.read_text())["dir"]
    state = TrainState.from_json(json.loads((target / "state.json").read_text()))
    if state.spec_hash != spec_hash:
        raise ResumeError(
            f'the checkpoint in "{folder}" was made from another spec; run without --resume'
        )
    optimizer = _join_optimizer(
        load_file(str(target / "optimizer.safetensors")), state.optimizer_meta
    )
    return Checkpoint(
        model=load_file(str(target / "model.safetensors")),
        best=load_file(str(target / "best.safetensors")),
        optimizer=optimizer,
        state=state,
    )


def clear_checkpoints(folder: Path) -> None:
    """Remove every checkpoint of a run (a fresh start)."""
    shutil.rmtree(folder, ignore_errors=True)
