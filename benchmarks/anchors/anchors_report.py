"""The anchor comparison's Markdown table and its two targets, from the measured rows.

A row is one artifact (an anchor tool's or ours) as a dict. Its keys are ``id``, ``side`` ("theirs" or
"ours"), ``runtime``, ``label``, ``size_mb``, ``build_s``, ``accuracy`` (``cosine_mean``, ``cosine_worst``,
``nn_agreement``), ``latency`` and optionally ``error``. ``latency`` maps a thread count, as a string, to
``p50_ms``, ``p95_ms``, ``peak_rss_mb``, ``load_before``, ``load_after``, ``busy`` and ``attempts``. This
module only reads rows, so it is tested without building or running anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    """Accuracy and latency bounds for one of our runtimes' int8 recipes, against an anchor of the same run."""

    name: str
    runtime: str
    min_cosine: float
    min_nn: float
    anchor: str
    # Our p50 latency may be at most this multiple of the anchor's p50, at every thread count measured.
    max_latency_ratio: float


TARGETS = (
    Target("ONNX Runtime int8 (ours)", "onnxruntime", 0.99, 0.95, "optimum_ort_int8_dynamic", 1.1),
    Target("OpenVINO int8 (ours)", "openvino", 0.999, 0.97, "nncf_ov_int8_static", 1.0),
)


