"""Plots for reports, drawn with matplotlib's Agg canvas (no display, no global pyplot state).

Each function returns PNG bytes; `to_data_uri` embeds them in HTML so a report opens offline.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from maas.evaluate.reports import VersionEvaluation

DPI = 100


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def to_data_uri(png: bytes) -> str:
    """`data:image/png;base64,...` for an <img src>."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def confusion_png(evaluation: VersionEvaluation) -> bytes:
    """The confusion matrix as a heat map with counts (rows: true class, columns: predicted)."""
    matrix = evaluation.quality.confusion
    labels = [c.label for c in evaluation.quality.per_class]
    size = max(3.5, 0.45 * len(labels) + 1.5)
    figure = Figure(figsize=(size, size))
    ax = figure.add_subplot()
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels=labels)
    ax.set_yticks(range(len(labels)), labels=labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{evaluation.ref}: confusion matrix")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            color = "white" if count > threshold else "black"
            ax.text(j, i, str(count), ha="center", va="center", fontsize=8, color=color)
    return _png(figure)


def latency_png(evaluations: Sequence[VersionEvaluation]) -> bytes:
    """Distribution of batch-1 call times per version (histograms on one axis)."""
    figure = Figure(figsize=(7, 3.5))
    ax = figure.add_subplot()
    samples = [np.asarray(e.latency_b1.samples_ms) for e in evaluations]
    upper = max((float(np.percentile(s, 99.5)) for s in samples if s.size), default=1.0)
    bins = [float(v) for v in np.linspace(0.0, upper, 60)]
    for evaluation, values in zip(evaluations, samples, strict=True):
        ax.hist(np.clip(values, 0, upper), bins=bins, alpha=0.55, label=evaluation.ref)
    ax.set_xlabel("latency at batch 1 (ms)")
    ax.set_ylabel("calls")
    ax.set_title("latency distribution (p99.5 and above clipped)")
    ax.legend()
    return _png(figure)


def tradeoff_png(evaluations: Sequence[VersionEvaluation]) -> bytes:
    """Accuracy against model size; marker area grows with throughput at the best batch."""
    figure = Figure(figsize=(7, 4))
    ax = figure.add_subplot()
    throughput = np.array([e.best_batch.throughput_rows_s for e in evaluations])
    areas = 60 + 540 * throughput / max(float(throughput.max()), 1e-9)
    for evaluation, area in zip(evaluations, areas, strict=True):
        x, y = evaluation.size_bytes / 1024, evaluation.quality.accuracy * 100
        ax.scatter([x], [y], s=area, alpha=0.6)
        ax.annotate(
            f"{evaluation.ref}\n{evaluation.precision}, "
            f"{evaluation.best_batch.throughput_rows_s:,.0f} rows/s",
            (x, y),
            textcoords="offset points",
            xytext=(8, 6),
            fontsize=8,
        )
    ax.set_xscale("log")
    ax.set_xlabel("model size (KiB, log scale)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("size / accuracy / speed (marker area: throughput)")
    ax.margins(0.25)
    return _png(figure)


def reliability_png(evaluations: Sequence[VersionEvaluation]) -> bytes:
    """Reliability diagram: accuracy per confidence bin against perfect calibration (diagonal)."""
    figure = Figure(figsize=(4.5, 4.5))
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    for evaluation in evaluations:
        bins = [b for b in evaluation.quality.reliability if b.count]
        ax.plot(
            [b.confidence for b in bins],
            [b.accuracy for b in bins],
            marker="o",
            label=f"{evaluation.ref} (ECE {evaluation.quality.ece:.3f})",
        )
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title("calibration")
    ax.legend(fontsize=8)
    return _png(figure)


def heatmap_png(
    attributions: np.ndarray, image_shape: tuple[int, int, int], row: np.ndarray, title: str
) -> bytes:
    """The input image beside its attributions (red: pushes towards the class, blue: away)."""
    channels, height, width = image_shape
    image = np.asarray(row, dtype=np.float32).reshape(channels, height, width).mean(axis=0)
    heat = np.asarray(attributions, dtype=np.float32).reshape(channels, height, width).sum(axis=0)
    limit = float(np.abs(heat).max()) or 1.0
    figure = Figure(figsize=(7, 3.4))
    left, right = figure.subplots(1, 2)
    left.imshow(image, cmap="gray")
    left.set_title("input")
    shown = right.imshow(heat, cmap="bwr", vmin=-limit, vmax=limit)
    right.set_title("attribution")
    figure.colorbar(shown, ax=right, fraction=0.046)
    for ax in (left, right):
        ax.set_xticks([])
        ax.set_yticks([])
    figure.suptitle(title)
    return _png(figure)
