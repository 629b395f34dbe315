"""The evaluation report as one self-contained HTML page (plots embedded as base64 PNG)."""

from __future__ import annotations

import html
from collections.abc import Sequence

from maas.evaluate import plots
from maas.evaluate.reports import EvaluationReport, VersionEvaluation

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; margin: 0.5em 0; } .plots { display: flex; flex-wrap: wrap; gap: 1em; }
"""


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def summary_rows(evaluations: Sequence[VersionEvaluation]) -> list[list[str]]:
    """One row per version: the numbers the terminal table and the HTML summary show."""
    return [
        [
            e.ref,
            e.precision,
            f"{e.quality.accuracy * 100:.2f}%",
            f"{e.quality.macro_f1:.4f}",
            f"{e.quality.ece:.4f}",
            f"{e.latency_b1.p50_ms:.4f}",
            f"{e.latency_b1.p99_ms:.4f}",
            f"{e.best_batch.throughput_rows_s:,.0f} @ {e.best_batch.batch}",
            f"{e.size_bytes:,}",
            f"{e.parameters:,}",
            f"{e.peak_memory_bytes / 1e6:.1f}",
        ]
        for e in evaluations
    ]


SUMMARY_HEADERS = (
    "version",
    "precision",
    "accuracy",
    "macro F1",
    "ECE",
    "p50 ms (b1)",
    "p99 ms (b1)",
    "best rows/s @ batch",
    "size bytes",
    "parameters",
    "peak MB",
)


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="{plots.to_data_uri(png)}">'


def _version_section(e: VersionEvaluation) -> str:
    rows = [
        [c.label, f"{c.precision:.4f}", f"{c.recall:.4f}", f"{c.f1:.4f}", str(c.support)]
        for c in e.quality.per_class
    ]
    return (
        f"<h2>{html.escape(e.ref)}</h2><p>data: {html.escape(e.data_origin)}, "
        f"{e.quality.rows} rows</p>"
        + _table(("class", "precision", "recall", "F1", "support"), rows)
        + _img(plots.confusion_png(e), f"confusion matrix of {e.ref}")
    )


def render_html(report: EvaluationReport) -> str:
    """The whole report: summary, trade-off, latency and calibration plots, per-version detail."""
    evaluations = report.versions
    refs = ", ".join(e.ref for e in evaluations)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>maas evaluation: {html.escape(refs)}</title><style>{STYLE}</style></head><body>"
        f"<h1>Evaluation: {html.escape(refs)}</h1>"
        + _table(SUMMARY_HEADERS, summary_rows(evaluations))
        + "<div class='plots'>"
        + _img(plots.tradeoff_png(evaluations), "size, accuracy and speed trade-off")
        + _img(plots.latency_png(evaluations), "latency distribution")
        + _img(plots.reliability_png(evaluations), "calibration")
        + "</div>"
        + "".join(_version_section(e) for e in evaluations)
        + "</body></html>"
    )
