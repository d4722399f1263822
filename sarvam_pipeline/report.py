"""Per-target reports: ``report.json``, ``report.md`` and the summary table printed at the end of a run.

Every figure states how it was obtained: measured on this host, estimated on this host, or not obtained and
why.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from sarvam_pipeline.backends import get_backend
from sarvam_pipeline.budgets import check_budgets
from sarvam_pipeline.executor import Outcome
from sarvam_pipeline.runtimes.base import TargetNodes
from sarvam_pipeline.target import Target
from sarvam_pipeline.versions import host_summary, tool_versions

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# A benchmark ran on a busy host when other processes used more than this share of the host's CPU time
# during the timed runs (other_cpu_share). Results without that figure fall back to the 1-minute load
# average, busy above BUSY_LOAD_PER_CPU per CPU.
BUSY_OTHER_CPU_SHARE = 0.10
BUSY_LOAD_PER_CPU = 0.75


def competing_work(performance: dict[str, Any]) -> str | None:
    """Return what competed for the cores during a latency measurement, or None when the host was quiet."""
    share = performance.get("other_cpu_share")
    if share is not None:
        if share > BUSY_OTHER_CPU_SHARE:
            return f"other processes used {share:.0%} of the host's CPU time"
        return None
    load, cpus = performance.get("load_average_1min"), performance.get("cpu_count")
    if load is not None and cpus and load > cpus * BUSY_LOAD_PER_CPU:
        return f"the 1-minute load average was {load:.1f} on {cpus} CPUs"
    return None


def _stage_rows(plan_keys: list[str], outcomes: dict[str, Outcome]) -> list[dict[str, Any]]:
    rows = []
    for key in plan_keys:
        outcome = outcomes[key]
        rows.append(
            {
                "name": outcome.node.label or outcome.node.name,
                "kind": outcome.node.kind,
                "key": key,
                "status": outcome.status,
                "seconds": round(outcome.seconds if outcome.status == "ran" else 0.0, 3),
                "built_in_seconds": outcome.manifest.get("seconds"),
                "reason": outcome.reason,
                "path": str(outcome.path) if outcome.path else None,
            }
        )
    return rows


def _artifact_rows(target: Target, artifact: Outcome) -> list[dict[str, Any]]:
    if artifact.status == "skipped" or artifact.path is None:
        return []
    deployable = get_backend(target.runtime["name"]).artifact_file(artifact.path)
    rows = []
    for relative, record in sorted(artifact.manifest.get("files", {}).items()):
        path = artifact.path / relative
        rows.append(
            {
                "path": str(path),
                "bytes": record["bytes"],
                "sha256": record["sha256"],
                "deployable": path == deployable or deployable in path.parents,
            }
        )
    return rows


def build_report(target: Target, nodes: TargetNodes, keys: list[str], outcomes: dict[str, Outcome], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Assemble the report of one target from the outcomes of its nodes."""
    artifact = outcomes[nodes.artifact.key]
    validation = outcomes[nodes.validation.key]
    benchmark = outcomes[nodes.benchmark.key]

    if validation.status == "skipped":
        accuracy = {"method": "not_validated", "reason": validation.reason}
    else:
        accuracy = dict(validation.result)
    if benchmark.status == "skipped":
        performance = {"status": "not_measured", "reason": benchmark.reason}
    else:
        performance = dict(benchmark.result)

    checks = check_budgets(target.budgets, target.chipset, accuracy, performance)
    violated = [check.name for check in checks if check.status == "fail"]
    report = {
        "schema_version": SCHEMA_VERSION,
        "target": {
            "id": target.id,
            "model": target.model["name"],
            "chipset": target.chipset["name"],
            "runtime": target.runtime["name"],
            "runtime_options": target.runtime.get("options", {}),
            "quant": target.quant["name"],
            "quant_description": target.quant.get("description", ""),
        },
        "built": artifact.status in ("ran", "cached"),
        # The file (or .mlpackage folder) an application loads.
        "deployable_artifact": (
            str(get_backend(target.runtime["name"]).artifact_file(artifact.path)) if artifact.path else None
        ),
        "stages": _stage_rows(keys, outcomes),
        "artifacts": _artifact_rows(target, artifact),
        "accuracy": accuracy,
        "performance": performance,
        "budgets": [check.as_dict() for check in checks],
        "budgets_note": "" if target.budgets else f"no budgets set for model {target.model['name']} on chipset {target.chipset['name']}",
        "budgets_violated": violated,
        "host": host_summary(),
        "versions": tool_versions(),
    }
    report["numeric_gap"] = _gap_section(nodes, outcomes)
    if artifact.result and artifact.result.get("keep_float"):
        report["keep_float"] = artifact.result["keep_float"]
    if extra:
        report.update(extra)
    return report


