"""LiteRT: convert the PyTorch model itself to a ``.tflite`` file with litert-torch, with no ONNX in between.

The conversion needs the separate LiteRT environment (``sarvam_pipeline.litert_env``). Without it, the main
job stops before any stage runs with what to run, and ``runtime=auto`` passes LiteRT over.
"""

from __future__ import annotations

from typing import Any

from sarvam_pipeline.node import Node
from sarvam_pipeline.runtimes.base import RuntimePlanner


class LiteRtPlanner(RuntimePlanner):
    name = "litert"
    methods = frozenset({"none", "dynamic", "weight_only"})

    def check_recipe(self, quant: dict[str, Any], options: dict[str, Any] | None = None) -> str | None:
        problem = super().check_recipe(quant, options)
        if problem is not None or quant["method"] == "none":
            return problem
        # The litert-torch recipes quantize every supported op's weights symmetrically, to 8 bits here.
        if quant["weight_bits"] != 8:
            return f"LiteRT recipes here quantize weights to 8 bits, not {quant['weight_bits']}"
        if quant["method"] == "dynamic" and quant.get("activation_bits") not in (None, 8):
            return f"LiteRT dynamic-range activations are 8-bit, not {quant['activation_bits']}"
        if not quant["symmetric_weights"]:
            return "litert-torch quantizes weights symmetrically: expected symmetric_weights true"
        if quant.get("block_size") is not None:
            return f"block_size {quant['block_size']} is not supported by the LiteRT int8 recipes: set it to null"
        if quant.get("exclude_op_types") or quant.get("exclude_nodes"):
            return "the LiteRT recipes quantize every supported op: expected empty exclude_op_types and exclude_nodes"
        return None

    def environment_problem(self) -> str | None:
        from sarvam_pipeline.litert_env import environment_problem

        return environment_problem()

    def build_problem(self, options: dict[str, Any]) -> str | None:
        return self.environment_problem()

    def plan_artifact(self, target, shared) -> Node:
        from sarvam_pipeline.litert_env import environment_problem, environment_versions

        quant = target.quant
        params = {
            "model": shared.identity(target),
            "graph": shared.graph(target),
            "method": quant["method"],
            "weight_bits": int(quant["weight_bits"]),
            "per_channel": bool(quant["per_channel"]),
            # Empty where the environment is missing: the node is then reported as unavailable, not built.
            "environment": environment_versions() if environment_problem() is None else {},
        }
        label = f"litert_convert[{target.model['name']}/{quant['name']}]"
        return Node("litert_convert", params, label=label)
