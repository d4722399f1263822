"""ort_quantize against the real ONNX Runtime on the tiny BERT: every method, exclusions and invalid recipes.

The tiny model's file is dominated by its 30522 x 32 embedding table, so the checks look at the quantized
op types in the graph as well as the file size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import run_stage
from stages.ort_quantize import CalibrationReader

# The tiny fixture's calibration split has 32 rows.
CALIBRATION = {"method": "minmax", "samples": 16, "percentile": 99.999}

RECIPES: dict[str, dict[str, Any]] = {
    "fp32": {"precision": "fp32", "method": "none", "weight_bits": 32},
    "fp16": {"precision": "fp16", "method": "fp16", "weight_bits": 16},
    "int8_dynamic": {"precision": "int8", "method": "dynamic", "weight_bits": 8, "activation_bits": 8},
    "int8_static": {"precision": "int8", "method": "static", "weight_bits": 8, "activation_bits": 8, "calibration": CALIBRATION},
    "int8_weight_only": {"precision": "int8", "method": "weight_only", "weight_bits": 8},
    "int4_weight_only": {"precision": "int4", "method": "weight_only", "weight_bits": 4, "block_size": 32, "per_channel": False},
}

# Lowest mean cosine against the float reference accepted per recipe on the tiny model.
MIN_COSINE = {
    "fp32": 0.99999,
    "fp16": 0.999,
    "int8_dynamic": 0.99,
    "int8_static": 0.99,
    "int8_weight_only": 0.999,
    "int4_weight_only": 0.99,
}


def quantize(tiny_shared, out: Path, recipe: dict[str, Any]) -> dict[str, Any]:
    inputs = {"model": tiny_shared.onnx}
    if recipe["method"] == "static":
        inputs["dataset"] = tiny_shared.dataset
    return run_stage("ort_quantize", recipe, inputs, out)


def validate(tiny_shared, artifact: Path, out: Path) -> dict[str, Any]:
    return run_stage(
        "validate",
        {"runtime": "onnxruntime", "options": {"provider": "cpu"}},
        {"artifact": artifact, "dataset": tiny_shared.dataset, "reference": tiny_shared.reference},
        out,
    )


def op_counts(path: Path) -> dict[str, int]:
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path)).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def weight_matmul_names(tiny_shared) -> list[str]:
    import onnx

    graph = onnx.load(str(tiny_shared.onnx / "model.onnx")).graph
    initializers = {tensor.name for tensor in graph.initializer}
    return [node.name for node in graph.node if node.op_type == "MatMul" and node.input[1] in initializers]


@pytest.fixture(scope="module")
def built(tiny_shared, tmp_path_factory) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Every recipe of RECIPES quantized once: folder and stage result, by recipe name."""
    root = tmp_path_factory.mktemp("ort_quantize")
    return {name: (root / name, quantize(tiny_shared, root / name, recipe)) for name, recipe in RECIPES.items()}


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_runs_on_backend(built, tiny_shared, name):
    from sarvam_pipeline.backends.onnxruntime import OnnxRuntimeBackend
    from stages.dataset import load_split

    folder, result = built[name]
    assert sorted(p.name for p in folder.iterdir()) == ["model.onnx"]
    assert result["method"] == RECIPES[name]["method"]
    assert result["file_bytes"] == (folder / "model.onnx").stat().st_size
    assert result["external_data"] is False

    session = OnnxRuntimeBackend().load(folder, {"provider": "cpu"})
    evaluation = load_split(tiny_shared.dataset, "evaluation")
    output = session.run({key: value[:4] for key, value in evaluation.items()})
    assert output.shape == (4, 32)
    assert np.isfinite(output).all()


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_cosine_vs_reference(built, tiny_shared, tmp_path, name):
    metrics = validate(tiny_shared, built[name][0], tmp_path)
    assert metrics["cosine_mean"] >= MIN_COSINE[name]
    assert metrics["cosine_worst"] >= MIN_COSINE[name] - 0.01


def test_none_copies_model_unchanged(built, tiny_shared):
    folder, result = built["fp32"]
    assert (folder / "model.onnx").read_bytes() == (tiny_shared.onnx / "model.onnx").read_bytes()
    assert result["quantized_ops"] == {}


