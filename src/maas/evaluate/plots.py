"""Plots for reports, drawn with matplotlib's Agg canvas (no display, no global pyplot state).

Each function returns PNG bytes; `to_data_uri` embeds them in HTML so a report opens offline.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from maas.evaluate.reports import VersionEvaluation

DPI = 100


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def _plain_log_axis(ax: Axes) -> None:
    """Label a log x axis with plain numbers at 1, 2 and 5 per decade (not `4 x 10^-2`)."""
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


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
    """Distribution of batch-1 call times per version, on a log axis with each median marked.

    Call times have a long tail (a scheduler hiccup costs 10-100x a call); on a linear axis it
    squeezes every typical call into one or two bins, so bins are spaced evenly in log time.
    """
    figure = Figure(figsize=(7, 3.5))
    ax = figure.add_subplot()
    samples = [np.asarray(e.latency_b1.samples_ms, dtype=np.float64) for e in evaluations]
    positive = np.concatenate([s[s > 0] for s in samples] or [np.ones(1)])
    if positive.size == 0:
        positive = np.ones(1)
    low, high = float(positive.min()), float(positive.max())
    bins = [float(v) for v in np.geomspace(low, max(high, low * 1.01), 60)]
    colors = [f"C{i % 10}" for i in range(len(evaluations))]
    for evaluation, values, color in zip(evaluations, samples, colors, strict=True):
        shown = np.clip(values, low, high)
        ax.hist(shown, bins=bins, alpha=0.55, label=evaluation.ref, color=color)
        ax.axvline(evaluation.latency_b1.p50_ms, color=color, linestyle="--", linewidth=1)
    ax.set_xscale("log")
    _plain_log_axis(ax)
    ax.set_xlabel("latency at batch 1 (ms, log scale; dashed: median)")
    ax.set_ylabel("calls")
    ax.set_title("latency distribution")
    ax.legend()
    return _png(figure)


def tradeoff_png(evaluations: Sequence[VersionEvaluation]) -> bytes:
    """Accuracy against model size; marker area grows with throughput at the best batch."""
    figure = Figure(figsize=(7, 4))
    ax = figure.add_subplot()
    throughput = np.array([e.best_batch.throughput_rows_s for e in evaluations])
    areas = 60 + 540 * throughput / max(float(throughput.max()), 1e-9)
    sizes = np.log([max(e.size_bytes, 1) / 1024 for e in evaluations])
    middle = (float(sizes.min()) + float(sizes.max())) / 2
    for evaluation, area, log_size in zip(evaluations, areas, sizes, strict=True):
        x, y = evaluation.size_bytes / 1024, evaluation.quality.accuracy * 100
        ax.scatter([x], [y], s=area, alpha=0.6)
        # Labels point inwards, so the largest model's label stays inside the axes.
        is_right = len(evaluations) > 1 and log_size > middle
        ax.annotate(
            f"{evaluation.ref}\n{evaluation.precision}, "
            f"{evaluation.best_batch.throughput_rows_s:,.0f} rows/s",
            (x, y),
            textcoords="offset points",
            xytext=(-10, 8) if is_right else (10, 8),
            ha="right" if is_right else "left",
            fontsize=8,
        )
    ax.set_xscale("log")
    _plain_log_axis(ax)
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
    ax.legend(fontsize=8, loc="lower right")  # the curves run from lower left to upper right
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
