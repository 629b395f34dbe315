"""`maas register`, `maas models ...` and `maas alias`: the registry from the command line."""

from __future__ import annotations

import contextlib
import getpass
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from maas.actors import Actor
from maas.cli import echo_json
from maas.errors import InvalidInput

if TYPE_CHECKING:
    from maas.registry import ModelSummary, ModelVersion, Registry
    from maas.registry.routes import Route

JSON_OPTION = click.option(
    "--json", "as_json", is_flag=True, help="Print the result as one JSON document on stdout."
)


@contextlib.contextmanager
def open_registry() -> Iterator[Registry]:
    """The registry MAAS_HOME (or MAAS_REGISTRY_URL) points at, closed afterwards."""
    from maas.config import load_settings
    from maas.registry import Registry
    from maas.security.signing import required_verifier

    settings = load_settings()
    verifier = required_verifier(settings.security)
    registry = Registry.from_settings(settings, source="cli", signature_verifier=verifier)
    try:
        yield registry
    finally:
        registry.close()


def current_actor() -> Actor:
    """The local user running the CLI, as the audit trail records it (kind `os_user`)."""
    try:
        name: str | None = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (e.g. in a bare container)
        name = None
    return Actor(name, "os_user")


def _print_version(mv: ModelVersion, route: Route | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=mv.ref, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("version", str(mv.version))
    table.add_row("aliases", ", ".join(mv.aliases) or "-")
    if route is not None:
        table.add_row("route", route.describe())
    table.add_row("created", mv.created_at.isoformat(timespec="seconds"))
    table.add_row("digest", f"sha256:{mv.digest}")
    table.add_row("size", f"{mv.size_bytes:,} bytes")
    for kind, tensors in (("input", mv.signature.inputs), ("output", mv.signature.outputs)):
        for t in tensors:
            table.add_row(kind, f"{t.name} {t.datatype} {list(t.shape)}")
    table.add_row("labels", ", ".join(mv.labels) or "-")
    for key, value in sorted(mv.metrics.items()):
        table.add_row(f"metric {key}", f"{value:.6g}")
    for key, value in sorted(mv.lineage.items()):
        table.add_row(f"lineage {key}", _brief(value))
    for filename, digest in sorted(mv.files.items()):
        table.add_row(f"file {filename}", f"sha256:{digest[:16]}...")
    Console().print(table)


BRIEF_CHARS = 120  # a table cell; `--json` prints everything


def _brief(value: object) -> str:
    """A one-line summary of a lineage value: long lists and documents are elided."""
    if isinstance(value, dict) and "kind" in value and ("offset" in value or "scale" in value):
        return f"{value['kind']} scaling of {len(value.get('offset', []))} features"
    if isinstance(value, dict) and "name" in value and "data" in value and "model" in value:
        model = value.get("model", {})
        train = value.get("train", {})
        return (
            f"spec {value['name']}: {model.get('kind')} on {value['data'].get('source')}, "
            f"{train.get('optimizer')} lr={train.get('lr')} epochs={train.get('epochs')}"
        )
    text = json.dumps(value, default=str)
    return text if len(text) <= BRIEF_CHARS else text[: BRIEF_CHARS - 1] + "…"


def _print_models(summaries: Sequence[ModelSummary]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "latest", "versions", "aliases")
    for s in summaries:
        aliases = ", ".join(f"{a}->{v}" for a, v in s.aliases.items()) or "-"
        table.add_row(s.name, str(s.latest_version), str(s.version_count), aliases)
    Console().print(table if summaries else "no models registered")


def _print_versions(versions: Sequence[ModelVersion]) -> None:
    from rich.console import Console
    from rich.table import Table

    from maas.cli.figures import FIGURE_COLUMNS, figure_cells
    from maas.registry.figures import version_figures

    table = Table("version", "aliases", *FIGURE_COLUMNS)  # created and digest: models show
    for mv in versions:
        table.add_row(
            str(mv.version), ", ".join(mv.aliases) or "-", *figure_cells(version_figures(mv))
        )
    Console().print(table)


@click.command()
@click.argument(
    "export_dir", required=False, type=click.Path(file_okay=False, exists=True, path_type=Path)
)
@click.option("--name", help="Register under this name (required with --onnx).")
@click.option(
    "--onnx",
    "onnx_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Register your own ONNX file instead of an export folder.",
)
@click.option("--labels", help="Comma-separated class labels (with --onnx): cat,dog,bird.")
@JSON_OPTION
def register(
    export_dir: Path | None,
    name: str | None,
    onnx_file: Path | None,
    labels: str | None,
    as_json: bool,
) -> None:
    """Register a model as a new version: an export folder, or your own ONNX file.

    \b
      maas register runs/digits-cnn/export             export folder (model.onnx + manifest.json)
      maas register runs/digits-cnn/export --name d2   ... under another name
      maas register --onnx model.onnx --name iris --labels setosa,versicolor,virginica

    An ONNX file is first loaded and run in onnxruntime on sample inputs; a file that fails is
    refused. Versions are numbered 1, 2, 3... per model and never change once registered.
    """
    if (export_dir is None) == (onnx_file is None):
        raise InvalidInput("give either EXPORT_DIR or --onnx FILE (one of them)")
    with open_registry() as registry:
        if onnx_file is not None:
            if not name:
                raise InvalidInput("--onnx needs --name NAME")
            label_list = [s.strip() for s in labels.split(",") if s.strip()] if labels else []
            mv = registry.register_onnx_file(onnx_file, name, label_list, actor=current_actor())
        elif labels:
            raise InvalidInput("--labels goes with --onnx; an export folder has its own labels")
        elif export_dir is not None:
            mv = registry.register_export(export_dir, name=name, actor=current_actor())
    if as_json:
        echo_json(mv.to_dict())
    else:
        click.echo(f"registered {mv.ref} (sha256:{mv.digest[:12]}, {mv.size_bytes:,} bytes)")


@click.group()
def models() -> None:
    """List, inspect, download and delete registered models and versions.

    Versions are written NAME@REF, where REF is a version number, an alias or "latest"
    (the default): iris, iris@3, iris@production.
    """


@models.command("list")
@JSON_OPTION
def list_models(as_json: bool) -> None:
    """List every model with its latest version, version count and aliases."""
    with open_registry() as registry:
        summaries = registry.list_models()
    if as_json:
        echo_json([s.to_dict() for s in summaries])
    else:
        _print_models(summaries)


@models.command()
@click.argument("ref")
@JSON_OPTION
def show(ref: str, as_json: bool) -> None:
    """Show one version (NAME[@REF]): signature, labels, metrics, lineage, digest, aliases;
    then every version's size, parameters, precision and speed, and the serving
    configurations tuned for this one."""
    from maas.cli.figures import print_figures
    from maas.registry import parse_ref
    from maas.registry.figures import version_figures
    from maas.registry.routes import get_route
    from maas.registry.serving_configs import list_serving_configs

    parsed = parse_ref(ref)
    with open_registry() as registry:
        mv = registry.get(parsed.name, parsed.ref)
        route = get_route(registry, parsed.name)
        figures = [version_figures(v) for v in registry.list_versions(parsed.name)]
        tuned = list_serving_configs(registry, mv.name, mv.version)
    if as_json:
        echo_json(
            {
                **mv.to_dict(),
                "route": route.to_dict() if route else None,
                "figures": version_figures(mv).to_dict(),
                "versions": [f.to_dict() for f in figures],
                "serving_configs": [c.to_dict() for c in tuned],
            }
        )
    else:
        _print_version(mv, route)
        print_figures(figures, tuned)


@models.command()
@click.argument("name")
@JSON_OPTION
def versions(name: str, as_json: bool) -> None:
    """List every version of model NAME, oldest first, with its size, parameters, precision
    and speed."""
    from maas.registry.figures import version_figures

    with open_registry() as registry:
        found = registry.list_versions(name)
    if as_json:
        echo_json([{**mv.to_dict(), "figures": version_figures(mv).to_dict()} for mv in found])
    else:
        _print_versions(found)


@models.command()
@click.argument("ref")
@click.option(
    "--to",
    "to_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write model.onnx, manifest.json and the version's extra files into.",
)
@JSON_OPTION
def download(ref: str, to_dir: Path, as_json: bool) -> None:
    """Write version NAME[@REF] to a folder: model.onnx, manifest.json and its files.

    Every file is checked against its recorded digest first. The folder is a valid export
    folder again, so `maas register DIR` works on it.
    """
    from maas.registry import parse_ref

    parsed = parse_ref(ref)
    with open_registry() as registry:
        mv = registry.get(parsed.name, parsed.ref)
        contents = {"model.onnx": registry.read_artifact(mv)}
        contents.update({f: registry.read_file(mv, f) for f in sorted(mv.files)})
    manifest = {
        "name": mv.name,
        "version": mv.version,
        "digest": mv.digest,
        "signature": mv.signature.to_dict(),
        "labels": list(mv.labels),
        "metrics": mv.metrics,
        "lineage": mv.lineage,
        "files": sorted(mv.files),
    }
    to_dir.mkdir(parents=True, exist_ok=True)
    for filename, data in contents.items():
        (to_dir / filename).write_bytes(data)
    (to_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    written = sorted([*contents, "manifest.json"])
    if as_json:
        echo_json({"ref": mv.ref, "dir": str(to_dir), "files": written})
    else:
        click.echo(f"wrote {mv.ref} to {to_dir}: {', '.join(written)}")


@models.command()
@click.argument("ref")
@click.option("--force", is_flag=True, help="Also remove aliases that point at the version.")
@JSON_OPTION
def delete(ref: str, force: bool, as_json: bool) -> None:
    """Delete version NAME@VERSION (refused while an alias points at it, unless --force)."""
    from maas.registry import parse_ref

    parsed = parse_ref(ref)
    if not isinstance(parsed.ref, int):
        raise InvalidInput(f"delete needs an explicit version number: {parsed.name}@N, got {ref}")
    with open_registry() as registry:
        registry.delete_version(parsed.name, parsed.ref, force=force, actor=current_actor())
    if as_json:
        echo_json({"deleted": f"{parsed.name}@{parsed.ref}"})
    else:
        click.echo(f"deleted {parsed.name}@{parsed.ref}")


@models.command()
@click.argument("name")
@click.option("--alias", help="Only this alias.")
@JSON_OPTION
def history(name: str, alias: str | None, as_json: bool) -> None:
    """Show every move of model NAME's aliases (who moved which alias where, and when)."""
    with open_registry() as registry:
        events = registry.alias_history(name, alias)
    if as_json:
        echo_json([e.to_dict() for e in events])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("at", "alias", "from", "to", "actor")
    for e in events:
        table.add_row(
            e.at.isoformat(timespec="seconds"),
            e.alias,
            str(e.old_version) if e.old_version is not None else "-",
            str(e.new_version) if e.new_version is not None else "(removed)",
            e.actor or "-",
        )
    Console().print(table)


@click.command()
@click.argument("name")
@click.argument("alias_name", metavar="ALIAS")
@click.argument("version", type=click.IntRange(min=1))
@JSON_OPTION
def alias(name: str, alias_name: str, version: int, as_json: bool) -> None:
    """Point alias ALIAS of model NAME at VERSION (creating or moving it).

    \b
      maas alias iris production 3     serve iris@production from version 3
    Every move is kept in the alias history (`maas models history NAME`), for rollbacks.
    """
    with open_registry() as registry:
        registry.set_alias(name, alias_name, version, actor=current_actor())
        mv = registry.get(name, version)
    if as_json:
        echo_json({"name": name, "alias": alias_name, "version": version, "aliases": mv.aliases})
    else:
        click.echo(f"{name}@{alias_name} -> {version}")
