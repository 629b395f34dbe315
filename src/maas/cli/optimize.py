"""`maas optimize NAME@REF`: quantize or prune a version and register the result if it earns it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from maas.cli import echo_json
from maas.cli.registry import JSON_OPTION, current_actor, open_registry
from maas.errors import InvalidInput

if TYPE_CHECKING:
    from maas.optimize.registration import OptimizeOutcome


def _print_outcome(outcome: OptimizeOutcome) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(
        "variant",
        "precision",
        "accuracy",
        "bytes",
        "smaller",
        "b1 ms",
        "b32 rows/s",
        "speed",
        "gate",
    )
    p = outcome.parent
    table.add_row(
        f"parent {outcome.parent_ref}",
        p["precision"],
        f"{p['test_accuracy'] * 100:.2f}%",
        f"{p['size_bytes']:,}",
        "1.00x",
        f"{p['latency_ms_b1']:.4f}",
        f"{p['throughput_b32']:,.0f}",
        "1.00x",
        "-",
    )
    for c in outcome.candidates:
        table.add_row(
            c["variant"],
            c["precision"],
            f"{c['test_accuracy'] * 100:.2f}%",
            f"{c['size_bytes']:,}",
            f"{c['size_ratio']:.2f}x",
            f"{c['latency_ms_b1']:.4f}",
            f"{c['throughput_b32']:,.0f}",
            f"{c['speedup']:.2f}x",
            "pass" if c["gate"]["passed"] else f"fail ({c['gate']['drop_points']:.2f} pts)",
        )
    console.print(table)
    console.print(outcome.reason)
    if outcome.registered is None:
        console.print("kept the parent: nothing new registered")
    else:
        ref = outcome.registered.ref
        console.print(f"registered {ref}")
        console.print(
            f"next: maas evaluate {outcome.parent_ref} {ref} --out report/   "
            f"and   maas tune {ref} --p99-ms BUDGET   (stores the serving configuration "
            "with the version; maas serve uses it on this machine)"
        )


@click.command("optimize")
@click.argument("reference")
@click.option(
    "--quantize",
    type=click.Choice(["dynamic", "static"]),
    help="int8 quantization: dynamic (weights only) or static (calibrated QDQ).",
)
@click.option("--prune", "prune_amount", type=float, help="Share to prune, e.g. 0.5.")
@click.option(
    "--prune-kind",
    type=click.Choice(["structured", "unstructured"]),
    default="structured",
    show_default=True,
    help="structured: remove units/channels (smaller, faster); unstructured: zero weights.",
)
@click.option(
    "--finetune-epochs",
    type=click.IntRange(0, 1000),
    default=0,
    show_default=True,
    help="Epochs of training after pruning.",
)
@click.option(
    "--objective",
    type=click.Choice(["latency", "size"]),
    default="latency",
    show_default=True,
    help="Quantization: keep int8 only if faster (latency) or if smallest (size).",
)
@click.option(
    "--max-accuracy-drop",
    type=float,
    help="Accuracy gate in points of test accuracy [default: 0.5 quantize, 2 prune].",
)
@click.option(
    "--calibration-samples",
    type=click.IntRange(1, 1_000_000),
    default=256,
    show_default=True,
    help="Training rows used to calibrate static int8.",
)
@click.option(
    "--calibration-method",
    type=click.Choice(["minmax", "entropy", "percentile"]),
    default="minmax",
    show_default=True,
)
@JSON_OPTION
def optimize(
    reference: str,
    quantize: str | None,
    prune_amount: float | None,
    prune_kind: str,
    finetune_epochs: int,
    objective: str,
    max_accuracy_drop: float | None,
    calibration_samples: int,
    calibration_method: str,
    as_json: bool,
) -> None:
    """Quantize (--quantize) or prune (--prune) REFERENCE (NAME@VERSION|ALIAS|latest).

    \b
    The result is registered as the next version of the same model, with its parent in the
    lineage, only if it passes the accuracy gate (and, for quantization, the objective):
      maas optimize digits-cnn@1 --quantize static --objective size
      maas optimize digits-mlp@1 --prune 0.5 --finetune-epochs 5
    A gate that is not met exits 1 with both accuracies; nothing is registered.
    """
    from maas.optimize.pruning import PruneRequest, prune_version
    from maas.optimize.quantize import StaticOptions
    from maas.optimize.quantizing import QuantizeRequest, quantize_version
    from maas.registry import parse_ref

    if (quantize is None) == (prune_amount is None):
        raise InvalidInput("give exactly one of --quantize dynamic|static or --prune AMOUNT")
    ref = parse_ref(reference)
    with open_registry() as registry:
        if quantize is not None:
            request = QuantizeRequest(
                mode=quantize,  # type: ignore[arg-type]  # click.Choice checked it
                objective=objective,  # type: ignore[arg-type]  # click.Choice checked it
                static=StaticOptions(
                    method=calibration_method,  # type: ignore[arg-type]  # click.Choice
                    samples=calibration_samples,
                ),
                **({} if max_accuracy_drop is None else {"max_drop_points": max_accuracy_drop}),
            )
            outcome = quantize_version(registry, ref.name, ref.ref, request, actor=current_actor())
        else:
            assert prune_amount is not None  # noqa: S101  # checked above, for mypy
            prune_request = PruneRequest(
                amount=prune_amount,
                kind=prune_kind,  # type: ignore[arg-type]  # click.Choice checked it
                finetune_epochs=finetune_epochs,
                **({} if max_accuracy_drop is None else {"max_drop_points": max_accuracy_drop}),
            )
            outcome = prune_version(
                registry, ref.name, ref.ref, prune_request, actor=current_actor()
            )
    if as_json:
        echo_json(outcome.to_dict())
    else:
        _print_outcome(outcome)
