"""`maas tune NAME@REF --p99-ms X`: the serving configuration that fits a latency budget here."""

from __future__ import annotations

from pathlib import Path

import click

from maas.cli import echo_json
from maas.cli.registry import JSON_OPTION, open_registry


@click.command("tune")
@click.argument("reference")
@click.option("--p99-ms", type=float, required=True, help="Latency budget for a request's p99.")
@click.option(
    "--write",
    "serve_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Add the chosen configuration to this serve file (maas serve --config FILE).",
)
@click.option(
    "--store/--no-store",
    default=True,
    show_default=True,
    help="Store the chosen configuration with the version for this machine's hardware profile "
    "(maas serve uses it here unless a serve file or flag sets those fields).",
)
@click.option(
    "--max-instances",
    type=click.IntRange(1, 64),
    help="Most instances to try [default: cores, at most 4].",
)
@JSON_OPTION
def tune(
    reference: str,
    p99_ms: float,
    serve_file: Path | None,
    store: bool,
    max_instances: int | None,
    as_json: bool,
) -> None:
    """Profile REFERENCE over batch sizes and instance counts on this machine and pick the
    highest-throughput configuration whose estimated p99 fits --p99-ms.

    \b
      maas tune digits-cnn@production --p99-ms 5
      maas serve digits-cnn          # uses the stored configuration on this machine
      maas tune digits-cnn@production --p99-ms 5 --no-store --write serve.yaml
    """
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from maas.errors import MaasError
    from maas.evaluate.data import load_eval_data
    from maas.optimize.tune import store_tuned_config, write_serve_file
    from maas.optimize.tune import tune as run_tune
    from maas.registry import parse_ref

    ref = parse_ref(reference)
    with open_registry() as registry:
        mv = registry.get(ref.name, ref.ref)
        model_bytes = registry.read_artifact(mv)
        try:
            rows = load_eval_data(mv, None).x[:256]
        except MaasError:  # no spec or data at hand: shape-correct random rows time the same
            shape = [d if d > 0 else 64 for d in mv.signature.inputs[0].shape]
            rows = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    result = run_tune(model_bytes, rows, mv.ref, p99_ms, max_instances=max_instances)
    if store:
        with open_registry() as registry:
            store_tuned_config(registry, mv.name, mv.version, result)
    if serve_file is not None:
        write_serve_file(serve_file, mv.name, result)
    if as_json:
        echo_json({**result.to_dict(), "stored": store})
        return
    console = Console()
    table = Table(
        "instances", "batch", "call p50 ms", "call p99 ms", "queue delay us", "est p99 ms", "rows/s"
    )
    for p in result.points:
        style = "bold green" if p == result.best else None
        table.add_row(
            str(p.instances),
            str(p.batch),
            f"{p.call_p50_ms:.3f}",
            f"{p.call_p99_ms:.3f}",
            str(p.max_queue_delay_us),
            f"{p.est_p99_ms:.3f}",
            f"{p.throughput_rows_s:,.0f}",
            style=style,
        )
    console.print(table)
    b = result.best
    console.print(
        f"best for p99 <= {p99_ms:g} ms on {result.profile.cpu} ({result.profile.cores} cores): "
        f"max_batch_size {b.batch}, instances {b.instances}, max_queue_delay_us "
        f"{b.max_queue_delay_us} -> {b.throughput_rows_s:,.0f} rows/s, "
        f"estimated p99 {b.est_p99_ms:.3f} ms"
    )
    if store:
        console.print(
            f"stored with {mv.ref} for {result.profile.key}: maas serve uses it on this machine"
        )
    if serve_file is not None:
        console.print(f"wrote the {mv.name} entry of {serve_file}")
