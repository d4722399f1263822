"""OpenVINO runtime on the tiny model: IR conversion, every NNCF method, the backend and the planner.

Everything runs the installed OpenVINO and NNCF on the CPU device, with no mocks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import run_stage

# f32 keeps float layers out of bf16 on CPUs with native bf16 (AVX512_BF16, AMX), so only the recipe changes the numbers.
CPU_OPTIONS = {"device": "CPU", "inference_precision": "f32"}

RECIPES: dict[str, dict[str, Any]] = {
    "none": {"method": "none"},
    "fp16": {"method": "fp16", "weight_bits": 16},
    "static": {
        "method": "static",
        "weight_bits": 8,
        "activation_bits": 8,
        "calibration": {"method": "minmax", "samples": 32},
        "options": {"model_type": "transformer"},
    },
    "int8_weight_only": {"method": "weight_only", "weight_bits": 8},
    "int4_weight_only": {"method": "weight_only", "weight_bits": 4, "block_size": 32, "per_channel": False},
}

# Lowest accepted mean cosine to the float reference on the tiny random-weight model. Measured values
# (openvino 2026.4.1, nncf 3.4.0, AMD EPYC with AVX2): 1.0 for none and fp16, about 0.99998 for the others.
MIN_COSINE_MEAN = {
    "none": 0.999999,
    "fp16": 0.99999,
    "static": 0.999,
    "int8_weight_only": 0.999,
    "int4_weight_only": 0.999,
}


@pytest.fixture(scope="module")
def converted(tiny_shared, tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("openvino_convert")
    return out, run_stage("openvino_convert", {}, {"model": tiny_shared.onnx}, out)


@pytest.fixture(scope="module")
def compressed(converted, tiny_shared, tmp_path_factory) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Output folder and result of openvino_compress for every recipe in RECIPES."""
    outputs = {}
    for name, params in RECIPES.items():
        out = tmp_path_factory.mktemp(f"openvino_{name}")
        inputs = {"model": converted[0], "dataset": tiny_shared.dataset}
        outputs[name] = (out, run_stage("openvino_compress", params, inputs, out))
    return outputs


def constant_types(xml: Path) -> set[str]:
    import openvino as ov

    model = ov.Core().read_model(str(xml))
    return {op.get_element_type().get_type_name() for op in model.get_ops() if op.get_type_name() == "Constant"}


def test_convert_writes_fp32_ir(converted):
    folder, result = converted
    assert (folder / "model.xml").is_file()
    assert (folder / "model.bin").is_file()
    assert "f16" not in constant_types(folder / "model.xml")
    assert result["max_abs_diff_vs_onnxruntime"] <= 1e-4
    assert result["inputs"] == ["input_ids", "attention_mask"]


@pytest.mark.parametrize("name", list(RECIPES))
def test_compress_output_runs(name, compressed, tiny_shared):
    from sarvam_pipeline.backends import get_backend
    from stages.dataset import load_split

    folder, _ = compressed[name]
    assert (folder / "model.xml").is_file()
    assert (folder / "model.bin").is_file()

    session = get_backend("openvino").load(folder, CPU_OPTIONS)
    batch = {key: array[:3] for key, array in load_split(tiny_shared.dataset, "evaluation").items()}
    output = session.run(batch)
    assert output.shape == (3, 32)
    assert output.dtype == np.float32
    assert np.isfinite(output).all()


@pytest.mark.parametrize("name", list(RECIPES))
def test_validate_cosine_per_method(name, compressed, tiny_shared, tmp_path):
    inputs = {"artifact": compressed[name][0], "dataset": tiny_shared.dataset, "reference": tiny_shared.reference}
    result = run_stage("validate", {"runtime": "openvino", "options": CPU_OPTIONS}, inputs, tmp_path)
    assert result["cosine_mean"] >= MIN_COSINE_MEAN[name]
    assert result["placement"]["execution_devices"] == ["CPU"]
    assert result["placement"]["inference_precision"] == "f32"


def test_fp16_ir_smaller_than_fp32(compressed):
    fp32 = (compressed["none"][0] / "model.bin").stat().st_size
    fp16 = (compressed["fp16"][0] / "model.bin").stat().st_size
    assert fp16 < 0.6 * fp32
    assert "f16" in constant_types(compressed["fp16"][0] / "model.xml")


def test_compress_reports_applied_mode(compressed):
    static = compressed["static"][1]
    assert static["mode"] == "int8_static"
    assert static["preset"] == "mixed"
    assert static["fake_quantize_ops"] > 0

    int8 = compressed["int8_weight_only"][1]
    assert int8["mode"] == "int8_sym"
    assert int8["compressed_weights"]["i8"] > 0

    int4 = compressed["int4_weight_only"][1]
    assert int4["mode"] == "int4_sym"
    assert int4["group_size"] == 32
    assert int4["compressed_weights"]["i4"] > 0


@pytest.mark.parametrize("method", ["percentile", "entropy"])
def test_static_calibration_methods(method, converted, tiny_shared, tmp_path):
    params = {**RECIPES["static"], "calibration": {"method": method, "samples": 16}}
    inputs = {"model": converted[0], "dataset": tiny_shared.dataset}
    result = run_stage("openvino_compress", params, inputs, tmp_path)
    assert result["calibration_method"] == method
    assert result["fake_quantize_ops"] > 0


