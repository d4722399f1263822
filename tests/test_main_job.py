"""The main job end to end on the real all-MiniLM-L6-v2 weights (several minutes on 2 cores)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def run_main(store: Path, run_dir: Path, *overrides: str) -> dict:
    environment = dict(os.environ, HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1")
    completed = subprocess.run(
        [sys.executable, "-m", "sarvam_pipeline", *overrides, f"store.root={store}", f"hydra.run.dir={run_dir}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment,
        timeout=1800,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads((run_dir / "report.json").read_text(encoding="utf-8"))


def statuses(report: dict) -> dict[str, str]:
    return {row["kind"]: row["status"] for row in report["stages"]}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="module")
def coreml_report(store, tmp_path_factory) -> dict:
    return run_main(store, tmp_path_factory.mktemp("coreml"), "chipset=m3", "runtime=coreml")


def test_coreml_builds_mlpackage(coreml_report):
    artifact = Path(coreml_report["deployable_artifact"])
    assert artifact.name == "model.mlpackage"
    assert artifact.is_dir()
    assert coreml_report["target"]["quant"] == "int8_weight_only"


def test_coreml_accuracy_is_labelled_estimate(coreml_report):
    accuracy = coreml_report["accuracy"]
    assert accuracy["method"] == "estimated"
    assert accuracy["cosine_mean"] > 0.99
    assert accuracy["samples"] == 200


def test_coreml_latency_needs_device(coreml_report):
    performance = coreml_report["performance"]
    assert performance["status"] == "needs_device"
    assert performance["artifact_bytes"] < 30_000_000
    latency = next(check for check in coreml_report["budgets"] if check["name"] == "p95_latency_ms")
    assert latency["status"] == "not_checked"


def test_coreml_report_has_versions(coreml_report):
    assert coreml_report["versions"]["coremltools"] == "9.0"
    assert coreml_report["versions"]["torch"].startswith("2.13")


def test_onnxruntime_reuses_shared_stages(store, coreml_report, tmp_path_factory):
    # Latency on a shared CI machine varies too much to gate a test on, so budgets are reported only.
    report = run_main(
        store,
        tmp_path_factory.mktemp("ort"),
        "chipset=x86_64_host",
        "runtime=onnxruntime",
        "quant=int8_dynamic",
        "budgets.enforce=false",
    )
    result = statuses(report)
    assert result["dataset"] == "cached"
    assert result["reference"] == "cached"
    assert result["export_onnx"] == "ran"
    assert report["accuracy"]["method"] == "measured"
    assert report["accuracy"]["cosine_mean"] > 0.98
    assert report["performance"]["status"] == "measured"
    assert report["performance"]["p95_ms"] > 0
    assert {check["name"] for check in report["budgets"]} >= {"p95_latency_ms", "min_nn_agreement"}


def test_same_command_twice_reruns_nothing(store, coreml_report, tmp_path_factory):
    report = run_main(store, tmp_path_factory.mktemp("coreml_again"), "chipset=m3", "runtime=coreml")
    assert set(statuses(report).values()) == {"cached"}
