"""tensorrt runtime on the tiny model: the plan node's trtexec command, and the engine node on a host
without TensorRT, where it is skipped with the reason.

The engine build itself needs an NVIDIA GPU with TensorRT and is not exercised on the development hosts.
"""

from __future__ import annotations

import json
import shlex

import pytest

from conftest import run_stage, tiny_overrides
from test_cli import read_report, run_cli

REASON = "needs an NVIDIA GPU with TensorRT"


@pytest.fixture(scope="module")
def no_tensorrt():
    from sarvam_pipeline.backends.tensorrt import tensorrt_reason

    if tensorrt_reason() is None:
        pytest.skip("this host has TensorRT and an NVIDIA GPU, so the engine is built")


def plan_params(tiny_shared, method: str) -> dict:
    params = {"model": tiny_shared.model, "graph": tiny_shared.model["graphs"][0], "method": method, "max_batch_size": 8}
    if method == "static":
        params["calibration"] = {"method": "entropy", "samples": 16}
    return params


def flag_values(arguments: list[str]) -> dict[str, str]:
    """Map each ``--flag=value`` argument to its value, and a bare ``--flag`` to an empty string."""
    flags = {}
    for argument in arguments[1:]:
        name, _, value = argument.partition("=")
        flags[name] = value
    return flags


def test_plan_writes_fp16_command(tiny_shared, tmp_path):
    result = run_stage("tensorrt_plan", plan_params(tiny_shared, "fp16"), {"model": tiny_shared.onnx}, tmp_path)

    assert (tmp_path / "model.onnx").read_bytes() == (tiny_shared.onnx / "model.onnx").read_bytes()
    arguments = shlex.split((tmp_path / "trtexec_command.txt").read_text(encoding="utf-8"))
    assert arguments[0] == "trtexec"
    flags = flag_values(arguments)
    assert flags["--onnx"] == "model.onnx"
    assert flags["--saveEngine"] == "model.engine"
    assert flags["--fp16"] == ""
    assert "--int8" not in flags
    assert flags["--minShapes"] == "input_ids:1x32,attention_mask:1x32"
    assert flags["--optShapes"] == "input_ids:1x32,attention_mask:1x32"
    assert flags["--maxShapes"] == "input_ids:8x32,attention_mask:8x32"
    assert flags["--memPoolSize"] == "workspace:1024M"
    assert result["trtexec_command"] == shlex.join(arguments)


def test_plan_writes_int8_settings(tiny_shared, tmp_path):
    inputs = {"model": tiny_shared.onnx, "dataset": tiny_shared.dataset}
    run_stage("tensorrt_plan", plan_params(tiny_shared, "static"), inputs, tmp_path)

    flags = flag_values(shlex.split((tmp_path / "trtexec_command.txt").read_text(encoding="utf-8")))
    assert flags["--int8"] == ""
    assert flags["--calib"] == "calibration.cache"
    assert "--fp16" not in flags

    settings = json.loads((tmp_path / "build_settings.json").read_text(encoding="utf-8"))
    assert settings["int8"] is True
    assert settings["calibration"]["calibrator"] == "IInt8EntropyCalibrator2"
    assert settings["calibration"]["samples"] == 16
    assert settings["shapes"]["max"]["attention_mask"] == [8, 32]
    assert (tmp_path / "calibration.npz").read_bytes() == (tiny_shared.dataset / "calibration.npz").read_bytes()


def test_plan_rejects_bad_batch_sizes(tiny_shared, tmp_path):
    params = {**plan_params(tiny_shared, "none"), "opt_batch_size": 16}
    with pytest.raises(ValueError, match="opt_batch_size"):
        run_stage("tensorrt_plan", params, {"model": tiny_shared.onnx}, tmp_path)


def test_build_node_unavailable_here(no_tensorrt):
    from sarvam_pipeline.backends import get_backend
    from stages import get_stage
    from stages.tensorrt_build import TensorRtBuildParams

    assert REASON in get_stage("tensorrt_build").unavailable_reason(TensorRtBuildParams())
    assert REASON in get_backend("tensorrt").unavailable_reason({"device": "GPU"})


def test_planner_chains_plan_and_build(tiny_target):
    from sarvam_pipeline.compiler import compile_plan

    target = tiny_target("chipset=nvidia_rtx_4090", "runtime=tensorrt", "quant=int8_static")
    _, nodes = compile_plan([target]).targets[0]
    build = nodes.artifact
    assert build.kind == "tensorrt_build"
    assert build.upstream["plan"].kind == "tensorrt_plan"
    assert build.upstream["model"].kind == "export_onnx"
    assert build.upstream["plan"].upstream["model"].key == build.upstream["model"].key
    assert build.upstream["dataset"].kind == "dataset"
    assert build.upstream["plan"].params["method"] == "static"


def test_check_recipe_accepts_tensorrt_recipes():
    from sarvam_pipeline.runtimes import get_planner
    from sarvam_pipeline.target import load_recipe
    from sarvam_pipeline.validation import recipes_for_runtime

    names = recipes_for_runtime("tensorrt")
    assert {"fp32", "fp16", "int8_static"} <= set(names)
    for name in names:
        assert get_planner("tensorrt").check_recipe(load_recipe(name)) is None, name
    assert "is not one of" in get_planner("tensorrt").check_recipe(load_recipe("int8_dynamic"))


def test_cli_strict_exits_4(no_tensorrt, tiny_model_dir, tmp_path):
    overrides = tiny_overrides(tiny_model_dir, tmp_path / "artifacts")
    completed = run_cli(*overrides, f"hydra.run.dir={tmp_path / 'run'}", "chipset=nvidia_rtx_4090", "runtime=tensorrt", "fallback=strict")
    assert completed.returncode == 4, completed.stderr[-2000:]
    assert REASON in completed.stderr


def test_cli_degrade_reports_not_built(no_tensorrt, tiny_model_dir, tmp_path):
    overrides = tiny_overrides(tiny_model_dir, tmp_path / "artifacts")
    completed = run_cli(*overrides, f"hydra.run.dir={tmp_path / 'run'}", "chipset=nvidia_rtx_4090", "runtime=tensorrt", "fallback=degrade")
    assert completed.returncode == 5, completed.stderr[-2000:]
    assert "was not built on this host" in completed.stderr + completed.stdout

    report = read_report(tmp_path / "run")
    assert report["built"] is False
    statuses = {row["kind"]: row for row in report["stages"]}
    assert statuses["tensorrt_plan"]["status"] == "ran"
    assert statuses["tensorrt_build"]["status"] == "skipped"
    assert REASON in statuses["tensorrt_build"]["reason"]
    assert report["accuracy"]["method"] == "not_validated"

    plan_folder = statuses["tensorrt_plan"]["path"]
    arguments = shlex.split(open(f"{plan_folder}/trtexec_command.txt", encoding="utf-8").read())
    assert "--fp16" in arguments