def test_weight_only_skips_excluded_node(converted, compressed, tmp_path):
    import openvino as ov

    model = ov.Core().read_model(str(converted[0] / "model.xml"))
    matmul = next(op.get_friendly_name() for op in model.get_ops() if op.get_type_name() == "MatMul")
    params = {**RECIPES["int8_weight_only"], "exclude_nodes": [matmul]}
    result = run_stage("openvino_compress", params, {"model": converted[0]}, tmp_path)
    expected = compressed["int8_weight_only"][1]["compressed_weights"]["i8"] - 1
    assert result["compressed_weights"]["i8"] == expected


def test_compress_rejects_bad_bits(converted, tmp_path):
    params = {"method": "weight_only", "weight_bits": 3}
    with pytest.raises(ValueError, match="weight_bits 4 or 8"):
        run_stage("openvino_compress", params, {"model": converted[0]}, tmp_path)


def test_session_returns_fresh_arrays(compressed, tiny_shared):
    from sarvam_pipeline.backends import get_backend
    from stages.dataset import load_split

    evaluation = load_split(tiny_shared.dataset, "evaluation")
    session = get_backend("openvino").load(compressed["none"][0], CPU_OPTIONS, threads=1)
    first = session.run({key: array[:2] for key, array in evaluation.items()})
    expected = first.copy()
    # A different batch size and sequence length reshapes the request's tensors.
    session.run({key: array[2:7, :16] for key, array in evaluation.items()})
    np.testing.assert_array_equal(first, expected)


def test_backend_device_availability():
    from sarvam_pipeline.backends import get_backend

    backend = get_backend("openvino")
    assert backend.unavailable_reason({"device": "CPU"}) is None
    assert backend.unavailable_reason({"device": "AUTO:CPU"}) is None
    assert "NOSUCHDEVICE" in backend.unavailable_reason({"device": "NOSUCHDEVICE"})


def test_benchmark_measures_latency(compressed, tiny_shared, tmp_path):
    params = {
        "runtime": "openvino",
        "options": {**CPU_OPTIONS, "performance_hint": "LATENCY"},
        "warmup": 1,
        "iterations": 3,
        "threads": 1,
    }
    inputs = {"artifact": compressed["static"][0], "dataset": tiny_shared.dataset}
    result = run_stage("benchmark", params, inputs, tmp_path)
    assert result["status"] == "measured"
    assert result["iterations"] == 3
    assert result["artifact"] == "model.xml"
    assert result["placement"]["execution_devices"] == ["CPU"]


def test_recipes_share_convert_node(tiny_target):
    from sarvam_pipeline.compiler import SharedNodes
    from sarvam_pipeline.runtimes import get_planner

    planner = get_planner("openvino")
    shared = SharedNodes()
    static = planner.plan_artifact(tiny_target("runtime=openvino", "quant=int8_static"), shared)
    weight_only = planner.plan_artifact(tiny_target("runtime=openvino", "quant=int4_weight_only"), shared)

    assert static.kind == "openvino_compress"
    assert static.upstream["model"].kind == "openvino_convert"
    assert static.upstream["model"].key == weight_only.upstream["model"].key
    assert "dataset" in static.upstream
    assert "dataset" not in weight_only.upstream
    assert static.params["calibration"]["samples"] == 64
    assert "calibration" not in weight_only.params


def test_plan_has_one_convert_node(tiny_target):
    from sarvam_pipeline.compiler import compile_plan

    targets = [tiny_target("runtime=openvino", f"quant={name}") for name in ("fp32", "fp16", "int8_static")]
    plan = compile_plan(targets)
    kinds = [plan.node(key).kind for key in plan.graph.nodes]
    assert kinds.count("openvino_convert") == 1
    assert kinds.count("openvino_compress") == 3


def test_check_recipe_rejects_bad_bits():
    from sarvam_pipeline.runtimes import get_planner
    from sarvam_pipeline.target import load_recipe

    planner = get_planner("openvino")
    recipe = load_recipe("int8_weight_only")
    assert planner.check_recipe(recipe) is None
    for bits in (2, 3, 16):
        reason = planner.check_recipe({**recipe, "weight_bits": bits})
        assert reason is not None
        assert "weight_bits 4 or 8" in reason


@pytest.mark.parametrize(
    ("recipe", "changes", "reason"),
    [
        ("int8_dynamic", {}, "is not one of"),
        ("int8_weight_only", {"block_size": 32}, "per output channel only"),
        ("int8_static", {"activation_bits": 16}, "8-bit weights and activations"),
        ("int8_static", {"options": {"openvino": {"smoothquant": 0.5}}}, "unknown options.openvino keys"),
        ("int4_weight_only", {"options": {"openvino": {"ratio": 1.5}}}, "ratio must be a number in [0.0, 1.0]"),
        ("int8_static", {"options": {"openvino": {"fast_bias_correction": "no"}}}, "must be true or false"),
        ("int8_static", {"options": {"openvino": {"target_device": "TPU"}}}, "target_device 'TPU' is invalid"),
    ],
)
def test_check_recipe_rejects_unsupported(recipe, changes, reason):
    from sarvam_pipeline.runtimes import get_planner
    from sarvam_pipeline.target import load_recipe

    problem = get_planner("openvino").check_recipe({**load_recipe(recipe), **changes})
    assert problem is not None
    assert reason in problem


def test_check_recipe_accepts_openvino_recipes():
    from sarvam_pipeline.runtimes import get_planner
    from sarvam_pipeline.validation import recipes_for_runtime
    from sarvam_pipeline.target import load_recipe

    names = recipes_for_runtime("openvino")
    assert {"fp32", "fp16", "int8_static", "int8_weight_only", "int4_weight_only"} <= set(names)
    for name in names:
        assert get_planner("openvino").check_recipe(load_recipe(name)) is None, name
