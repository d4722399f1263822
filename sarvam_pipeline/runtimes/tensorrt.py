"""TensorRT: a plan node writes the trtexec build next to the shared ONNX export, and an engine node builds it.

The plan node runs on every host. The engine node needs an NVIDIA GPU with TensorRT and is skipped elsewhere,
with the reason, together with the validation and benchmark nodes that read the engine.
"""

from __future__ import annotations

from typing import Any

from sarvam_pipeline.node import Node
from sarvam_pipeline.runtimes.base import RuntimePlanner


class TensorRtPlanner(RuntimePlanner):
    name = "tensorrt"
    methods = frozenset({"none", "fp16", "static"})

    def check_recipe(self, quant: dict[str, Any], options: dict[str, Any] | None = None) -> str | None:
        problem = super().check_recipe(quant, options)
        if problem is None and quant["method"] == "static" and (quant["weight_bits"], quant["activation_bits"]) != (8, 8):
            problem = "TensorRT static quantization is int8: expected weight_bits 8 and activation_bits 8"
        return problem

    def build_problem(self, options: dict[str, Any]) -> str | None:
        from sarvam_pipeline.backends.tensorrt import tensorrt_reason

        # The plan node builds everywhere, but the engine, which is the artifact, needs TensorRT and a GPU.
        return tensorrt_reason()

    def plan_artifact(self, target, shared) -> Node:
        quant = target.quant
        options = target.runtime.get("options", {})
        label = f"{target.model['name']}/{quant['name']}"
        params: dict[str, Any] = {
            "model": shared.identity(target),
            "graph": shared.graph(target),
            "method": quant["method"],
            "max_batch_size": int(options.get("max_batch_size", 32)),
            "opt_batch_size": int(options.get("opt_batch_size", 1)),
            "workspace_mb": int(options.get("workspace_mb", 1024)),
        }
        onnx = shared.export(target, "onnx")
        plan_inputs: list[tuple[str, Node]] = [("model", onnx)]
        build_inputs: list[tuple[str, Node]] = [("model", onnx)]
        if quant["method"] == "static":
            params["calibration"] = quant["calibration"]
            plan_inputs.append(("dataset", shared.dataset(target)))
            build_inputs.append(("dataset", shared.dataset(target)))

        plan = Node("tensorrt_plan", params, tuple(plan_inputs), label=f"tensorrt_plan[{label}]")
        build_inputs.append(("plan", plan))
        device = str(options.get("device", "GPU"))
        return Node("tensorrt_build", {"device": device}, tuple(build_inputs), label=f"tensorrt_build[{label}]")