def _gap_section(nodes: TargetNodes, outcomes: dict[str, Outcome]) -> dict[str, Any]:
    if nodes.gap is None:
        return {"status": "not_computed", "reason": "only quantized ONNX Runtime (CPU) and OpenVINO artifacts are compared layer by layer"}
    outcome = outcomes.get(nodes.gap.key)
    if outcome is None or outcome.status not in ("ran", "cached"):
        return {"status": "not_computed", "reason": outcome.reason if outcome is not None else "not run"}
    return {"status": "computed", **outcome.result}


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def render_markdown(report: dict[str, Any]) -> str:
    target = report["target"]
    lines = [
        f"# Build report: {target['id']}",
        "",
        f"- model: `{target['model']}`, chipset: `{target['chipset']}`, runtime: `{target['runtime']}`, "
        f"recipe: `{target['quant']}` ({target['quant_description']})",
        f"- host: {report['host']['cpu']} ({report['host']['os']} {report['host']['arch']})",
        f"- built: {'yes' if report['built'] else 'no'}",
        "",
    ]
    decision = report.get("runtime_decision")
    if decision:
        lines += ["", "## Runtime decision", "", f"runtime=auto chose `{decision['chosen']}`: {decision['reason']}", ""]
        lines += [f"- passed over `{row['entry']}`: {row['reason']}" for row in decision["passed_over"]]
    fallback = report.get("fallback")
    if fallback and fallback.get("reason"):
        ran_on = fallback["ran_on"]
        if not ran_on:
            outcome = f"Nothing that runs this artifact is usable here, so it was {'built but not run' if report['built'] else 'neither built nor run'} (fallback={fallback['mode']})."
        elif report["accuracy"].get("estimate_for"):
            outcome = (
                f"Accuracy was estimated on `{ran_on}` from the same graph, and latency needs the device "
                f"(fallback={fallback['mode']})."
            )
        else:
            outcome = f"Validation and benchmark ran on `{ran_on}` (fallback={fallback['mode']})."
        lines += [
            "",
            "## Fallback",
            "",
            f"Requested `{fallback['requested']}`, which cannot run on this host: {fallback['reason']}.",
            outcome,
        ]
    lines += [
        "",
        "## Stages",
        "",
        "| stage | key | status | seconds | note |",
        "|---|---|---|---:|---|",
    ]
    for row in report["stages"]:
        lines.append(f"| {row['name']} | `{row['key']}` | {row['status']} | {row['seconds']:.1f} | {row['reason']} |")

    lines += ["", "## Artifacts", "", "| path | bytes | sha256 |", "|---|---:|---|"]
    for row in report["artifacts"]:
        lines.append(f"| `{row['path']}` | {row['bytes']} | `{row['sha256'][:16]}…` |")

    accuracy = report["accuracy"]
    lines += ["", "## Accuracy", ""]
    if accuracy.get("method") in ("measured", "estimated"):
        lines += [
            f"Obtained: **{accuracy['method']}** ({accuracy.get('how', '')}), {accuracy.get('samples')} evaluation samples.",
            "",
            "| metric | value |",
            "|---|---:|",
            f"| cosine similarity, mean | {_fmt(accuracy.get('cosine_mean'), 5)} |",
            f"| cosine similarity, worst sample | {_fmt(accuracy.get('cosine_worst'), 5)} |",
            f"| nearest-neighbour agreement (top-1) | {_fmt(accuracy.get('nn_agreement'), 3)} |",
        ]
        if accuracy.get("worst_text"):
            lines.append(f"\nWorst sample: \"{accuracy['worst_text']}\"")
    else:
        lines.append(f"Not validated: {accuracy.get('reason', '')}")

    lines += _render_gap(report)

    performance = report["performance"]
    lines += ["", "## Performance", ""]
    if performance.get("status") in ("measured", "simulated"):
        if performance["status"] == "simulated":
            lines += [
                f"**Simulator time, not device latency**: {performance['where']}.",
                "",
            ]
        lines += [
            f"{'Simulated' if performance['status'] == 'simulated' else 'Measured'} on this host, batch {performance['batch_size']}, "
            f"sequence {performance['sequence_length']}, "
            f"{performance['threads']} threads, {performance['warmup']} warm-up and {performance['iterations']} timed runs.",
            "",
            "| figure | value |",
            "|---|---:|",
            f"| latency p50 (ms) | {_fmt(performance['p50_ms'], 3)} |",
            f"| latency p95 (ms) | {_fmt(performance['p95_ms'], 3)} |",
            f"| peak memory of the inference process (MB) | {_fmt(performance['peak_rss_mb'], 1)} |",
            f"| artifact size (bytes) | {performance['artifact_bytes']} |",
        ]
        competition = competing_work(performance)
        if competition:
            lines.append(
                f"\nNOTE: {competition} during the measurement, so other work competed for the cores and latency "
                "is likely overstated. Rerun with rebuild=[benchmark] on a quiet host to measure it again."
            )
    else:
        lines.append(f"Latency and memory not measured: {performance.get('reason', '')}")
        if "artifact_bytes" in performance:
            lines.append(f"\nArtifact size: {performance['artifact_bytes']} bytes.")

    lines += ["", "## Budgets", ""]
    if report["budgets"]:
        lines += ["| budget | limit | value | status | basis | note |", "|---|---:|---:|---|---|---|"]
        for check in report["budgets"]:
            lines.append(
                f"| {check['name']} | {_fmt(check['limit'])} | {_fmt(check['value'])} | {check['status']} | {check['basis']} | {check['note']} |"
            )
    else:
        lines.append(report["budgets_note"])

    lines += ["", "## Versions", "", "| tool | version |", "|---|---|"]
    lines += [f"| {name} | {version} |" for name, version in sorted(report["versions"].items())]
    return "\n".join(lines) + "\n"


