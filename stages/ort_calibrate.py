"""Calibrate activation ranges for ONNX Runtime static quantization once, for every recipe that shares them.

The stage pre-processes the shared ONNX export (``quant_pre_process``), runs ONNX Runtime's calibrator on
the calibration split over every tensor that a static recipe could quantize, and saves the ranges in ONNX
Runtime's own calibration cache format (``save_tensors_data``). ``ort_quantize`` hands that file to
``quantize_static(calibration_cache_path=...)``, so two recipes that differ only in how they quantize
(per-channel weights, symmetric weights, excluded nodes, 8 or 16-bit activations) share one calibration run.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.base import Stage, StageInputs

# extra_options keys of quantize_static that change the computed ranges (onnxruntime 1.32,
# quantize_static's calib_extra_options), with the calibrator's name for each.
CALIBRATION_OPTION_KEYS = {
    "CalibTensorRangeSymmetric": "symmetric",
    "CalibMovingAverage": "moving_average",
    "CalibMovingAverageConstant": "averaging_constant",
    "CalibMaxIntermediateOutputs": "max_intermediate_outputs",
}

CACHE_FILE = "tensors_range.json"
PREPARED_FILE = "prepared.onnx"


@dataclass
class OrtCalibrateParams:
    # minmax | entropy | percentile
    method: str = "minmax"
    # Rows of the calibration split.
    samples: int = 64
    # Used by the percentile method.
    percentile: float = 99.999
    # The Calib* keys of the recipe's extra_options (CALIBRATION_OPTION_KEYS).
    options: dict[str, Any] = field(default_factory=dict)


def calibration_options(extra_options: dict[str, Any]) -> dict[str, Any]:
    """Return the recipe's extra_options that change the calibrated ranges."""
    return {key: value for key, value in extra_options.items() if key in CALIBRATION_OPTION_KEYS}


class OrtCalibrateStage(Stage):
    kind = "ort_calibrate"
    Params = OrtCalibrateParams
    inputs = ("model", "dataset")
    tools = ("onnx", "onnxruntime")

    def run(self, params: OrtCalibrateParams, inputs: StageInputs, out: Path) -> dict[str, Any]:
        from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data
        from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

        from stages.dataset import load_calibration_rows
        from stages.ort_quantize import (
            CALIBRATION_BATCH_SIZE,
            CALIBRATION_METHODS,
            CalibrationReader,
            calibration_method,
            op_types_to_quantize,
            prepare_static,
            uses_external_data,
        )

        if params.method not in CALIBRATION_METHODS:
            raise ValueError(f"invalid calibration method '{params.method}'; valid choices: {', '.join(CALIBRATION_METHODS)}")
        unknown = sorted(set(params.options) - set(CALIBRATION_OPTION_KEYS))
        if unknown:
            raise ValueError(f"unknown calibration options {unknown}; valid keys: {', '.join(CALIBRATION_OPTION_KEYS)}")

        reader = CalibrationReader(load_calibration_rows(inputs["dataset"], params.samples), CALIBRATION_BATCH_SIZE)

        source = inputs["model"] / "model.onnx"
        external = uses_external_data(source)
        prepared = out / PREPARED_FILE
        prepare_static(source, prepared, external)

        # Every op type a static recipe may quantize, so recipes that exclude different op types share the ranges.
        op_types = op_types_to_quantize(prepared, set(QLinearOpsRegistry) | set(QDQRegistry), [])
        extra = {CALIBRATION_OPTION_KEYS[key]: value for key, value in params.options.items()}
        if params.method == "percentile":
            extra["percentile"] = float(params.percentile)
        with tempfile.TemporaryDirectory(prefix="ort_calibrate.") as scratch:
            calibrator = create_calibrator(
                prepared,
                op_types,
                augmented_model_path=str(Path(scratch) / "augmented_model.onnx"),
                calibrate_method=calibration_method(params.method),
                use_external_data_format=external,
                extra_options=extra,
            )
            calibrator.collect_data(reader)
            tensors_range = calibrator.compute_data()
            del calibrator
        save_tensors_data(tensors_range, out / CACHE_FILE, smooth_quant=False)

        self.log.info("calibrated %d tensors with %s on %d rows", len(tensors_range.data), params.method, params.samples)
        return {"method": params.method, "samples": params.samples, "tensors": len(tensors_range.data), "op_types": op_types}
