"""ONNX Runtime execution-provider variants on the tiny BERT: the graph each provider gets, the provider options
written into the artifact's manifest, and accuracy estimates for providers this host lacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import run_stage, tiny_overrides
from sarvam_pipeline.compiler import compile_plan
from sarvam_pipeline.errors import ConfigError
from sarvam_pipeline.runtimes import get_planner
from sarvam_pipeline.validation import validate_target

ROOT = Path(__file__).resolve().parent.parent
CALIBRATION = "quant.calibration.samples=16"


def artifact_node(tiny_target, *overrides: str):
    target = tiny_target(*overrides)
    validate_target(target)
    return compile_plan([target]).targets[0][1].artifact


def build(node, tiny_shared, out: Path) -> dict[str, Any]:
    inputs = {"model": tiny_shared.onnx}
    if "dataset" in node.upstream:
        inputs["dataset"] = tiny_shared.dataset
    if "calibration" in node.upstream:
        calibration = node.upstream["calibration"]
        inputs["calibration"] = out.parent / f"{out.name}_calibration"
        run_stage(calibration.kind, calibration.params, {"model": tiny_shared.onnx, "dataset": tiny_shared.dataset}, inputs["calibration"])
    return run_stage(node.kind, node.params, inputs, out)


def initializer_types(path: Path) -> set[str]:
    import onnx

    return {onnx.TensorProto.DataType.Name(tensor.data_type) for tensor in onnx.load(str(path)).graph.initializer}


def zero_points(path: Path, consumer_of_initializer: bool) -> list[Any]:
    """Return the zero points of the QuantizeLinear nodes (activations) or of the weight DequantizeLinear nodes."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    initializers = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
    points = []
    for node in model.graph.node:
        weight = node.op_type == "DequantizeLinear" and node.input[0] in initializers
        activation = node.op_type == "QuantizeLinear" and node.input[0] not in initializers
        if (weight if consumer_of_initializer else activation) and node.input[2] in initializers:
            points.append(initializers[node.input[2]])
    return points


def test_directml_fp16_converts_graph(tiny_target, tiny_shared, tmp_path):
    import onnx

    node = artifact_node(tiny_target, "runtime.options.provider=directml", "quant=fp16")
    assert node.params["method"] == "fp16"
    result = build(node, tiny_shared, tmp_path)
    model = onnx.load(str(tmp_path / "model.onnx"))
    assert "FLOAT16" in initializer_types(tmp_path / "model.onnx")
    # keep_io_types: applications feed and read the same dtypes as for the float32 graph.
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert result["provider"] == "directml"


def test_cuda_fp16_converts_graph(tiny_target):
    node = artifact_node(tiny_target, "runtime.options.provider=cuda", "quant=fp16")
    assert node.params["method"] == "fp16"
    assert node.params["provider"] == "cuda"


def test_vitisai_static_uses_amd_settings(tiny_target, tiny_shared, tmp_path):
    node = artifact_node(tiny_target, "runtime.options.provider=vitisai", "quant=int8_static", CALIBRATION)
    params = node.params
    assert (params["activation_bits"], params["symmetric_activations"], params["symmetric_weights"], params["per_channel"]) == (8, True, True, False)

    build(node, tiny_shared, tmp_path)
    activations = zero_points(tmp_path / "model.onnx", consumer_of_initializer=False)
    weights = zero_points(tmp_path / "model.onnx", consumer_of_initializer=True)
    # Symmetric QUInt8 activations put the zero point at 128, and per-tensor QInt8 weights at a scalar 0.
    assert {str(point.dtype) for point in activations} == {"uint8"}
    assert {int(point) for point in activations} == {128}
    assert {str(point.dtype) for point in weights} >= {"int8"}
    assert all(point.size == 1 for point in weights)


def test_tensorrt_fp16_keeps_float32_graph(tiny_target, tiny_shared, tmp_path):
    node = artifact_node(tiny_target, "runtime.options.provider=tensorrt", "quant=fp16")
    assert node.params["method"] == "none"
    assert node.params["provider_options"]["trt_fp16_enable"] is True
    build(node, tiny_shared, tmp_path)
    assert "FLOAT16" not in initializer_types(tmp_path / "model.onnx")