def _render_gap(report: dict[str, Any]) -> list[str]:
    """Render the keep-float search and the layer-wise numeric gap as Markdown lines."""
    lines: list[str] = []
    search = report.get("keep_float")
    if search:
        kept = search["kept_float"]
        lines += [
            "",
            "## Nodes kept in float",
            "",
            f"The recipe's accuracy target {search['target']} ({search['ranking']} ranking, {search['samples']} "
            f"calibration rows) was "
            + ("met." if search["met"] else f"not met: {search['stopped_because']}."),
        ]
        if kept:
            lines += ["", "| node | op type | layer |", "|---|---|---|"]
            lines += [f"| `{entry['node']}` | {entry['op_type']} | {entry['layer']} |" for entry in kept]

    gap = report.get("numeric_gap") or {}
    lines += ["", "## Numeric gap by layer", ""]
    if gap.get("status") != "computed":
        lines.append(f"Not computed: {gap.get('reason', '')}")
        return lines
    lines += [
        f"{gap['compared_tensors']} node outputs compared with the float model on {gap['samples']} evaluation rows "
        f"({gap['metric']}). {gap['quantized_nodes']} nodes run quantized.",
        "",
        "Quantized nodes that add the most error:",
        "",
        "| node | op type | layer | output error | local gap |",
        "|---|---|---|---:|---:|",
    ]
    lines += [
        f"| `{row['node']}` | {row['op_type']} | {row['layer']} | {row['error']:.4f} | {row['local']:.4f} |"
        for row in gap["top_quantized_nodes"]
    ]
    lines += ["", "Local gap by op type (sum over nodes, positive parts only):", "", "| op type | nodes | local gap sum | largest |", "|---|---:|---:|---:|"]
    lines += [
        f"| {row['op_type']} | {row['nodes']} | {row['local_sum']:.4f} | {row['local_max']:.4f} |" for row in gap["op_types"][:8]
    ]
    return lines


def write_report(report: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / "report.json"
    markdown_path = folder / "report.md"
    json_path.write_text(json.dumps(report, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    markdown_path.write_text(render_markdown(report), encoding="utf-8")
    return json_path, markdown_path


def _latency_cell(performance: dict[str, Any]) -> str:
    if performance.get("status") == "measured":
        return _fmt(performance.get("p95_ms"), 2)
    if performance.get("status") == "simulated":
        return f"{_fmt(performance.get('p95_ms'), 2)} (simulator)"
    return "needs device"


def print_summary(reports: list[dict[str, Any]], console: Console | None = None) -> None:
    """Print one row per target: status, accuracy, latency, size and budgets."""
    console = console or Console()
    table = Table(title="sarvam_pipeline summary")
    for column in ("target", "built", "cosine mean/worst", "NN@1", "accuracy", "p95 ms", "peak MB", "size MB", "budgets"):
        table.add_column(column)
    for report in reports:
        accuracy, performance = report["accuracy"], report["performance"]
        measured = performance.get("status") == "measured"
        statuses = [check["status"] for check in report["budgets"]]
        budget_text = (
            f"{statuses.count('pass')} pass, {statuses.count('fail')} fail, {statuses.count('not_checked')} not checked"
            if statuses
            else "none set"
        )
        table.add_row(
            report["target"]["id"],
            "yes" if report["built"] else "no",
            f"{_fmt(accuracy.get('cosine_mean'), 4)} / {_fmt(accuracy.get('cosine_worst'), 4)}",
            _fmt(accuracy.get("nn_agreement"), 3),
            accuracy.get("method", "-"),
            _latency_cell(performance),
            _fmt(performance.get("peak_rss_mb"), 0) if measured else "-",
            _fmt(performance["artifact_bytes"] / 1e6, 1) if "artifact_bytes" in performance else "-",
            budget_text,
        )
    console.print(table)


if __name__ == "__main__":
    # `python -m sarvam_pipeline.report <multirun dir>` writes the sweep report of a multirun.
    import sys

    from sarvam_pipeline.sweep_report import main

    sys.exit(main())
