"""Backbone comparison report: a markdown table and a PNG plot from the runs of one task.

Every run writes `<out_dir>/<run name>/metrics.json`; the report reads all of
them, so runs of different backbones into one `out_dir` end up side by side.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from sam3_radio.predict.export import atomic_write_text

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"


def load_runs(out_dir: str | Path) -> list[dict[str, Any]]:
    """Return the metrics of every run under `out_dir`, ordered by run name."""
    runs = []
    for path in sorted(Path(out_dir).glob(f"*/{METRICS_FILE}")):
        runs.append(json.loads(path.read_text()))
    return runs


def _format(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value)


def render_markdown(runs: list[dict[str, Any]]) -> str:
    """Render a table with one column per run and one row per headline metric."""
    if not runs:
        raise ValueError("no run to report: no metrics.json was found")
    task = runs[0]["task"]
    names = [run["model"]["name"] for run in runs]
    metric_names: list[str] = []
    for run in runs:
        metric_names += [name for name in run.get("headline", {}) if name not in metric_names]
    rows = [
        ["backbone"] + [str(run["model"]["backbone"]) for run in runs],
        ["window size"] + [_format(run["model"].get("window_size")) for run in runs],
    ]
    for name in metric_names:
        rows.append([name] + [_format(run.get("headline", {}).get(name)) for run in runs])
    latency_unit = runs[0].get("latency", {}).get("unit", "frame")
    rows.append(
        [f"latency (s/{latency_unit})"]
        + [_format(run.get("latency", {}).get("seconds_per_frame")) for run in runs]
    )
    rows.append(["units evaluated"] + [_format(run.get("num_units")) for run in runs])
    rows.append(["units skipped"] + [_format(len(run.get("skipped", []))) for run in runs])

    lines = [f"# {task}: backbone comparison", ""]
    if any(run["model"].get("random_weights") for run in runs):
        lines += ["**Some runs use RANDOM weights: their numbers are meaningless.**", ""]
    lines.append("| metric | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for row in rows:
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    for run in runs:
        for item in run.get("skipped", [])[:20]:
            lines.append(f"- {run['model']['name']}: skipped {item['key']}: {item['reason']}")
    if runs[0].get("notes"):
        lines += [""] + [f"- {note}" for note in runs[0]["notes"]]
    return "\n".join(lines).rstrip() + "\n"


def render_plot(runs: list[dict[str, Any]], path: str | Path) -> None:
    """Plot the headline metrics and the latency of each run as grouped bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [run["model"]["name"] for run in runs]
    metric_names: list[str] = []
    for run in runs:
        metric_names += [name for name in run.get("headline", {}) if name not in metric_names]
    figure, (metrics_axis, latency_axis) = plt.subplots(
        1, 2, figsize=(4 + 1.2 * max(1, len(metric_names)) + 2 * len(names), 4),
        gridspec_kw={"width_ratios": [max(1, len(metric_names)), 1]},
    )
    width = 0.8 / max(1, len(runs))
    positions = np.arange(len(metric_names))
    for index, run in enumerate(runs):
        values = [run.get("headline", {}).get(name) for name in metric_names]
        values = [np.nan if value is None else float(value) for value in values]
        metrics_axis.bar(positions + index * width, values, width, label=names[index])
    metrics_axis.set_xticks(positions + width * (len(runs) - 1) / 2)
    metrics_axis.set_xticklabels(metric_names, rotation=30, ha="right")
    metrics_axis.set_title(f"{runs[0]['task']}: headline metrics")
    metrics_axis.legend()

    latencies = [run.get("latency", {}).get("seconds_per_frame") or np.nan for run in runs]
    latency_axis.bar(names, latencies, color=[f"C{index}" for index in range(len(runs))])
    unit = runs[0].get("latency", {}).get("unit", "frame")
    latency_axis.set_title(f"latency (s/{unit})")
    latency_axis.tick_params(axis="x", rotation=30)
    if any(run["model"].get("random_weights") for run in runs):
        figure.suptitle("RANDOM WEIGHTS: numbers are meaningless", color="darkred")
    figure.tight_layout()
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(temporary, dpi=100)
    plt.close(figure)
    temporary.replace(path)


def write_report(out_dir: str | Path) -> tuple[Path, Path]:
    """Write `report.md` and `report.png` into `out_dir` from its runs; return both paths."""
    out_dir = Path(out_dir)
    runs = load_runs(out_dir)
    markdown_path, plot_path = out_dir / "report.md", out_dir / "report.png"
    atomic_write_text(markdown_path, render_markdown(runs))
    render_plot(runs, plot_path)
    logger.info("wrote %s and %s (%d runs)", markdown_path, plot_path, len(runs))
    return markdown_path, plot_path