def _num(value: Any, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _latency_cell(row: dict[str, Any], threads: str) -> str:
    figures = (row.get("latency") or {}).get(threads)
    if not figures or figures.get("p50_ms") is None:
        return "-"
    cell = f"{figures['p50_ms']:.2f} / {figures['p95_ms']:.2f}"
    return cell + " (busy)" if figures.get("busy") else cell


def peak_memory(row: dict[str, Any]) -> float | None:
    """Return the largest VmHWM of the fresh processes that ran the artifact, in MiB."""
    peaks = [f["peak_rss_mb"] for f in (row.get("latency") or {}).values() if f.get("peak_rss_mb") is not None]
    return max(peaks) if peaks else None


def thread_counts(rows: list[dict[str, Any]]) -> list[str]:
    return sorted({t for row in rows for t in (row.get("latency") or {})}, key=int)


def results_table(rows: list[dict[str, Any]]) -> list[str]:
    """Return the Markdown lines of the side-by-side table, anchors first, grouped by runtime."""
    threads = thread_counts(rows)
    header = ["side", "artifact", "runtime", "size MB", "cosine mean", "cosine worst", "NN@1"]
    header += [f"p50 / p95 ms, {t} thread{'s' if t != '1' else ''}" for t in threads]
    header += ["peak MB", "build s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|"]
    ordered = sorted(rows, key=lambda r: (r["runtime"], r["side"] != "theirs"))
    for row in ordered:
        accuracy = row.get("accuracy") or {}
        # The error itself is listed under the build commands, so a table cell only marks the failure.
        label = row["label"] + (" (failed)" if row.get("error") else "")
        build = _num(row.get("build_s"), 1)
        if row.get("build_cached"):
            build += " (cached)"
        cells = [
            row["side"],
            label,
            row["runtime"],
            _num(row.get("size_mb"), 1),
            _num(accuracy.get("cosine_mean"), 5),
            _num(accuracy.get("cosine_worst"), 5),
            _num(accuracy.get("nn_agreement"), 3),
        ]
        cells += [_latency_cell(row, t) for t in threads]
        cells += [_num(peak_memory(row), 0), build]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


@dataclass
class Verdict:
    """One of our recipes against one target."""

    recipe: str
    met: bool
    shortfalls: list[str]
    # Our p50 over the anchor's p50, per thread count.
    ratios: dict[str, float]


def judge(target: Target, row: dict[str, Any], anchor: dict[str, Any] | None) -> Verdict:
    """Check one of our artifacts against a target and state by how much each unmet condition is missed."""
    shortfalls: list[str] = []
    ratios: dict[str, float] = {}
    if row.get("error"):
        return Verdict(row["id"], False, ["not built or not measured (the error is listed with the build commands)"], ratios)
    accuracy = row.get("accuracy") or {}
    cosine, nn = accuracy.get("cosine_mean"), accuracy.get("nn_agreement")
    if cosine is None or cosine < target.min_cosine:
        shortfalls.append("cosine not measured" if cosine is None else f"cosine {cosine:.5f}, {target.min_cosine - cosine:.5f} below {target.min_cosine}")
    if nn is None or nn < target.min_nn:
        shortfalls.append("NN@1 not measured" if nn is None else f"NN@1 {nn:.3f}, {target.min_nn - nn:.3f} below {target.min_nn}")
    if anchor is None or anchor.get("error"):
        shortfalls.append(f"anchor {target.anchor} not measured, so latency cannot be compared")
        return Verdict(row["id"], False, shortfalls, ratios)
    for threads in sorted(set(row.get("latency") or {}) | set(anchor.get("latency") or {}), key=int):
        ours = ((row.get("latency") or {}).get(threads) or {}).get("p50_ms")
        theirs = ((anchor.get("latency") or {}).get(threads) or {}).get("p50_ms")
        if ours is None or theirs is None:
            shortfalls.append(f"p50 at {threads} thread(s) not measured for both")
            continue
        ratios[threads] = ours / theirs
        if ratios[threads] > target.max_latency_ratio:
            over = (ratios[threads] / target.max_latency_ratio - 1) * 100
            shortfalls.append(
                f"p50 at {threads} thread(s) {ours:.2f} ms = {ratios[threads]:.2f}x the anchor's {theirs:.2f} ms, "
                f"{over:.0f}% over the {target.max_latency_ratio:g}x limit"
            )
    return Verdict(row["id"], not shortfalls, shortfalls, ratios)


def target_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Return the Markdown lines that state, per target, whether one of our recipes meets it."""
    by_id = {row["id"]: row for row in rows}
    lines: list[str] = []
    for target in TARGETS:
        anchor = by_id.get(target.anchor)
        anchor_label = anchor["label"] if anchor else target.anchor
        latency_rule = (
            f"p50 latency no worse than {target.max_latency_ratio:g}x {anchor_label}"
            if target.max_latency_ratio != 1.0
            else f"p50 latency no worse than {anchor_label}"
        )
        verdicts = [judge(target, row, anchor) for row in rows if row["side"] == "ours" and row["runtime"] == target.runtime]
        winners = [v.recipe for v in verdicts if v.met]
        status = f"**met** by {', '.join(winners)}" if winners else "**not met**"
        lines += [
            f"### {target.name}: {status}",
            "",
            f"Target: mean cosine >= {target.min_cosine}, NN@1 >= {target.min_nn}, {latency_rule}, "
            "at every thread count measured in this run.",
            "",
        ]
        if not verdicts:
            lines += ["No recipe of ours was measured for this runtime.", ""]
            continue
        lines += ["| recipe | p50 ratio to the anchor | result |", "|---|---|---|"]
        for verdict in verdicts:
            ratio_text = ", ".join(f"{r:.2f}x at {t}" for t, r in verdict.ratios.items()) or "-"
            result = "met" if verdict.met else "missed: " + "; ".join(verdict.shortfalls)
            lines.append(f"| {verdict.recipe} | {ratio_text} | {result} |")
        lines.append("")
    return lines


def busy_lines(rows: list[dict[str, Any]], cpu_count: int) -> list[str]:
    """Return a note for every latency figure measured while the load average exceeded the core count."""
    notes = []
    for row in rows:
        for threads, figures in sorted((row.get("latency") or {}).items()):
            if figures.get("busy"):
                notes.append(
                    f"- {row['label']}, {threads} thread(s): load average {figures['load_before']:.2f} before and "
                    f"{figures['load_after']:.2f} after, above the {cpu_count} cores, after {figures['attempts']} attempt(s)"
                )
    if not notes:
        return [f"No latency figure was measured while the 1-minute load average exceeded the {cpu_count} cores.", ""]
    return [
        "Measured while the machine was busy (1-minute load average above the core count, still so after the "
        "retries); these latencies are likely overstated:",
        "",
        *notes,
        "",
    ]
