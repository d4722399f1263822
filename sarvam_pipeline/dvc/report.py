"""The report stage: one Markdown table of every target's figures and budgets, and plot data for DVC.

It reads the metrics files that the validation and benchmark stages wrote, and the ``targets`` section of
params.yaml: budgets, and whether the chipset is this host. Budgets are checked with the same rules as in the
per-target report of a direct run.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any

from sarvam_pipeline.budgets import check_budgets
from sarvam_pipeline.dvc.layout import PLOT_FILES, PipelineLayout
from sarvam_pipeline.dvc.metrics import read_json, write_json
from sarvam_pipeline.dvc.run_node import load_params

log = logging.getLogger(__name__)

# Columns of each plot file besides the target id.
PLOT_COLUMNS = {
    "accuracy.csv": ("cosine_mean", "cosine_worst", "nn_agreement"),
    "latency.csv": ("p50_ms", "p95_ms"),
    "size.csv": ("artifact_mb",),
}


def _format(value: Any, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def budget_summary(checks: list[dict[str, Any]]) -> str:
    if not checks:
        return "none set"
    statuses = [check["status"] for check in checks]
    failed = [check["name"] for check in checks if check["status"] == "fail"]
    summary = (
        f"{statuses.count('pass')} pass, {statuses.count('fail')} fail, "
        f"{statuses.count('not_checked')} not checked"
    )
    return f"{summary} ({', '.join(failed)})" if failed else summary


def target_row(target_id: str, entry: dict[str, Any]) -> dict[str, Any]:
    """Collect one target's metrics and budget checks."""
    accuracy = read_json(Path(entry["accuracy"])) or {"method": "not_validated", "reason": "no metrics file"}
    performance = read_json(Path(entry["performance"])) or {"status": "not_measured", "reason": "no metrics file"}
    chipset = {"name": entry["chipset"], "host_is_target": entry["host_is_target"]}
    checks = [check.as_dict() for check in check_budgets(entry["budgets"], chipset, accuracy, performance)]
    return {"target": target_id, "accuracy": accuracy, "performance": performance, "budgets": checks}


def render_markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "# Build matrix report",
        "",
        "Written by the `report` stage of the DVC pipeline from the metrics files of each target. Accuracy is",
        "measured on this host, or estimated where the runtime cannot run here; latency and memory are measured",
        "on the host that ran `dvc repro`, and checked against a budget only where that host is the chipset.",
        "",
        "| target | accuracy | cosine mean | cosine worst | NN@1 | p50 ms | p95 ms | peak MB | size MB | budgets |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        accuracy, performance = row["accuracy"], row["performance"]
        measured = performance.get("status") == "measured"
        lines.append(
            "| "
            + " | ".join(
                [
                    f"`{row['target']}`",
                    accuracy.get("method", "-"),
                    _format(accuracy.get("cosine_mean"), 5),
                    _format(accuracy.get("cosine_worst"), 5),
                    _format(accuracy.get("nn_agreement"), 3),
                    _format(performance.get("p50_ms"), 2) if measured else "needs device",
                    _format(performance.get("p95_ms"), 2) if measured else "needs device",
                    _format(performance.get("peak_rss_mb"), 0) if measured else "-",
                    _format(performance.get("artifact_mb"), 2),
                    budget_summary(row["budgets"]),
                ]
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def render_plot(file_name: str, rows: list[dict[str, Any]]) -> str:
    """Return CSV plot data: one line per target that has the plotted figure."""
    columns = PLOT_COLUMNS[file_name]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["target", *columns])
    for row in rows:
        figures = {**row["accuracy"], **row["performance"]}
        if figures.get(PLOT_FILES[file_name]) is None:
            continue
        writer.writerow([row["target"], *(figures.get(column, "") for column in columns)])
    return buffer.getvalue()


def write_unavailable_metrics(entry: dict[str, Any]) -> None:
    """Write the metrics files of a target whose validation or benchmark node this host cannot build."""
    reasons = entry.get("unavailable", {})
    if "accuracy" in reasons:
        write_json(Path(entry["accuracy"]), {"method": "not_validated", "reason": reasons["accuracy"]})
    if "performance" in reasons:
        write_json(Path(entry["performance"]), {"status": "not_measured", "reason": reasons["performance"]})


def write_report(layout: PipelineLayout) -> Path:
    """Write the matrix report and its plot files; return the Markdown file's path."""
    params = load_params(layout)
    for entry in params["targets"].values():
        write_unavailable_metrics(entry)
    rows = [target_row(target_id, entry) for target_id, entry in sorted(params["targets"].items())]

    markdown = Path(layout.report_markdown)
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text(render_markdown(rows), encoding="utf-8")
    for file_name in PLOT_FILES:
        Path(layout.plot_file(file_name)).write_text(render_plot(file_name, rows), encoding="utf-8")
    log.info("matrix report of %d targets written to %s", len(rows), markdown)
    return markdown
