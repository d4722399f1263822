"""ort_calibrate against the real ONNX Runtime calibrator on the tiny BERT: one range cache, many recipes."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
import pytest

from conftest import run_stage

CALIBRATION = {"method": "minmax", "samples": 16, "percentile": 99.999}
STATIC = {"precision": "int8", "method": "static", "weight_bits": 8, "activation_bits": 8, "calibration": CALIBRATION}


@pytest.fixture(scope="module")
def calibrated(tiny_shared, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ort_calibrate")
    result = run_stage("ort_calibrate", {"method": "minmax", "samples": 16}, {"model": tiny_shared.onnx, "dataset": tiny_shared.dataset}, folder)
    return folder, result


def outputs(folder, tiny_shared) -> np.ndarray:
    from stages.dataset import load_split

    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    rows = load_split(tiny_shared.dataset, "evaluation")
    return session.run(None, {name: rows[name][:8] for name in ("input_ids", "attention_mask")})[0]


def test_calibration_writes_onnxruntime_cache(calibrated):
    folder, result = calibrated

    cache = json.loads((folder / "tensors_range.json").read_text())
    assert (folder / "prepared.onnx").is_file()
    assert result["tensors"] > 0
    assert result["samples"] == 16
    assert "MatMul" in result["op_types"]
    assert cache


def test_cached_ranges_match_inline_calibration(calibrated, tiny_shared, tmp_path):
    folder, _ = calibrated

    run_stage("ort_quantize", STATIC, {"model": tiny_shared.onnx, "dataset": tiny_shared.dataset}, tmp_path / "inline")
    result = run_stage("ort_quantize", STATIC, {"model": tiny_shared.onnx, "calibration": folder}, tmp_path / "cached")

    assert result["quantized_ops"]["QuantizeLinear"] > 0
    np.testing.assert_allclose(outputs(tmp_path / "cached", tiny_shared), outputs(tmp_path / "inline", tiny_shared), atol=1e-6)


def test_one_cache_serves_other_recipes(calibrated, tiny_shared, tmp_path):
    folder, _ = calibrated
    recipes = {
        "per_tensor": {**STATIC, "per_channel": False},
        "w8a16": {**STATIC, "activation_bits": 16, "exclude_op_types": ["Add", "Mul"]},
    }

    for name, recipe in recipes.items():
        result = run_stage("ort_quantize", recipe, {"model": tiny_shared.onnx, "calibration": folder}, tmp_path / name)
        assert result["smoke_cosine_min"] > 0.9, name

    assert not (folder / ".model.onnx.calibration.json").exists()


def test_calibration_rejects_too_many_samples(tiny_shared, tmp_path):
    with pytest.raises(ValueError, match="calibration.samples is 999"):
        run_stage("ort_calibrate", {"samples": 999}, {"model": tiny_shared.onnx, "dataset": tiny_shared.dataset}, tmp_path)


def test_calibration_rejects_unknown_option(tiny_shared, tmp_path):
    with pytest.raises(ValueError, match="unknown calibration options"):
        run_stage("ort_calibrate", {"options": {"SmoothQuant": True}}, {"model": tiny_shared.onnx, "dataset": tiny_shared.dataset}, tmp_path)
