"""The loop's contract: bit-identical reruns; resume after an interrupt equals a straight run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from maas.errors import ResumeError
from maas.pipeline import prepare_data, scale_splits
from maas.train.checkpoint import latest_epoch
from maas.train.loop import TrainOutcome, train_model
from maas.train.models import build_model
from maas.train.spec import Spec, parse_spec

BASE = {
    "name": "loop-test",
    "seed": 7,
    "data": {"source": "digits"},
    "model": {"kind": "mlp", "hidden_sizes": [32], "dropout": 0.2},
    "train": {
        "optimizer": "adam",
        "epochs": 5,
        "batch_size": 128,
        "schedule": {"kind": "step", "step_size": 2},
    },
}


def make_spec(**train: object) -> Spec:
    doc = {**BASE, "train": {**BASE["train"], **train}}  # type: ignore[dict-item]
    return parse_spec(doc)


def run(spec: Spec, ckpt: Path, resume: bool = False, observer: object = None) -> TrainOutcome:
    prep = prepare_data(spec, None)
    torch.manual_seed(spec.seed)
    model = build_model(spec.model, 64, 10, prep.dataset.image_shape)
    return train_model(
        model,
        scale_splits(prep.splits, prep.scaler),
        spec.train,
        seed=spec.seed,
        checkpoint_dir=ckpt,
        spec_hash=spec.fingerprint(),
        resume=resume,
        observer=observer,  # type: ignore[arg-type]
    )


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


class StopAt:
    """Raises KeyboardInterrupt in the middle of epoch `epoch` (after `steps` steps)."""

    def __init__(self, epoch: int, steps: int) -> None:
        self.epoch, self.steps, self.current, self.seen = epoch, steps, 0, 0

    def on_epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        self.current, self.seen = epoch, 0

    def on_step(self, loss: float, accuracy: float) -> None:
        self.seen += 1
        if self.current == self.epoch and self.seen == self.steps:
            raise KeyboardInterrupt

    def on_epoch_end(self, metrics: dict[str, float]) -> None:
        return None


def test_same_spec_and_seed_give_identical_weights(tmp_path: Path) -> None:
    spec = make_spec()
    first = run(spec, tmp_path / "a")
    second = run(spec, tmp_path / "b")
    assert_same_weights(first.model, second.model)
    assert first.history[-1]["train_loss"] == second.history[-1]["train_loss"]
    other = run(parse_spec({**BASE, "seed": 8}), tmp_path / "c")
    assert not torch.equal(
        first.model.state_dict()["layers.0.weight"], other.model.state_dict()["layers.0.weight"]
    )


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "adamw"])
def test_interrupt_mid_epoch_then_resume_equals_straight_run(
    tmp_path: Path, optimizer: str
) -> None:
    spec = make_spec(optimizer=optimizer)
    straight = run(spec, tmp_path / "straight")
    ckpt = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        run(spec, ckpt, observer=StopAt(epoch=3, steps=4))
    assert latest_epoch(ckpt) == 2
    resumed = run(spec, ckpt, resume=True)
    assert resumed.resumed_from == 2
    assert resumed.epochs_run == 5
    assert_same_weights(straight.model, resumed.model)
    assert [h["validation_loss"] for h in resumed.history] == [
        h["validation_loss"] for h in straight.history
    ]


def test_early_stopping_restores_the_best_epoch(tmp_path: Path) -> None:
    # A huge learning rate makes validation loss worsen quickly; patience 1 stops the run.
    spec = make_spec(epochs=30, lr=0.5, optimizer="sgd", early_stopping={"patience": 1})
    outcome = run(spec, tmp_path / "es")
    assert outcome.stopped_early
    assert outcome.epochs_run < 30
    assert outcome.best_epoch < outcome.epochs_run
    losses = [h["validation_loss"] for h in outcome.history]
    assert min(losses) == losses[outcome.best_epoch - 1]


def test_resume_refuses_another_spec_and_a_missing_checkpoint(tmp_path: Path) -> None:
    run(make_spec(epochs=1), tmp_path / "ck")
    with pytest.raises(ResumeError, match="another spec"):
        run(make_spec(epochs=2), tmp_path / "ck", resume=True)
    with pytest.raises(ResumeError, match="no checkpoint"):
        run(make_spec(), tmp_path / "empty", resume=True)


@pytest.mark.slow
def test_killed_cli_run_resumes_to_identical_weights(tmp_path: Path) -> None:
    """A real `maas train` process killed with SIGKILL mid-run, then `--resume`."""
    spec_doc = {**BASE, "train": {**BASE["train"], "epochs": 24, "batch_size": 32}}  # type: ignore[dict-item]
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec_doc))
    env = {**os.environ, "MAAS_HOME": str(tmp_path / "home")}
    cmd = [sys.executable, "-m", "maas", "train", str(spec_file), "--no-register", "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt_dirs = tmp_path / "home" / "runs"
    deadline = time.monotonic() + 120
    epoch = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(ckpt_dirs.glob("*/checkpoints"))
        epoch = latest_epoch(found[0]) if found else None
        if epoch is not None and epoch >= 3:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "training finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = latest_epoch(next(ckpt_dirs.glob("*/checkpoints")))
    assert killed_at is not None
    assert killed_at < 24
    done = subprocess.run(
        [*cmd, "--resume", "--json"], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    resumed = (next(ckpt_dirs.glob("*/export")) / "weights.safetensors").read_bytes()
    straight_env = {**env, "MAAS_HOME": str(tmp_path / "home2")}
    straight = subprocess.run(cmd, env=straight_env, capture_output=True, text=True, check=False)
    assert straight.returncode == 0, straight.stderr
    expected = (
        next((tmp_path / "home2" / "runs").glob("*/export")) / "weights.safetensors"
    ).read_bytes()
    assert resumed == expected
