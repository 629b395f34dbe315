"""`maas train SPEC`: train, export, validate and register a model from a YAML spec."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from maas.cli import echo_json


class ProgressObserver:
    """Shows a progress bar per epoch with the running loss and accuracy."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f} acc {task.fields[acc]:.3f}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task: int | None = None
        self._loss = 0.0
        self._acc = 0.0
        self._seen = 0

    def __enter__(self) -> ProgressObserver:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)  # type: ignore[arg-type]  # TaskID is an int
        self._loss, self._acc, self._seen = 0.0, 0.0, 0
        self.task = self.progress.add_task(
            "train", total=steps, epoch=epoch, epochs=epochs, loss=0.0, acc=0.0
        )

    def on_step(self, loss: float, accuracy: float) -> None:
        self._seen += 1
        self._loss += (loss - self._loss) / self._seen
        self._acc += (accuracy - self._acc) / self._seen
        if self.task is not None:
            self.progress.update(self.task, advance=1, loss=self._loss, acc=self._acc)  # type: ignore[arg-type]

    def on_epoch_end(self, metrics: dict[str, float]) -> None:
        self.console.print(
            f"epoch {int(metrics['epoch']):>3}  train loss {metrics['train_loss']:.4f}  "
            f"acc {metrics['train_accuracy']:.3f}  │  val loss {metrics['validation_loss']:.4f}  "
            f"acc {metrics['validation_accuracy']:.3f}  ({metrics['seconds']:.1f}s)"
        )


@click.command()
@click.argument("spec_file", type=click.Path(path_type=Path))
@click.option("--resume", is_flag=True, help="Continue from the run's last checkpoint.")
@click.option("--no-register", is_flag=True, help="Stop after validation; keep the export folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(spec_file: Path, resume: bool, no_register: bool, as_json: bool, quiet: bool) -> None:
    """Train the model SPEC_FILE describes, export it to ONNX, validate and register it.

    \b
    The spec (YAML) names the model and its data, architecture and training:
      name: digits-cnn
      seed: 0
      data:  {source: digits, split: {validation: 0.15, test: 0.15}}
      model: {kind: cnn}                  # mlp | cnn | gpt | package.module:build_function
      train: {optimizer: adam, lr: 0.001, epochs: 15, batch_size: 64,
              early_stopping: {patience: 3}}

    A checkpoint is written after every epoch; after an interrupt (Ctrl-C, kill) rerun with
    --resume to continue: the result is identical to an uninterrupted run.
    The exported model is checked (ONNX graph, batch 1 and N, parity with PyTorch, accuracy
    through onnxruntime) and only then registered as a new version of `name`.
    """
    from maas.config import load_settings
    from maas.train.spec import load_spec

    spec = load_spec(spec_file)  # a bad spec is refused here, before torch is imported
    from maas.pipeline import run_dir_for
    from maas.pipeline import train as run_training

    settings = load_settings()
    console = Console(stderr=True, quiet=quiet or as_json)
    console.print(f"training [bold]{spec.name}[/] ({spec.model.kind} on {spec.data.source})")
    observer = ProgressObserver(console)
    try:
        with observer:
            result = run_training(
                spec,
                settings,
                base_dir=spec_file.parent,
                resume=resume,
                register=not no_register,
                observer=observer,
                source="cli",
            )
    except KeyboardInterrupt:
        run_dir = run_dir_for(settings, spec)
        click.echo(
            f"interrupted; the last finished epoch is checkpointed in {run_dir}/checkpoints. "
            f"Continue with: maas train {spec_file} --resume",
            err=True,
        )
        raise SystemExit(130) from None
    doc = {
        "name": spec.name,
        "run_dir": str(result.run_dir),
        "export_dir": str(result.export_dir),
        "metrics": result.metrics,
        "version": result.version.to_dict() if result.version else None,
    }
    if as_json:
        echo_json(doc)
        return
    m = result.metrics
    quality = (
        f"validation perplexity {m['validation_perplexity']:.2f}"
        if "validation_perplexity" in m
        else f"test accuracy {m['test_accuracy']:.4f}"
    )
    click.echo(
        f"validated: {quality} (onnxruntime), parity max diff "
        f"{m['parity_max_abs_diff']:.2e}, {int(m['size_bytes'])} bytes"
    )
    if result.version:
        v = result.version
        click.echo(f"registered {v.ref}  digest sha256:{v.digest[:16]}…  ({result.export_dir})")
    else:
        click.echo(f"not registered (--no-register); export folder: {result.export_dir}")
