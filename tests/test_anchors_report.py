"""The anchor comparison's table and target verdicts (benchmarks/anchors/anchors_report.py), on made-up rows."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

MODULE_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "anchors" / "anchors_report.py"


@pytest.fixture(scope="module")
def anchors_report():
    # benchmarks/ is not an installed package, so the module is loaded from its file.
    spec = importlib.util.spec_from_file_location("anchors_report", MODULE_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["anchors_report"] = module
    spec.loader.exec_module(module)
    return module


def latency(p50_1: float, p50_2: float, busy: bool = False) -> dict:
    def figures(p50: float) -> dict:
        return {"p50_ms": p50, "p95_ms": p50 * 1.2, "peak_rss_mb": 300.0, "load_before": 3.5 if busy else 0.5,
                "load_after": 3.0 if busy else 0.6, "busy": busy, "attempts": 3 if busy else 1}

    return {"1": figures(p50_1), "2": figures(p50_2)}


def row(row_id: str, side: str, runtime: str, cosine: float, nn: float, p50_1: float, p50_2: float, busy: bool = False) -> dict:
    return {
        "id": row_id, "side": side, "runtime": runtime, "label": row_id, "size_mb": 23.0, "build_s": 10.0,
        "accuracy": {"cosine_mean": cosine, "cosine_worst": cosine - 0.01, "nn_agreement": nn},
        "latency": latency(p50_1, p50_2, busy),
    }


def test_judge_meets_target_within_latency_ratio(anchors_report):
    target = anchors_report.TARGETS[0]
    anchor = row("optimum_ort_int8_dynamic", "theirs", "onnxruntime", 0.99, 0.95, 10.0, 6.0)
    ours = row("ours_onnxruntime_int8_dynamic", "ours", "onnxruntime", 0.995, 0.96, 10.9, 6.5)

    verdict = anchors_report.judge(target, ours, anchor)

    assert verdict.met
    assert verdict.shortfalls == []
    assert verdict.ratios == pytest.approx({"1": 1.09, "2": 6.5 / 6.0})


def test_judge_states_accuracy_shortfalls(anchors_report):
    target = anchors_report.TARGETS[1]
    anchor = row("nncf_ov_int8_static", "theirs", "openvino", 0.99, 0.9, 10.0, 6.0)
    ours = row("ours_openvino_int8_static", "ours", "openvino", 0.998, 0.96, 9.0, 5.0)

    verdict = anchors_report.judge(target, ours, anchor)

    assert not verdict.met
    assert "cosine 0.99800, 0.00100 below 0.999" in verdict.shortfalls
    assert "NN@1 0.960, 0.010 below 0.97" in verdict.shortfalls
    assert len(verdict.shortfalls) == 2


def test_judge_states_latency_overrun(anchors_report):
    target = anchors_report.TARGETS[1]
    anchor = row("nncf_ov_int8_static", "theirs", "openvino", 0.99, 0.9, 10.0, 6.0)
    ours = row("ours_openvino_int8_static", "ours", "openvino", 0.9995, 0.99, 12.0, 6.0)

    verdict = anchors_report.judge(target, ours, anchor)

    assert not verdict.met
    assert len(verdict.shortfalls) == 1
    assert "1.20x" in verdict.shortfalls[0]
    assert "20% over the 1x limit" in verdict.shortfalls[0]


def test_judge_without_anchor_is_not_met(anchors_report):
    target = anchors_report.TARGETS[0]
    ours = row("ours_onnxruntime_int8_dynamic", "ours", "onnxruntime", 0.999, 0.99, 5.0, 3.0)
    failed_anchor = {"id": "optimum_ort_int8_dynamic", "side": "theirs", "runtime": "onnxruntime", "label": "x", "error": "build failed"}

    assert not anchors_report.judge(target, ours, None).met
    assert not anchors_report.judge(target, ours, failed_anchor).met


def test_target_lines_name_the_recipe_that_meets(anchors_report):
    rows = [
        row("optimum_ort_int8_dynamic", "theirs", "onnxruntime", 0.99, 0.95, 10.0, 6.0),
        row("ours_onnxruntime_a", "ours", "onnxruntime", 0.98, 0.96, 9.0, 5.0),
        row("ours_onnxruntime_b", "ours", "onnxruntime", 0.995, 0.97, 9.0, 5.0),
    ]

    text = "\n".join(anchors_report.target_lines(rows))

    assert "### ONNX Runtime int8 (ours): **met** by ours_onnxruntime_b" in text
    assert "### OpenVINO int8 (ours): **not met**" in text
    assert "No recipe of ours was measured for this runtime." in text


def test_results_table_marks_busy_latency(anchors_report):
    rows = [
        row("optimum_ort_int8_dynamic", "theirs", "onnxruntime", 0.99, 0.95, 10.0, 6.0, busy=True),
        row("ours_onnxruntime_a", "ours", "onnxruntime", 0.995, 0.97, 9.0, 5.0),
    ]

    lines = anchors_report.results_table(rows)

    assert "p50 / p95 ms, 1 thread" in lines[0]
    assert "p50 / p95 ms, 2 threads" in lines[0]
    assert lines[2].startswith("| theirs |")
    assert "10.00 / 12.00 (busy)" in lines[2]
    assert "(busy)" not in lines[3]


def test_busy_lines_list_busy_measurements(anchors_report):
    rows = [row("optimum_ort_int8_dynamic", "theirs", "onnxruntime", 0.99, 0.95, 10.0, 6.0, busy=True)]

    lines = anchors_report.busy_lines(rows, cpu_count=2)

    assert any("load average 3.50 before and 3.00 after, above the 2 cores, after 3 attempt(s)" in line for line in lines)