def test_fp16_halves_file_keeps_float32_io(built):
    import onnx

    folder, result = built["fp16"]
    assert result["file_bytes"] < 0.6 * result["source_bytes"]
    graph = onnx.load(str(folder / "model.onnx")).graph
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert onnx.TensorProto.FLOAT16 in {tensor.data_type for tensor in graph.initializer}


def test_dynamic_uses_integer_matmul(built, tiny_shared):
    folder, result = built["int8_dynamic"]
    counts = op_counts(folder / "model.onnx")
    assert counts.get("MatMulInteger", 0) == len(weight_matmul_names(tiny_shared))
    assert counts.get("DynamicQuantizeLinear", 0) > 0
    assert result["quantized_ops"]["MatMulInteger"] == counts["MatMulInteger"]
    assert result["file_bytes"] < 0.5 * result["source_bytes"]


def test_static_inserts_qdq(built):
    folder, result = built["int8_static"]
    counts = op_counts(folder / "model.onnx")
    assert counts.get("QuantizeLinear", 0) > 0
    assert counts.get("DequantizeLinear", 0) > 0
    assert result["calibration"]["samples"] == CALIBRATION["samples"]
    assert result["activation_bits"] == 8
    assert result["file_bytes"] < 0.5 * result["source_bytes"]


@pytest.mark.parametrize("name", ["int8_weight_only", "int4_weight_only"])
def test_weight_only_uses_matmul_nbits(built, tiny_shared, name):
    folder, result = built[name]
    counts = op_counts(folder / "model.onnx")
    weight_matmuls = len(weight_matmul_names(tiny_shared))
    assert counts.get("MatMulNBits", 0) == weight_matmuls
    # Attention's activation-by-activation MatMuls have no weight to quantize.
    assert counts.get("MatMul", 0) == op_counts(tiny_shared.onnx / "model.onnx")["MatMul"] - weight_matmuls
    assert result["block_size"] == 32
    assert result["file_bytes"] < result["source_bytes"]


def test_dynamic_excluded_node_stays_float(tiny_shared, tmp_path):
    import onnx

    excluded = weight_matmul_names(tiny_shared)[0]
    recipe = {**RECIPES["int8_dynamic"], "exclude_nodes": [excluded]}
    result = quantize(tiny_shared, tmp_path, recipe)

    nodes = {node.name: node for node in onnx.load(str(tmp_path / "model.onnx")).graph.node}
    assert nodes[excluded].op_type == "MatMul"
    assert result["excluded_nodes"] == [excluded]
    assert result["quantized_ops"]["MatMulInteger"] == len(weight_matmul_names(tiny_shared)) - 1


def test_static_excluded_pattern_stays_float(tiny_shared, tmp_path):
    import onnx

    # A pattern that matches only the first layer's query MatMul ("node_MatMul_30") in the tiny export.
    excluded = weight_matmul_names(tiny_shared)[0]
    recipe = {**RECIPES["int8_static"], "exclude_nodes": [excluded + "*"]}
    result = quantize(tiny_shared, tmp_path, recipe)

    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    producers = {output: node.op_type for node in graph.node for output in node.output}
    node = next(node for node in graph.node if node.name == excluded)
    assert result["excluded_nodes"] == [excluded]
    assert [producers.get(name) for name in node.input] != ["DequantizeLinear", "DequantizeLinear"]
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    assert initializers[node.input[1]].data_type == onnx.TensorProto.FLOAT


def test_dynamic_excluded_op_type_stays_float(tiny_shared, tmp_path):
    recipe = {**RECIPES["int8_dynamic"], "exclude_op_types": ["MatMul"]}
    result = quantize(tiny_shared, tmp_path, recipe)
    assert "MatMul" not in result["op_types_to_quantize"]
    assert "MatMulInteger" not in op_counts(tmp_path / "model.onnx")


