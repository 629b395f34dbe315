"""The `maas` command line: thin commands that parse, call the Python API and print.

Command modules are imported lazily, so `maas serve` never imports torch and `--help` is instant.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from maas.errors import ErrorCode, MaasError

# command name -> (module, attribute, one-line help). Each module holds one command or group.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "train": (
        "maas.cli.train",
        "train",
        "Train, export, validate and register a model from a spec.",
    ),
    "register": (
        "maas.cli.registry",
        "register",
        "Register an export folder or your own ONNX file.",
    ),
    "models": ("maas.cli.registry", "models", "List, show, download and delete model versions."),
    "alias": ("maas.cli.registry", "alias", "Point an alias (e.g. production) at a version."),
    "keys": ("maas.cli.keys", "keys", "Create, list and revoke API keys."),
    "audit": ("maas.cli.audit", "audit", "Show the audit trail of management actions."),
    "sign": ("maas.cli.sign", "sign", "Sign a model version (OpenSSF model-signing format)."),
    "registry": (
        "maas.cli.registry_admin",
        "registry",
        "Check the registry, encrypt artifacts at rest, rotate the key.",
    ),
    "optimize": (
        "maas.cli.optimize",
        "optimize",
        "Quantize or prune a version; register it if it passes the accuracy gate.",
    ),
    "evaluate": (
        "maas.cli.evaluate",
        "evaluate",
        "Accuracy, calibration, speed, size and memory of versions, with an HTML report.",
    ),
    "explain": (
        "maas.cli.explain",
        "explain",
        "Per-feature attributions of a prediction (occlusion or integrated gradients).",
    ),
    "tune": (
        "maas.cli.tune",
        "tune",
        "Profile a version and pick the serving configuration for a p99 budget.",
    ),
    "serve": (
        "maas.cli.serve",
        "serve",
        "Serve models over REST and gRPC (Open Inference Protocol v2).",
    ),
    "route": (
        "maas.cli.rollout",
        "route",
        "Send a model's traffic to an alias or a weighted split, with a guard or a shadow.",
    ),
    "rollback": (
        "maas.cli.rollout",
        "rollback",
        "Move an alias (production) back to the version it pointed to before.",
    ),
    "export-repo": (
        "maas.cli.export_repo",
        "export_repo",
        "Write models as a Triton model repository (model.onnx + config.pbtxt).",
    ),
}

# Client mistakes exit 2 (like a usage error); everything else that we can explain exits 1.
CLIENT_ERRORS = {
    ErrorCode.INVALID_ARGUMENT,
    ErrorCode.NOT_FOUND,
    ErrorCode.CONFLICT,
    ErrorCode.PERMISSION_DENIED,
    ErrorCode.UNAUTHENTICATED,
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when they are run or listed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module = importlib.import_module(target[0])
        command: click.Command = getattr(module, target[1])
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Listing uses the static one-liners, so `maas --help` imports no command module.
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(package_name="maas")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """maas: train, optimize, export, validate, register and serve models.

    \b
    A model's life in four commands:
      maas train examples/digits-cnn.yaml    train, export to ONNX, validate, register
      maas models show digits-cnn            what was registered: metrics, lineage, digest
      maas serve                             serve it over REST and gRPC (v2 protocol)
      maas models download digits-cnn@latest --to out/

    Settings come from flags, then MAAS_* environment variables (MAAS_HOME: where the registry,
    artifacts and runs live; default ~/.maas).
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; a MaasError prints one line on stderr and exits non-zero (no traceback)."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="maas", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except MaasError as err:
        if debug:
            logging.getLogger("maas").exception("command failed")
        click.echo(f"error: {err}", err=True)
        sys.exit(2 if err.code in CLIENT_ERRORS else 1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


def echo_json(doc: Any) -> None:
    """Print one JSON document on stdout (what every `--json` flag produces)."""
    import json

    click.echo(json.dumps(doc, indent=2, sort_keys=True, default=str))
