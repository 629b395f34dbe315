"""`maas export-repo`: registered versions as a Triton model repository."""

from __future__ import annotations

from pathlib import Path

import click

from maas.cli import echo_json
from maas.cli.registry import JSON_OPTION, open_registry


@click.command("export-repo")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="NAME[@REF]",
    help="Export this model (every version) or one version of it; repeatable. Default: all.",
)
@click.option(
    "--max-batch-size",
    type=click.IntRange(min=1, max=4096),
    default=32,
    show_default=True,
    help="max_batch_size written for batchable models.",
)
@JSON_OPTION
def export_repo(out_dir: Path, models: tuple[str, ...], max_batch_size: int, as_json: bool) -> None:
    """Write models as a Triton model repository: DIR/NAME/N/model.onnx and config.pbtxt.

    \b
      maas export-repo triton-repo --model digits
      tritonserver --model-repository triton-repo
    Every artifact is checked against its digest; classifiers get a labels.txt.
    """
    from maas.registry.triton import export_repository

    with open_registry() as registry:
        written = export_repository(registry, out_dir, models, max_batch_size=max_batch_size)
    if as_json:
        echo_json(
            [{"name": m.name, "path": str(m.path), "versions": list(m.versions)} for m in written]
        )
        return
    for model in written:
        numbers = ", ".join(str(v) for v in model.versions)
        click.echo(f"wrote {model.name} (versions {numbers}) to {model.path}")