def test_static_16bit_activations(tiny_shared, tmp_path):
    import onnx

    recipe = {**RECIPES["int8_static"], "options": {"activation_bits": 16}}
    result = quantize(tiny_shared, tmp_path / "artifact", recipe)
    assert result["activation_bits"] == 16

    graph = onnx.load(str(tmp_path / "artifact" / "model.onnx")).graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    zero_point_types = {initializers[node.input[2]].data_type for node in graph.node if node.op_type == "QuantizeLinear"}
    assert zero_point_types == {onnx.TensorProto.UINT16}
    assert validate(tiny_shared, tmp_path / "artifact", tmp_path / "validate")["cosine_mean"] >= 0.999


def test_static_tensor_override_from_names(tiny_shared, tmp_path):
    import onnx

    overrides = {"embeddings.word_embeddings.weight": [{"quant_type": "QUInt8"}]}
    recipe = {**RECIPES["int8_static"], "activation_bits": 16, "options": {"TensorQuantOverrides": overrides}}
    quantize(tiny_shared, tmp_path, recipe)

    initializers = {tensor.name: tensor for tensor in onnx.load(str(tmp_path / "model.onnx")).graph.initializer}
    assert initializers["embeddings.word_embeddings.weight_quantized"].data_type == onnx.TensorProto.UINT8


def test_static_percentile_calibration(tiny_shared, tmp_path):
    calibration = {**CALIBRATION, "method": "percentile", "percentile": 99.9}
    result = quantize(tiny_shared, tmp_path / "artifact", {**RECIPES["int8_static"], "calibration": calibration})
    assert result["calibration"]["method"] == "percentile"
    assert validate(tiny_shared, tmp_path / "artifact", tmp_path / "validate")["cosine_mean"] >= 0.99


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"calibration": {**CALIBRATION, "method": "kl"}}, "valid choices: minmax, entropy, percentile"),
        ({"calibration": {**CALIBRATION, "samples": 33}}, "calibration split has 32 rows"),
        ({"exclude_nodes": ["no_such_node*"]}, "matches no node"),
        ({"options": {"activation_bits": 12}}, "8 or 16 bits"),
        ({"options": {"WeightSymmetric": False}}, "symmetric_weights"),
        ({"options": {"TensorQuantOverrides": {"val_31": [{"quant_type": "UInt8"}]}}}, "valid choices: QInt8"),
        ({"weight_bits": 4}, "takes weight_bits 8"),
    ],
)
def test_static_invalid_recipe_raises(tiny_shared, tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        quantize(tiny_shared, tmp_path, {**RECIPES["int8_static"], **change})


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        ({**RECIPES["int8_dynamic"], "activation_bits": 16}, "use method static"),
        ({**RECIPES["int8_weight_only"], "weight_bits": 2}, "weight_bits 4 or 8"),
        ({**RECIPES["int8_weight_only"], "exclude_op_types": ["MatMul"]}, "quantizes no op type"),
        ({**RECIPES["int8_weight_only"], "options": {"bits": 4}}, "unknown weight_only options"),
        ({**RECIPES["fp16"], "options": {"keep_io_types": False}}, "unknown fp16 options"),
        ({**RECIPES["fp32"], "options": {"anything": 1}}, "takes no options"),
        ({**RECIPES["fp32"], "method": "int8"}, "invalid method"),
    ],
)
def test_invalid_recipe_raises(tiny_shared, tmp_path, recipe, message):
    with pytest.raises(ValueError, match=message):
        quantize(tiny_shared, tmp_path, recipe)


def test_static_without_dataset_raises(tiny_shared, tmp_path):
    with pytest.raises(ValueError, match="'dataset' input"):
        run_stage("ort_quantize", RECIPES["int8_static"], {"model": tiny_shared.onnx}, tmp_path)


def test_calibration_reader_batches_and_ranges():
    arrays = {"input_ids": np.arange(20).reshape(10, 2), "attention_mask": np.ones((10, 2), dtype=np.int64)}
    reader = CalibrationReader(arrays, batch_size=4)
    assert len(reader) == 3
    assert [len(batch["input_ids"]) for batch in reader] == [4, 4, 2]
    assert reader.get_next() is None

    reader.set_range(1, 2)
    assert reader.get_next()["input_ids"][0, 0] == 8
    assert reader.get_next() is None
