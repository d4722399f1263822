"""Budget checks: pass and fail, estimates labelled, host figures not counted for other chipsets."""

from __future__ import annotations

from sarvam_pipeline.budgets import check_budgets

HOST = {"name": "x86_64_host", "host_is_target": True}
DEVICE = {"name": "m3", "host_is_target": False}
BUDGETS = {"p95_latency_ms": 10.0, "artifact_size_mb": 30, "max_accuracy_drop_mean": 0.01,
           "max_accuracy_drop_worst": 0.05, "min_nn_agreement": 0.9}
MEASURED = {"status": "measured", "p95_ms": 12.0, "peak_rss_mb": 100.0, "artifact_bytes": 20_000_000}
ACCURACY = {"method": "measured", "cosine_mean": 0.995, "cosine_worst": 0.9, "nn_agreement": 0.95}


def by_name(checks):
    return {check.name: check for check in checks}


def test_measured_host_figures_checked():
    checks = by_name(check_budgets(BUDGETS, HOST, ACCURACY, MEASURED))
    assert checks["p95_latency_ms"].status == "fail"
    assert checks["artifact_size_mb"].status == "pass"
    assert checks["max_accuracy_drop_mean"].status == "pass"
    assert checks["max_accuracy_drop_worst"].status == "fail"
    assert checks["min_nn_agreement"].status == "pass"


def test_host_latency_not_counted_for_device():
    check = by_name(check_budgets(BUDGETS, DEVICE, ACCURACY, MEASURED))["p95_latency_ms"]
    assert check.status == "not_checked"
    assert "not a m3" in check.note


def test_needs_device_not_checked():
    benchmark = {"status": "needs_device", "reason": "Core ML prediction needs macOS", "artifact_bytes": 1}
    check = by_name(check_budgets(BUDGETS, DEVICE, ACCURACY, benchmark))["p95_latency_ms"]
    assert check.status == "not_checked"
    assert "macOS" in check.note


def test_estimate_is_labelled():
    accuracy = dict(ACCURACY, method="estimated")
    check = by_name(check_budgets(BUDGETS, DEVICE, accuracy, MEASURED))["max_accuracy_drop_mean"]
    assert check.basis == "estimated"
    assert "estimate" in check.note


def test_not_validated_not_checked():
    accuracy = {"method": "not_validated", "reason": "x"}
    check = by_name(check_budgets(BUDGETS, HOST, accuracy, MEASURED))["min_nn_agreement"]
    assert check.status == "not_checked"


def test_no_budgets_no_checks():
    assert check_budgets(None, HOST, ACCURACY, MEASURED) == []