def test_tensorrt_int8_is_symmetric_qdq(tiny_target):
    node = artifact_node(tiny_target, "runtime.options.provider=tensorrt", "quant=int8_static", CALIBRATION)
    assert node.params["method"] == "static"
    assert node.params["symmetric_activations"] is True
    assert node.params["provider_options"] == {"trt_int8_enable": True}


def test_coreml_uses_mlprogram(tiny_target):
    node = artifact_node(tiny_target, "runtime.options.provider=coreml", "quant=fp32")
    assert node.params["method"] == "none"
    assert node.params["provider_options"] == {"ModelFormat": "MLProgram", "MLComputeUnits": "ALL"}


def test_given_provider_options_win(tiny_target):
    node = artifact_node(
        tiny_target, "runtime.options.provider=coreml", "+runtime.options.provider_options.MLComputeUnits=CPUAndNeuralEngine", "quant=fp16"
    )
    assert node.params["provider_options"]["MLComputeUnits"] == "CPUAndNeuralEngine"
    assert node.params["provider_options"]["AllowLowPrecisionAccumulationOnGPU"] == "1"


def test_openvino_sets_device_type_and_precision(tiny_target):
    node = artifact_node(tiny_target, "runtime.options.provider=openvino", "quant=fp16")
    assert node.params["method"] == "none"
    assert node.params["provider_options"] == {"device_type": "CPU", "precision": "FP16"}


def test_qnn_provider_builds_qnn_qdq(tiny_target):
    node = artifact_node(tiny_target, "chipset=snapdragon_x_elite", "runtime.options.provider=qnn", "quant=w8a16", CALIBRATION)
    assert node.kind == "qnn_quantize"
    assert node.params["inputs"][0]["shape"] == [1, 32]


def test_cpu_nodes_carry_no_provider(tiny_target):
    node = artifact_node(tiny_target, "quant=int8_dynamic")
    assert "provider" not in node.params
    assert "provider_options" not in node.params


@pytest.mark.parametrize(
    "provider, quant",
    [("directml", "int8_dynamic"), ("vitisai", "fp16"), ("qnn", "int8_dynamic"), ("coreml", "int8_static")],
)
def test_provider_rejects_method(tiny_target, provider, quant):
    target = tiny_target(f"runtime.options.provider={provider}", f"quant={quant}", CALIBRATION)
    with pytest.raises(ConfigError, match=f"the {provider} execution provider takes methods"):
        validate_target(target)


def test_unknown_provider_rejected(tiny_target):
    problem = get_planner("onnxruntime").check_recipe(tiny_target("quant=fp16").quant, {"provider": "metal"})
    assert problem.startswith("unknown provider 'metal'; valid choices: cpu, cuda")


@pytest.fixture(scope="module")
def directml_run(tiny_model_dir, tmp_path_factory) -> dict[str, Any]:
    """The tiny model built for DirectML on this host, which has no DirectML: fallback=degrade."""
    root = tmp_path_factory.mktemp("directml")
    completed = subprocess.run(
        [
            sys.executable, "-m", "sarvam_pipeline",
            *tiny_overrides(tiny_model_dir, root / "artifacts"),
            "runtime.options.provider=directml", "quant=fp16", f"hydra.run.dir={root / 'run'}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1"),
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return {
        "report": json.loads((root / "run" / "report.json").read_text(encoding="utf-8")),
        "markdown": (root / "run" / "report.md").read_text(encoding="utf-8"),
        "store": root / "artifacts",
    }


def test_missing_provider_accuracy_is_estimate(directml_run):
    accuracy = directml_run["report"]["accuracy"]
    assert accuracy["method"] == "estimated"
    assert accuracy["estimate_for"] == "DmlExecutionProvider"
    assert "CPUExecutionProvider on this host" in accuracy["how"]
    assert "Obtained: **estimated**" in directml_run["markdown"]
    assert "latency needs the device" in directml_run["markdown"]


def test_missing_provider_latency_needs_device(directml_run):
    performance = directml_run["report"]["performance"]
    assert performance["status"] == "needs_device"
    assert "DmlExecutionProvider" in performance["reason"]


def test_manifest_records_provider_options(directml_run):
    manifests = list((directml_run["store"] / "ort_quantize").glob("*/manifest.json"))
    assert len(manifests) == 1
    manifest = json.loads(manifests[0].read_text(encoding="utf-8"))
    assert manifest["result"]["provider"] == "directml"
    assert manifest["result"]["provider_options"] == {}
    assert manifest["key_material"]["params"]["provider"] == "directml"
