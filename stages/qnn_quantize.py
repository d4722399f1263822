"""Quantize the shared ONNX export to a QDQ model that Qualcomm's QNN HTP backend runs whole.

The steps are ONNX Runtime's QNN tooling (``onnxruntime.quantization.execution_providers.qnn``):
``qnn_preprocess_model`` fuses LayerNormalization, Gelu and LpNormalization and fixes the input shapes,
because HTP graphs have static shapes; ``get_qnn_qdq_config`` sets the per-op quantization overrides the HTP
backend needs, and ``quantize`` calibrates activation ranges on the calibration split.

Quantization types, from the recipe:

* activations: ``activation_bits`` 16 gives uint16 (int16 with ``symmetric_activations``), 8 gives uint8. On
  all-MiniLM-L6-v2, uint8 activations gave a cosine of 0.31 against float, because the attention mask's large
  negative value takes the whole 8-bit range (onnxruntime-qnn 2.7.0, HTP simulator, 50 sentences).
* weights: 8 bits, int8 symmetric when ``symmetric_weights`` is set, else uint8 asymmetric. ``per_channel``
  needs symmetric weights.

With ``per_channel``, MatMul weights are quantized per output channel (int8, symmetric) through tensor
overrides, because ``get_qnn_qdq_config`` otherwise keeps MatMul weights per tensor. ONNX Runtime's quantizer
then also quantizes the LayerNormalization gains per channel, which HTP rejects (QNN error 3110), so the gains
are overridden to per-tensor uint8. On all-MiniLM-L6-v2 (32 evaluation sentences, QDQ model on the CPU EP,
onnxruntime 1.32) uint16 activations gave a mean / worst cosine of 0.9865 / 0.975 with uint8 per-tensor weights
and 0.9990 / 0.9983 with int8 per-channel weights.

The stage writes ``model.onnx`` and runs one calibration row through it on the CPU EP before publishing it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from stages.base import Stage, StageInputs

DEFAULT_CALIBRATION = {"method": "minmax", "samples": 64, "percentile": 99.999}
# Keys of the recipe's options.qnn that the stage reads.
OPTION_KEYS = ("TensorQuantOverrides",)


@dataclass
class QnnQuantizeParams:
    precision: str = "int8"
    method: str = "static"
    weight_bits: int = 8
    # None means 16: 8-bit activations are too coarse for transformer encoders on HTP (see the module docstring).
    activation_bits: Optional[int] = 16
    per_channel: bool = False
    symmetric_weights: bool = False
    symmetric_activations: bool = False
    # Recipe options.qnn: TensorQuantOverrides with quant_type names ("QUInt8"), as in ort_quantize.
    options: dict[str, Any] = field(default_factory=dict)
    # method (minmax | entropy | percentile) and samples (rows of the calibration split).
    calibration: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_CALIBRATION))
    # Static shape of each graph input: [{"name": "input_ids", "shape": [1, 128]}].
    inputs: list[dict[str, Any]] = field(default_factory=list)
    # Execution provider and options the artifact is deployed with, recorded in the manifest.
    provider: str = "QNNExecutionProvider"
    provider_options: dict[str, Any] = field(default_factory=dict)


def quant_types(params: QnnQuantizeParams) -> tuple[Any, Any]:
    """Return the activation and weight QuantTypes of a recipe, or raise ValueError for one HTP cannot run."""
    from onnxruntime.quantization import QuantType

    if params.method != "static":
        raise ValueError(f"invalid method '{params.method}': the QNN HTP backend runs static QDQ models; valid choices: static")
    bits = 16 if params.activation_bits is None else params.activation_bits
    if bits not in (8, 16):
        raise ValueError(f"invalid activation_bits {bits}; QNN HTP takes 8 or 16")
    if params.weight_bits != 8:
        # 16-bit weights of fully connected layers failed on HTP with error 3110 (onnxruntime-qnn 2.7.0).
        raise ValueError(f"invalid weight_bits {params.weight_bits}; QNN HTP quantization here takes 8")
    if params.per_channel and not params.symmetric_weights:
        raise ValueError("per_channel weights on QNN HTP must be symmetric: set symmetric_weights true")

    if bits == 16:
        activation = QuantType.QInt16 if params.symmetric_activations else QuantType.QUInt16
    else:
        activation = QuantType.QInt8 if params.symmetric_activations else QuantType.QUInt8
    weight = QuantType.QInt8 if params.symmetric_weights else QuantType.QUInt8
    return activation, weight


def per_channel_overrides(model) -> tuple[dict[str, list[dict[str, Any]]], int, int]:
    """Return the overrides of a per-channel recipe, with the number of MatMul weights and LayerNorm gains.

    MatMul weights that are 2-D initializers get int8 symmetric per-channel quantization along their output
    axis. LayerNormalization gains get per-tensor uint8, the only form HTP accepted for them.
    """
    from onnxruntime.quantization import QuantType

    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    overrides: dict[str, list[dict[str, Any]]] = {}
    matmul = gains = 0
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[1] in initializers and len(initializers[node.input[1]].dims) == 2:
            overrides[node.input[1]] = [{"quant_type": QuantType.QInt8, "symmetric": True, "axis": 1}]
            matmul += 1
        elif node.op_type == "LayerNormalization" and len(node.input) > 1 and node.input[1] in initializers:
            overrides[node.input[1]] = [{"quant_type": QuantType.QUInt8}]
            gains += 1
    return overrides, matmul, gains


def static_shapes(params: QnnQuantizeParams, session_inputs: list) -> list[tuple[str, str]]:
    """Return (input name, "1,128") pairs for qnn_preprocess_model, checked against the graph's inputs."""
    shapes = {spec["name"]: spec["shape"] for spec in params.inputs}
    names = [spec.name for spec in session_inputs]
    missing = [name for name in names if name not in shapes]
    if missing:
        raise ValueError(f"no static shape for graph inputs {missing}; params.inputs names {sorted(shapes)}")
    return [(name, ",".join(str(int(size)) for size in shapes[name])) for name in names]


