"""The matrix report stage: budget checks, the Markdown table and the plot data, from metrics files."""

from __future__ import annotations

from sarvam_pipeline.dvc.metrics import write_json
from sarvam_pipeline.dvc.report import render_markdown, render_plot, target_row

MEASURED_ACCURACY = {"method": "measured", "cosine_mean": 0.999, "cosine_worst": 0.99, "nn_agreement": 1.0}


def entry(tmp_path, name: str, performance: dict, budgets: dict | None, host_is_target: bool) -> dict:
    write_json(tmp_path / name / "accuracy.json", MEASURED_ACCURACY)
    write_json(tmp_path / name / "performance.json", performance)
    return {
        "chipset": name,
        "accuracy": str(tmp_path / name / "accuracy.json"),
        "performance": str(tmp_path / name / "performance.json"),
        "budgets": budgets,
        "host_is_target": host_is_target,
    }


def test_budget_violation_named(tmp_path):
    performance = {"status": "measured", "p50_ms": 3.0, "p95_ms": 5.0, "peak_rss_mb": 90.0,
                   "artifact_bytes": 2_000_000, "artifact_mb": 2.0}
    row = target_row("m/host/ort/int8", entry(tmp_path, "host", performance, {"p95_latency_ms": 1.0}, True))
    assert [check["status"] for check in row["budgets"]] == ["fail"]
    assert "0 pass, 1 fail, 0 not checked (p95_latency_ms)" in render_markdown([row])


def test_needs_device_row(tmp_path):
    performance = {"status": "needs_device", "reason": "macOS only", "artifact_bytes": 5_000_000, "artifact_mb": 5.0}
    row = target_row("m/m3/coreml/int8", entry(tmp_path, "m3", performance, {"p95_latency_ms": 1.0}, False))
    assert row["budgets"][0]["status"] == "not_checked"
    assert "| needs device | needs device |" in render_markdown([row])
    assert render_plot("latency.csv", [row]) == "target,p50_ms,p95_ms\n"
    assert render_plot("size.csv", [row]) == "target,artifact_mb\nm/m3/coreml/int8,5.0\n"


def test_missing_metrics_reported(tmp_path):
    missing = {"chipset": "host", "accuracy": str(tmp_path / "a.json"), "performance": str(tmp_path / "p.json"),
               "budgets": None, "host_is_target": True}
    row = target_row("m/host/ort/int8", missing)
    assert row["accuracy"]["method"] == "not_validated"
    assert row["performance"]["reason"] == "no metrics file"
    assert "none set" in render_markdown([row])


def test_unavailable_target_metrics_written(tmp_path):
    from sarvam_pipeline.dvc.metrics import read_json
    from sarvam_pipeline.dvc.report import write_unavailable_metrics

    target = {"accuracy": str(tmp_path / "accuracy.json"), "performance": str(tmp_path / "performance.json"),
              "unavailable": {"accuracy": "no GPU", "performance": "no GPU"}}
    write_unavailable_metrics(target)
    assert read_json(tmp_path / "accuracy.json") == {"method": "not_validated", "reason": "no GPU"}
    assert read_json(tmp_path / "performance.json") == {"status": "not_measured", "reason": "no GPU"}
