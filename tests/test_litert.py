"""LiteRT on the tiny model: litert-torch conversion in .venv-litert, the ai-edge-litert Interpreter here.

Tests that convert need the LiteRT environment (`make setup-litert`, which `make test` runs) and skip with
the reason when it is missing. The missing-environment errors are tested everywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_SEQUENCE_LENGTH, run_stage, tiny_overrides
from sarvam_pipeline.litert_env import PYTHON_VARIABLE, environment_problem, environment_versions
from sarvam_pipeline.paths import REPO_ROOT

LITERT_PROBLEM = environment_problem()
needs_litert_env = pytest.mark.skipif(LITERT_PROBLEM is not None, reason=str(LITERT_PROBLEM))

CPU = {"delegate": "CPU"}


def convert(tiny_model, out: Path, method: str, weight_bits: int = 8) -> dict:
    params = {
        "model": tiny_model,
        "graph": tiny_model["graphs"][0],
        "method": method,
        "weight_bits": weight_bits,
        "per_channel": True,
        "environment": environment_versions(),
    }
    return run_stage("litert_convert", params, {}, out)


@pytest.fixture(scope="module")
def fp32_tflite(tmp_path_factory, tiny_model) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("litert_fp32")
    return out, convert(tiny_model, out, "none", weight_bits=32)


@pytest.fixture(scope="module")
def dynamic_tflite(tmp_path_factory, tiny_model) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("litert_dynamic")
    return out, convert(tiny_model, out, "dynamic")


def validate(folder: Path, tiny_shared, out: Path) -> dict:
    params = {"runtime": "litert", "options": CPU, "batch_size": 16}
    inputs = {"artifact": folder, "dataset": tiny_shared.dataset, "reference": tiny_shared.reference}
    return run_stage("validate", params, inputs, out)


@needs_litert_env
def test_fp32_conversion_matches_torch(fp32_tflite):
    folder, result = fp32_tflite

    assert (folder / "model.tflite").is_file()
    assert result["max_abs_diff_vs_torch"] < 1e-4
    assert result["weight_bits"] == 32


@needs_litert_env
def test_conversion_inputs_are_int32(fp32_tflite):
    _, result = fp32_tflite
    inputs = {tensor["name"]: tensor for tensor in result["signature"]["inputs"]}

    assert set(inputs) == {"input_ids", "attention_mask"}
    for tensor in inputs.values():
        assert tensor["dtype"] == "int32"
        assert tensor["shape"] == [1, TINY_SEQUENCE_LENGTH]


@needs_litert_env
def test_conversion_records_environment_versions(fp32_tflite):
    _, result = fp32_tflite
    expected = environment_versions()

    for name in ("litert-torch", "ai-edge-litert", "torch"):
        assert result["environment"][name] == expected[name]
    assert result["environment"]["python_executable"]


@needs_litert_env
def test_dynamic_int8_is_smaller(fp32_tflite, dynamic_tflite):
    fp32_bytes = (fp32_tflite[0] / "model.tflite").stat().st_size
    int8_bytes = (dynamic_tflite[0] / "model.tflite").stat().st_size

    # The tiny model's weights are mostly the 30522 x 32 embedding table, which int8 shrinks fourfold.
    assert int8_bytes < 0.5 * fp32_bytes
    assert dynamic_tflite[1]["method"] == "dynamic"


@needs_litert_env
def test_interpreter_reloads_saved_file(dynamic_tflite, tiny_shared):
    from sarvam_pipeline.backends import get_backend
    from stages.dataset import load_split

    session = get_backend("litert").load(dynamic_tflite[0], CPU, threads=1)
    evaluation = load_split(tiny_shared.dataset, "evaluation")
    output = session.run({name: array[:1] for name, array in evaluation.items()})

    assert output.shape == (1, 32)
    assert output.dtype == np.float32
    assert abs(float(np.linalg.norm(output)) - 1.0) < 1e-3


@needs_litert_env
def test_validation_of_fp32_matches_reference(fp32_tflite, tiny_shared, tmp_path):
    result = validate(fp32_tflite[0], tiny_shared, tmp_path)

    assert result["method"] == "measured"
    assert result["cosine_mean"] > 0.9999
    assert result["cosine_worst"] > 0.9999
    assert result["nn_agreement"] == 1.0


@needs_litert_env
def test_validation_of_dynamic_int8_stays_close(dynamic_tflite, tiny_shared, tmp_path):
    result = validate(dynamic_tflite[0], tiny_shared, tmp_path)

    assert result["cosine_mean"] > 0.99
    assert result["cosine_worst"] > 0.95
    assert (tmp_path / "outputs.npy").is_file()


@needs_litert_env
def test_benchmark_measures_latency(dynamic_tflite, tiny_shared, tmp_path):
    params = {"runtime": "litert", "options": CPU, "warmup": 2, "iterations": 5, "threads": 2}
    result = run_stage("benchmark", params, {"artifact": dynamic_tflite[0], "dataset": tiny_shared.dataset}, tmp_path)

    assert result["status"] == "measured"
    assert result["artifact"] == "model.tflite"
    assert result["artifact_bytes"] == (dynamic_tflite[0] / "model.tflite").stat().st_size
    assert 0 < result["p50_ms"] <= result["p95_ms"]
    assert result["peak_rss_mb"] > 0
    assert result["placement"] == {"delegate": "CPU", "threads": 2}


@needs_litert_env
def test_plan_key_includes_environment_versions(tiny_target):
    from sarvam_pipeline.compiler import compile_plan

    plan = compile_plan([tiny_target("chipset=x86_64_host", "runtime=litert", "quant=int8_weight_only")])
    artifact = plan.targets[0][1].artifact

    assert artifact.kind == "litert_convert"
    assert artifact.params["method"] == "weight_only"
    assert artifact.params["environment"]["litert-torch"] == environment_versions()["litert-torch"]


@needs_litert_env
def test_main_job_builds_weight_only(tiny_model_dir, tmp_path):
    overrides = tiny_overrides(tiny_model_dir, tmp_path / "store") + [
        "chipset=x86_64_host",
        "runtime=litert",
        "quant=int8_weight_only",
        f"report_dir={tmp_path / 'report'}",
    ]
    completed = subprocess.run(
        [sys.executable, "-m", "sarvam_pipeline", *overrides], cwd=REPO_ROOT, capture_output=True, text=True, timeout=900
    )
    assert completed.returncode == 0, completed.stderr[-2000:]

    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["built"] is True
    assert report["deployable_artifact"].endswith("model.tflite")
    assert report["accuracy"]["cosine_mean"] > 0.99


def test_missing_environment_stops_main_job(tiny_model_dir, tmp_path):
    missing = tmp_path / "no-venv" / "bin" / "python"
    overrides = tiny_overrides(tiny_model_dir, tmp_path / "store") + ["chipset=x86_64_host", "runtime=litert"]
    completed = subprocess.run(
        [sys.executable, "-m", "sarvam_pipeline", *overrides],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, PYTHON_VARIABLE: str(missing)},
    )
    error_lines = completed.stderr.strip().splitlines()

    assert completed.returncode == 2
    assert len(error_lines) == 1
    assert str(missing) in error_lines[0]
    assert "make setup-litert" in error_lines[0]
    assert PYTHON_VARIABLE in error_lines[0]
    assert not (tmp_path / "store").exists()


def test_environment_without_litert_torch_is_named(monkeypatch):
    # The project's own interpreter has ai-edge-litert and torch, but litert-torch is kept out of it.
    monkeypatch.setenv(PYTHON_VARIABLE, sys.executable)

    problem = environment_problem()

    assert problem is not None
    assert "lacks litert-torch" in problem
    assert "make setup-litert" in problem


def test_missing_environment_marks_conversion_unavailable(monkeypatch, tmp_path):
    from stages import get_stage
    from stages.litert_convert import LiteRtConvertParams

    from sarvam_pipeline.runtimes import get_planner

    monkeypatch.setenv(PYTHON_VARIABLE, str(tmp_path / "missing-python"))

    reason = get_stage("litert_convert").unavailable_reason(LiteRtConvertParams())
    assert reason is not None
    assert "make setup-litert" in reason
    assert get_planner("litert").build_problem(CPU) == reason


@needs_litert_env
def test_conversion_rejects_changed_environment(tiny_model, tmp_path):
    params = {
        "model": tiny_model,
        "graph": tiny_model["graphs"][0],
        "environment": {**environment_versions(), "litert-torch": "0.0.1"},
    }

    with pytest.raises(RuntimeError, match="litert-torch 0.0.1 -> "):
        run_stage("litert_convert", params, {}, tmp_path)


def test_planner_rejects_4bit_weights():
    from sarvam_pipeline.runtimes import get_planner
    from sarvam_pipeline.target import load_recipe

    recipe = {**load_recipe("int8_weight_only"), "weight_bits": 4}

    assert "8 bits" in get_planner("litert").check_recipe(recipe)


def test_planner_accepts_int8_recipes():
    from sarvam_pipeline.runtimes import get_planner
    from sarvam_pipeline.target import load_recipe

    for name in ("fp32", "int8_dynamic", "int8_weight_only"):
        assert get_planner("litert").check_recipe(load_recipe(name)) is None, name


def test_backend_rejects_device_delegates():
    from sarvam_pipeline.backends import get_backend

    reason = get_backend("litert").unavailable_reason({"delegate": "GPU"})

    assert "GPU delegate" in reason
    assert get_backend("litert").unavailable_reason(CPU) is None