def calibration_rows(dataset: Path, calibration: dict[str, Any], batch: int) -> dict[str, np.ndarray]:
    from stages.dataset import check_calibration_samples, load_split

    arrays = load_split(dataset, "calibration")
    samples = int(calibration["samples"])
    check_calibration_samples(samples, len(next(iter(arrays.values()))))
    # Whole batches only, because the graph's batch dimension is fixed.
    rows = max(batch, samples - samples % batch)
    return {name: array[:rows] for name, array in arrays.items()}


class QnnQuantizeStage(Stage):
    kind = "qnn_quantize"
    Params = QnnQuantizeParams
    inputs = ("model", "dataset")
    tools = ("onnx", "onnxruntime")

    def run(self, params: QnnQuantizeParams, inputs: StageInputs, out: Path) -> dict[str, Any]:
        import onnx
        import onnxruntime
        from onnxruntime.quantization import CalibrationMethod, quantize
        from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config, qnn_preprocess_model

        from stages.ort_quantize import CalibrationReader, count_op_types, file_bytes, parse_tensor_overrides, smoke_check

        activation_type, weight_type = quant_types(params)
        unknown = sorted(set(params.options) - set(OPTION_KEYS))
        if unknown:
            raise ValueError(f"unknown qnn options {unknown}; valid keys: {', '.join(OPTION_KEYS)}")
        calibration = {**DEFAULT_CALIBRATION, **(params.calibration or {})}
        methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}
        if calibration["method"] not in methods:
            raise ValueError(f"invalid calibration method '{calibration['method']}'; valid choices: {', '.join(methods)}")

        source = inputs["model"] / "model.onnx"
        target = out / "model.onnx"
        float_session = onnxruntime.InferenceSession(str(source), providers=["CPUExecutionProvider"])
        shapes = static_shapes(params, float_session.get_inputs())
        batch = int(shapes[0][1].split(",")[0])
        arrays = calibration_rows(inputs["dataset"], calibration, batch)

        with tempfile.TemporaryDirectory(prefix="qnn_quantize.") as scratch:
            prepared = Path(scratch) / "prepared.onnx"
            # NOTE: the prepared and quantized models are saved as one protobuf, so models over 2 GiB fail here.
            qnn_preprocess_model(str(source), str(prepared), fuse_layernorm=True, dynamic_input_shapes=shapes)

            overrides = parse_tensor_overrides(params.options.get("TensorQuantOverrides", {}))
            matmul = gains = 0
            if params.per_channel:
                generated, matmul, gains = per_channel_overrides(onnx.load(str(prepared), load_external_data=False))
                # Overrides from the recipe win over the generated ones.
                overrides = {**generated, **overrides}

            reader = CalibrationReader(arrays, batch)
            config = get_qnn_qdq_config(
                str(prepared),
                reader,
                calibrate_method=methods[calibration["method"]],
                activation_type=activation_type,
                weight_type=weight_type,
                per_channel=params.per_channel,
                init_overrides=overrides or None,
                activation_symmetric=params.symmetric_activations,
                weight_symmetric=params.symmetric_weights,
            )
            if calibration["method"] == "percentile":
                config.extra_options["CalibPercentile"] = float(calibration["percentile"])
            quantize(str(prepared), str(target), config)

            smoke_feeds = {name: np.ascontiguousarray(array[:batch]) for name, array in arrays.items()}
            cosine = smoke_check(prepared, target, None, feeds=smoke_feeds)

        counts = count_op_types(target)
        result = {
            "method": "static",
            "precision": params.precision,
            "activation_type": activation_type.name,
            "weight_type": weight_type.name,
            "per_channel": params.per_channel,
            "per_channel_matmul_weights": matmul,
            "per_tensor_layernorm_gains": gains,
            "static_shapes": dict(shapes),
            "calibration": calibration,
            "calibration_rows": len(next(iter(arrays.values()))),
            "quantized_ops": {op: counts[op] for op in ("QuantizeLinear", "DequantizeLinear") if op in counts},
            "smoke_cosine_min": cosine,
            "file_bytes": file_bytes(target),
            "source_bytes": file_bytes(source),
            "provider": params.provider,
            "provider_options": dict(params.provider_options),
        }
        self.log.info(
            "QNN QDQ: activations %s, weights %s%s, %d -> %d bytes, smoke-batch cosine vs float %.5f",
            activation_type.name, weight_type.name, " per channel" if params.per_channel else "",
            result["source_bytes"], result["file_bytes"], cosine,
        )
        return result
