"""`maas explain NAME@REF --input ...`: which features drove one prediction."""

from __future__ import annotations

import json
from pathlib import Path

import click

from maas.cli import echo_json
from maas.cli.registry import JSON_OPTION, open_registry


@click.command("explain")
@click.argument("reference")
@click.option(
    "--input",
    "input_text",
    required=True,
    help='One row as JSON ([0.1, ...] or {"data": [...]}) or a JSON file.',
)
@click.option(
    "--method",
    type=click.Choice(["occlusion", "integrated-gradients"]),
    default="occlusion",
    show_default=True,
    help="occlusion works on any ONNX model; integrated gradients need the PyTorch weights.",
)
@click.option("--target", type=int, help="Class index to explain [default: the predicted one].")
@click.option("--top", type=click.IntRange(1, 10_000), default=10, show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for attributions.json (and heatmap.png for image inputs).",
)
@JSON_OPTION
def explain(
    reference: str,
    input_text: str,
    method: str,
    target: int | None,
    top: int,
    out: Path | None,
    as_json: bool,
) -> None:
    """Per-feature attributions of REFERENCE's prediction for one input row.

    \b
      maas explain digits-cnn@1 --input row.json --out explain/
      maas explain digits-mlp@1 --input '[0, 0, 5, ...]' --method integrated-gradients
    """
    from rich.console import Console
    from rich.table import Table

    from maas.evaluate.explain import explain_version, parse_input
    from maas.registry import parse_ref

    ref = parse_ref(reference)
    with open_registry() as registry:
        mv = registry.get(ref.name, ref.ref)
        n_features = int(mv.signature.inputs[0].shape[-1])
        row = parse_input(input_text, n_features)
        explanation = explain_version(
            registry,
            mv.name,
            mv.version,
            row,
            method=method,  # type: ignore[arg-type]  # click.Choice checked it
            target=target,
        )
    doc = explanation.to_dict(top)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "attributions.json").write_text(json.dumps(doc, indent=1))
        if explanation.image_shape is not None:
            from maas.evaluate.plots import heatmap_png

            title = f"{explanation.ref}: {method}, class {explanation.target_label}"
            png = heatmap_png(explanation.attributions, explanation.image_shape, row, title)
            (out / "heatmap.png").write_bytes(png)
    if as_json:
        echo_json(doc)
        return
    console = Console()
    console.print(
        f"{explanation.ref} predicts {explanation.target_label} "
        f"(p={doc['probability']:.4f}); {method} attributions, top {top}:"
    )
    table = Table("feature", "value", "attribution")
    for item in doc["top_features"]:
        table.add_row(item["feature"], f"{item['value']:.4g}", f"{item['attribution']:+.5f}")
    console.print(table)
    if out is not None:
        console.print(f"wrote {out}")
