"""`maas evaluate NAME@REF [NAME@REF ...]`: versions side by side, as a table, JSON and HTML."""

from __future__ import annotations

import json
from pathlib import Path

import click

from maas.cli import echo_json
from maas.cli.registry import JSON_OPTION, open_registry


@click.command("evaluate")
@click.argument("references", nargs=-1, required=True)
@click.option(
    "--data",
    type=click.Path(exists=True, path_type=Path),
    help="A spec file (its test split) or a data file (all rows); default: each version's "
    "own test split.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for report.json and report.html (plots embedded, opens offline).",
)
@JSON_OPTION
def evaluate(
    references: tuple[str, ...], data: Path | None, out: Path | None, as_json: bool
) -> None:
    """Evaluate REFERENCES (NAME@VERSION|ALIAS|latest): accuracy, per-class scores, confusion
    matrix, calibration, latency p50/p99 at batch 1, best throughput, size, parameters, memory.

    \b
      maas evaluate digits-cnn@1 digits-cnn@2 --out report/
    """
    from rich.console import Console
    from rich.table import Table

    from maas.evaluate.html import SUMMARY_HEADERS, render_html, summary_rows
    from maas.evaluate.reports import evaluate_versions
    from maas.registry import parse_ref

    refs = [parse_ref(r) for r in references]
    with open_registry() as registry:
        report = evaluate_versions(registry, refs, data)
    doc = report.to_dict()
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(doc, indent=1, sort_keys=True))
        (out / "report.html").write_text(render_html(report))
    if as_json:
        echo_json(doc)
        return
    table = Table(*SUMMARY_HEADERS)
    for row in summary_rows(report.versions):
        table.add_row(*row)
    console = Console()
    console.print(table)
    if out is not None:
        console.print(f"wrote {out / 'report.html'} and {out / 'report.json'}")
