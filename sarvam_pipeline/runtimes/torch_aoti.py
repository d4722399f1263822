"""AOTInductor ("CUDA-direct" on NVIDIA): compile the PyTorch model itself, with no ONNX in between."""

from __future__ import annotations

from typing import Any

from sarvam_pipeline.node import Node
from sarvam_pipeline.runtimes.base import RuntimePlanner


class TorchAotiPlanner(RuntimePlanner):
    name = "torch_aoti"
    methods = frozenset({"none", "fp16"})

    def check_recipe(self, quant: dict[str, Any], options: dict[str, Any] | None = None) -> str | None:
        problem = super().check_recipe(quant, options)
        if problem is not None or quant["method"] != "fp16":
            return problem

        device = str((options or {}).get("device", "cpu"))
        if device != "cuda":
            return f"fp16 needs runtime.options.device=cuda, but the device is {device}, where the package runs in float32"

        from stages.aoti_compile import cuda_reason

        reason = cuda_reason()
        if reason is not None:
            return f"fp16 compiles CUDA kernels, so it {reason}"
        return None

    def build_problem(self, options: dict[str, Any]) -> str | None:
        if str(options.get("device", "cpu")) != "cuda":
            return None

        from stages.aoti_compile import cuda_reason

        return cuda_reason()

    def plan_artifact(self, target, shared) -> Node:
        graph = shared.graph(target)
        params = {
            "model": shared.identity(target),
            "graph": graph,
            "method": target.quant["method"],
            "device": str(target.runtime.get("options", {}).get("device", "cpu")),
        }
        label = f"aoti_compile[{target.model['name']}/{target.quant['name']}/{params['device']}]"
        return Node("aoti_compile", params, label=label)
