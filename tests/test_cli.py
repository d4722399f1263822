"""The command line: a full run on the tiny model, reruns from cache, one-line errors and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import tiny_overrides

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*arguments: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    environment = dict(os.environ, HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1")
    return subprocess.run(
        [sys.executable, "-m", "sarvam_pipeline", *arguments],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=environment,
        timeout=600,
    )


@pytest.fixture
def tiny_args(tiny_model_dir, tmp_path):
    def make(*extra: str, run_dir: str = "run") -> list[str]:
        return [*tiny_overrides(tiny_model_dir, tmp_path / "artifacts"), f"hydra.run.dir={tmp_path / run_dir}", *extra]

    return make


def read_report(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text(encoding="utf-8"))


def test_run_writes_report(tiny_args, tmp_path):
    completed = run_cli(*tiny_args("runtime=onnxruntime", "quant=int8_dynamic"))
    assert completed.returncode == 0, completed.stderr[-2000:]
    report = read_report(tmp_path / "run")
    assert report["built"] is True
    assert report["accuracy"]["method"] == "measured"
    assert report["performance"]["status"] == "measured"
    assert {row["status"] for row in report["stages"]} == {"ran"}
    assert (tmp_path / "run" / "report.md").is_file()
    assert "sarvam_pipeline summary" in completed.stdout


def test_rerun_uses_cache(tiny_args, tmp_path):
    assert run_cli(*tiny_args("runtime=onnxruntime", "quant=fp32", run_dir="first")).returncode == 0
    completed = run_cli(*tiny_args("runtime=onnxruntime", "quant=fp32", run_dir="second"))
    assert completed.returncode == 0
    assert {row["status"] for row in read_report(tmp_path / "second")["stages"]} == {"cached"}


@pytest.mark.parametrize(
    "override, expected",
    [
        ("chipset=m4", "invalid chipset 'm4'"),
        ("runtime=tflite", "invalid runtime 'tflite'"),
        ("quant=int3", "invalid quant 'int3'"),
        ("model=bert_huge", "invalid model 'bert_huge'"),
    ],
)
def test_unknown_choice_is_one_line_error(override, expected, tiny_args, tmp_path):
    completed = run_cli(*tiny_args(override))
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1
    assert expected in lines[0]
    assert "valid choices" in lines[0]
    assert not (tmp_path / "artifacts").exists()


def test_unsupported_runtime_for_chipset(tiny_args, tmp_path):
    completed = run_cli(*tiny_args("chipset=m3", "runtime=openvino"))
    assert completed.returncode == 2
    assert "chipset m3 does not support it" in completed.stderr
    assert "coreml" in completed.stderr
    assert not (tmp_path / "artifacts").exists()


def test_recipe_rejected_by_runtime(tiny_args, tmp_path):
    completed = run_cli(*tiny_args("runtime=onnxruntime", "quant=palettize_4bit"))
    assert completed.returncode == 2
    assert "runtime onnxruntime does not accept this recipe" in completed.stderr
    assert not (tmp_path / "artifacts").exists()


def test_invalid_recipe_value(tiny_args, tmp_path):
    completed = run_cli(*tiny_args("runtime=onnxruntime", "quant=int8_static", "quant.calibration.method=median"))
    assert completed.returncode == 2
    assert "quant.calibration.method" in completed.stderr
    assert "minmax" in completed.stderr


def test_budget_violation_exits_nonzero(tiny_args, tmp_path):
    budget = "+chipset.budgets.tiny_bert={p95_latency_ms:0.000001}"
    completed = run_cli(*tiny_args("runtime=onnxruntime", "quant=fp32", budget))
    assert completed.returncode == 3
    report = read_report(tmp_path / "run")
    assert report["budgets_violated"] == ["p95_latency_ms"]


def test_budget_enforce_false_exits_zero(tiny_args):
    budget = "+chipset.budgets.tiny_bert={p95_latency_ms:0.000001}"
    completed = run_cli(*tiny_args("runtime=onnxruntime", "quant=fp32", budget, "budgets.enforce=false"))
    assert completed.returncode == 0


def test_dry_run_builds_nothing(tiny_args, tmp_path):
    completed = run_cli(*tiny_args("runtime=onnxruntime", "dry_run=true"))
    assert completed.returncode == 0
    assert "will run" in completed.stderr + completed.stdout
    assert not any((tmp_path / "artifacts").glob("*/*/manifest.json"))


def test_unknown_budget_key_rejected(tiny_args):
    completed = run_cli(*tiny_args("+chipset.budgets.tiny_bert={p99_latency_ms:1}"))
    assert completed.returncode == 2
    assert "invalid chipset.budgets.tiny_bert" in completed.stderr
    assert "p95_latency_ms" in completed.stderr


@pytest.mark.parametrize(
    "override, expected",
    [
        ("benchmark.threads=abc", "could not be converted to Integer"),
        ("bogus_key=1", "Could not override 'bogus_key'"),
        ("benchmark.iterations=0", "invalid benchmark.iterations 0"),
        ("benchmark.threads=-1", "invalid benchmark.threads -1"),
        ("data.languages=[klingon]", "invalid data.languages entry 'klingon'"),
        ("quant=int8_dynamic_accurate quant.accuracy_target.cosine_mean=1.5", "quant.accuracy_target.cosine_mean must be in (0, 1]"),
        ("quant=int8_dynamic_accurate quant.accuracy_target.ranking=random", "valid choices: local_gap, sensitivity"),
        ("rebuild=[benchmarks]", "invalid rebuild entry 'benchmarks'"),
        ("quant=int8_static quant.accuracy_target.ranking=random", "quant.accuracy_target.ranking is 'random'"),
    ],
)
def test_invalid_value_is_one_line_error(override, expected, tiny_args, tmp_path):
    completed = run_cli(*tiny_args(*override.split()))
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1
    assert expected in lines[0]
    assert not (tmp_path / "artifacts").exists()


def test_corrupt_weights_named_before_any_stage(tiny_model_dir, tmp_path):
    import shutil

    from conftest import tiny_overrides

    broken = tmp_path / "broken_model"
    shutil.copytree(tiny_model_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    completed = run_cli(*tiny_overrides(broken, tmp_path / "artifacts"), f"hydra.run.dir={tmp_path / 'run'}")
    assert completed.returncode == 2
    assert f"model weights {weights} are corrupt or truncated" in completed.stderr
    assert not (tmp_path / "artifacts").exists()
