"""QNN on the tiny BERT: QDQ preparation for HTP, the HTP simulator with CPU fallback disabled, the EPContext
model, the pipeline run and its report, and the error for a missing onnxruntime-qnn.

Everything but the missing-extra test runs the real onnxruntime-qnn plugin EP, whose HTP backend is a
simulator on x86_64.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import TINY_SEQUENCE_LENGTH, run_stage, tiny_overrides

ROOT = Path(__file__).resolve().parent.parent

try:
    import onnxruntime_qnn  # noqa: F401

    QNN_MISSING = ""
except ImportError as error:
    QNN_MISSING = f"onnxruntime-qnn is not installed ({error}); pip install -e '.[qnn]'"

requires_qnn = pytest.mark.skipif(bool(QNN_MISSING), reason=QNN_MISSING or "onnxruntime-qnn is installed")

STATIC_INPUTS = [
    {"name": "input_ids", "shape": [1, TINY_SEQUENCE_LENGTH]},
    {"name": "attention_mask", "shape": [1, TINY_SEQUENCE_LENGTH]},
]
CALIBRATION = {"method": "minmax", "samples": 16}
PER_CHANNEL = {"per_channel": True, "symmetric_weights": True}


def quantize(tiny_shared, out: Path, **recipe: Any) -> dict[str, Any]:
    params = {"inputs": STATIC_INPUTS, "calibration": CALIBRATION, **recipe}
    return run_stage("qnn_quantize", params, {"model": tiny_shared.onnx, "dataset": tiny_shared.dataset}, out)


def validate(tiny_shared, artifact: Path, out: Path, runtime: str, options: dict[str, Any]) -> dict[str, Any]:
    return run_stage(
        "validate",
        {"runtime": runtime, "options": options, "samples": 8},
        {"artifact": artifact, "dataset": tiny_shared.dataset, "reference": tiny_shared.reference},
        out,
    )


def initializer_dtypes(path: Path, op_type: str, input_index: int) -> list[str]:
    """Return the zero-point data types of the DequantizeLinear nodes that feed ``op_type`` weights."""
    import onnx

    model = onnx.load(str(path))
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    producers = {output: node for node in model.graph.node for output in node.output}
    types = []
    for node in model.graph.node:
        if node.op_type != op_type or len(node.input) <= input_index:
            continue
        producer = producers.get(node.input[input_index])
        if producer is not None and producer.op_type == "DequantizeLinear" and producer.input[0] in initializers:
            zero_point = initializers[producer.input[2]]
            types.append(onnx.TensorProto.DataType.Name(zero_point.data_type))
    return types


@pytest.fixture(scope="module")
def built(tiny_shared, tmp_path_factory) -> dict[str, Any]:
    """The default QDQ model (uint16 activations, uint8 weights), its stage result and its EPContext model."""
    root = tmp_path_factory.mktemp("qnn")
    qdq, context = root / "qdq", root / "context"
    result = quantize(tiny_shared, qdq)
    if not QNN_MISSING:
        run_stage(
            "qnn_context",
            {"provider_options": {"backend_type": "htp", "htp_arch": 73}},
            {"model": qdq, "dataset": tiny_shared.dataset},
            context,
        )
    return {"qdq": qdq, "context": context, "result": result}


def activation_zero_point_types(path: Path) -> set[str]:
    import onnx

    model = onnx.load(str(path))
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    return {
        onnx.TensorProto.DataType.Name(initializers[node.input[2]].data_type)
        for node in model.graph.node
        if node.op_type == "QuantizeLinear" and node.input[2] in initializers
    }


def test_quantize_defaults_to_uint16_activations(built):
    assert built["result"]["activation_type"] == "QUInt16"
    assert built["result"]["weight_type"] == "QUInt8"
    assert activation_zero_point_types(built["qdq"] / "model.onnx") == {"UINT16"}
    assert set(initializer_dtypes(built["qdq"] / "model.onnx", "MatMul", 1)) == {"UINT8"}


def test_quantize_fixes_static_shapes(built):
    import onnx

    graph = onnx.load(str(built["qdq"] / "model.onnx")).graph
    shapes = {value.name: [dim.dim_value for dim in value.type.tensor_type.shape.dim] for value in graph.input}
    assert shapes == {"input_ids": [1, TINY_SEQUENCE_LENGTH], "attention_mask": [1, TINY_SEQUENCE_LENGTH]}
    assert built["result"]["provider"] == "QNNExecutionProvider"


def test_per_channel_overrides_layernorm_gains(tiny_shared, tmp_path):
    result = quantize(tiny_shared, tmp_path / "qdq", **PER_CHANNEL)
    assert result["weight_type"] == "QInt8"
    assert result["per_channel_matmul_weights"] > 0
    assert result["per_tensor_layernorm_gains"] > 0
    assert set(initializer_dtypes(tmp_path / "qdq" / "model.onnx", "LayerNormalization", 1)) == {"UINT8"}
    assert set(initializer_dtypes(tmp_path / "qdq" / "model.onnx", "MatMul", 1)) == {"INT8"}


@requires_qnn
def test_per_channel_runs_whole_on_htp(tiny_shared, tmp_path):
    quantize(tiny_shared, tmp_path / "qdq", **PER_CHANNEL)
    result = validate(tiny_shared, tmp_path / "qdq", tmp_path / "validate", "onnxruntime", {"provider": "qnn"})
    assert result["placement"]["share_on_requested"] == 1.0
    assert result["placement"]["assigned_share_on_requested"] == 1.0


@pytest.mark.parametrize(
    "recipe, message",
    [
        ({"per_channel": True, "symmetric_weights": False}, "must be symmetric"),
        ({"activation_bits": 4}, "invalid activation_bits 4"),
        ({"weight_bits": 16}, "invalid weight_bits 16"),
        ({"method": "dynamic"}, "valid choices: static"),
        ({"options": {"ActivationSymmetric": True}}, "unknown qnn options"),
    ],
)
def test_quantize_rejects_recipe_htp_cannot_run(tiny_shared, tmp_path, recipe, message):
    with pytest.raises(ValueError, match=message):
        quantize(tiny_shared, tmp_path / "qdq", **recipe)


@requires_qnn
def test_htp_runs_whole_graph(built, tiny_shared, tmp_path):
    result = validate(tiny_shared, built["qdq"], tmp_path, "onnxruntime", {"provider": "qnn"})
    placement = result["placement"]
    assert result["method"] == "measured"
    assert result["samples"] == 8
    assert placement["providers"][0] == "QNNExecutionProvider"
    assert placement["share_on_requested"] == 1.0
    assert placement["assigned_share_on_requested"] == 1.0
    assert set(placement["assigned_nodes_by_provider"]) == {"QNNExecutionProvider"}
    # NOTE: the tiny model's random weights give some sentences a cosine near 0.65 on the HTP simulator, while
    # the same QDQ model on the CPU EP stays above 0.9999; the real model does not show this gap.
    assert np.isfinite(result["cosine_mean"])


@requires_qnn
def test_float_graph_rejected_without_cpu_fallback(tiny_shared):
    from sarvam_pipeline.backends import get_backend

    # The dynamic-shape float export has ops HTP cannot take, and the session must not hand them to the CPU EP.
    with pytest.raises(Exception, match="fallback to CPU EP has been explicitly disabled"):
        get_backend("onnxruntime").load(tiny_shared.onnx, {"provider": "qnn"})


@requires_qnn
def test_context_model_writes_binary_beside_it(built):
    import onnx

    files = sorted(path.name for path in built["context"].iterdir())
    assert "model_ctx.onnx" in files
    binaries = [name for name in files if name.endswith(".bin")]
    assert len(binaries) == 1
    nodes = onnx.load(str(built["context"] / "model_ctx.onnx")).graph.node
    assert [node.op_type for node in nodes] == ["EPContext"]
    attributes = {attribute.name: onnx.helper.get_attribute_value(attribute) for attribute in nodes[0].attribute}
    assert attributes["embed_mode"] == 0
    assert attributes["ep_cache_context"].decode() == binaries[0]


@requires_qnn
def test_context_model_reloads_with_same_outputs(built, tiny_shared):
    from sarvam_pipeline.backends import get_backend
    from stages.dataset import load_split

    evaluation = {name: array[:4] for name, array in load_split(tiny_shared.dataset, "evaluation").items()}
    context = get_backend("qnn").load(built["context"], {"backend": "HTP"}).run(evaluation)
    qdq = get_backend("onnxruntime").load(built["qdq"], {"provider": "qnn"}).run(evaluation)
    assert context.shape == (4, 32)
    # The compiler optimizes the graph at level basic, a session at level all, so the outputs may differ slightly.
    np.testing.assert_allclose(context, qdq, atol=1e-3)


@requires_qnn
def test_benchmark_labels_simulator_time(built, tiny_shared, tmp_path):
    result = run_stage(
        "benchmark",
        {"runtime": "qnn", "options": {"backend": "HTP"}, "warmup": 1, "iterations": 2},
        {"artifact": built["context"], "dataset": tiny_shared.dataset},
        tmp_path,
    )
    assert result["status"] == "simulated"
    assert "simulator time, not latency" in result["where"]
    assert result["iterations"] == 2


@pytest.fixture(scope="module")
def pipeline_run(tiny_model_dir, tmp_path_factory) -> dict[str, Any]:
    """The tiny model through ``python -m sarvam_pipeline chipset=snapdragon_x_elite runtime=qnn``."""
    if QNN_MISSING:
        pytest.skip(QNN_MISSING)
    root = tmp_path_factory.mktemp("qnn_run")
    completed = run_cli(
        *tiny_overrides(tiny_model_dir, root / "artifacts"),
        "chipset=snapdragon_x_elite",
        "runtime=qnn",
        "quant=w8a16",
        "quant.calibration.samples=16",
        f"hydra.run.dir={root / 'run'}",
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads((root / "run" / "report.json").read_text(encoding="utf-8"))
    return {"report": report, "markdown": (root / "run" / "report.md").read_text(encoding="utf-8"), "store": root / "artifacts"}


def run_cli(*arguments: str, environment: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sarvam_pipeline", *arguments],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1", **(environment or {})),
        timeout=900,
    )


def test_pipeline_deploys_context_model(pipeline_run):
    report = pipeline_run["report"]
    assert report["built"] is True
    assert Path(report["deployable_artifact"]).name == "model_ctx.onnx"
    assert {row["kind"] for row in report["stages"]} >= {"qnn_quantize", "qnn_context"}


def test_pipeline_validates_subset_on_htp(pipeline_run):
    accuracy = pipeline_run["report"]["accuracy"]
    assert accuracy["method"] == "measured"
    assert accuracy["samples"] == 32
    assert accuracy["placement"]["share_on_requested"] == 1.0


def test_pipeline_reports_simulator_time(pipeline_run):
    performance = pipeline_run["report"]["performance"]
    assert performance["status"] == "simulated"
    assert performance["iterations"] == 5
    assert "Simulator time, not device latency" in pipeline_run["markdown"]


def test_simulator_time_not_checked_against_budget():
    from sarvam_pipeline.budgets import check_budgets

    performance = {"status": "simulated", "reason": "QNN HTP simulator", "p95_ms": 1.0, "peak_rss_mb": 1.0, "artifact_bytes": 1}
    chipset = {"name": "snapdragon_x_elite", "host_is_target": True}
    checks = {check.name: check for check in check_budgets({"p95_latency_ms": 8.0}, chipset, None, performance)}
    assert checks["p95_latency_ms"].status == "not_checked"
    assert checks["p95_latency_ms"].value is None


def test_manifest_records_provider_options(pipeline_run):
    manifests = list((pipeline_run["store"] / "qnn_context").glob("*/manifest.json"))
    assert len(manifests) == 1
    manifest = json.loads(manifests[0].read_text(encoding="utf-8"))
    assert manifest["key_material"]["params"]["provider_options"] == {"backend_type": "htp", "htp_arch": 73}
    assert manifest["result"]["provider_options"] == {"backend_type": "htp", "htp_arch": "73"}


def test_missing_extra_is_config_error(tmp_path):
    # A package of the same name that fails to import simulates an environment without onnxruntime-qnn.
    blocker = tmp_path / "onnxruntime_qnn"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('onnxruntime_qnn is blocked for this test')\n", encoding="utf-8")
    completed = run_cli(
        "chipset=snapdragon_x_elite",
        "runtime=qnn",
        "dry_run=true",
        f"hydra.run.dir={tmp_path / 'run'}",
        environment={"PYTHONPATH": str(tmp_path)},
    )
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert lines[-1].endswith("runtime qnn needs the optional package onnxruntime-qnn: pip install -e '.[qnn]'")


def test_qnn_entry_requires_registered_plugin():
    from host_probes import snapdragon_laptop
    from sarvam_pipeline.matrix import load_matrix
    from sarvam_pipeline.requirements import runtime_checks
    from sarvam_pipeline.select import unmet_requirements

    entry = next(entry for entry in load_matrix().chipset("snapdragon_x_elite").entries if entry.id == "qnn:HTP")
    checks = runtime_checks(entry)
    assert [check["field"] for check in checks] == ["onnxruntime.qnn_plugin.registered", "onnxruntime.providers"]
    assert unmet_requirements(checks, snapdragon_laptop(qnn=True)) == []
    assert unmet_requirements(checks, snapdragon_laptop(qnn=False))
