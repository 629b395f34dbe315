"""Terminal tables of version figures (size, parameters, precision, speed) and tuned configs."""

from __future__ import annotations

from collections.abc import Sequence

from maas.registry.figures import VersionFigures
from maas.registry.serving_configs import StoredServingConfig

FIGURE_COLUMNS = ("size", "parameters", "precision", "b1 ms", "b32 ms", "rows/s b32", "accuracy")


def figure_cells(f: VersionFigures) -> tuple[str, ...]:
    """One version's figures as table cells ("-" for what was not recorded)."""
    return (
        f"{f.size_bytes / 1024:,.1f} KiB",
        "-" if f.parameters is None else f"{f.parameters:,}",
        f.precision or "-",
        "-" if f.latency_ms_b1 is None else f"{f.latency_ms_b1:.3f}",
        "-" if f.latency_ms_b32 is None else f"{f.latency_ms_b32:.3f}",
        "-" if f.throughput_b32 is None else f"{f.throughput_b32:,.0f}",
        "-" if f.test_accuracy is None else f"{f.test_accuracy:.4f}",
    )


def print_figures(
    figures: Sequence[VersionFigures], tuned: Sequence[StoredServingConfig] = ()
) -> None:
    """Every version's figures side by side, then the configurations tuned for the shown one."""
    from rich.console import Console
    from rich.table import Table

    table = Table("version", *FIGURE_COLUMNS, title="versions", title_justify="left")
    for f in figures:
        table.add_row(f.ref, *figure_cells(f))
    console = Console()
    console.print(table)
    for stored in tuned:
        c = stored.config
        console.print(
            f"tuned for {stored.hardware_profile}: max_batch_size {c.get('max_batch_size')}, "
            f"instances {c.get('instances')}, max_queue_delay_us {c.get('max_queue_delay_us')}"
            f" (p99 budget {c.get('p99_budget_ms')} ms)"
        )
