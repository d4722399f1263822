"""ONNX Runtime: quantize the shared ONNX export with ``onnxruntime.quantization``."""

from __future__ import annotations

from typing import Any

from sarvam_pipeline.node import Node
from sarvam_pipeline.runtimes.base import RuntimePlanner, recipe_params

RECIPE_FIELDS = (
    "precision",
    "method",
    "weight_bits",
    "activation_bits",
    "block_size",
    "per_channel",
    "symmetric_weights",
    "symmetric_activations",
    "exclude_nodes",
    "exclude_op_types",
)


class OnnxRuntimePlanner(RuntimePlanner):
    name = "onnxruntime"
    methods = frozenset({"none", "fp16", "dynamic", "static", "weight_only"})

    def check_recipe(self, quant: dict[str, Any], options: dict[str, Any] | None = None) -> str | None:
        problem = super().check_recipe(quant, options)
        if problem is None and quant["method"] == "weight_only" and quant["weight_bits"] not in (4, 8):
            problem = f"weight-only quantization in ONNX Runtime takes weight_bits 4 or 8, not {quant['weight_bits']}"
        return problem

    def plan_artifact(self, target, shared) -> Node:
        quant = target.quant
        params = recipe_params(quant, self.name, RECIPE_FIELDS)
        inputs: list[tuple[str, Node]] = [("model", shared.export(target, "onnx"))]
        if quant["method"] == "static":
            params["calibration"] = quant["calibration"]
            inputs.append(("dataset", shared.dataset(target)))
        return Node("ort_quantize", params, tuple(inputs), label=f"ort_quantize[{target.model['name']}/{quant['name']}]")
