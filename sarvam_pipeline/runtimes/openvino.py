"""OpenVINO: convert the shared ONNX export to a float32 IR once, then compress it with NNCF per recipe."""

from __future__ import annotations

from typing import Any

from sarvam_pipeline.node import Node
from sarvam_pipeline.runtimes.base import RuntimePlanner, accuracy_target_enabled, recipe_params
from stages.openvino_compress import recipe_problem

RECIPE_FIELDS = (
    "method",
    "weight_bits",
    "activation_bits",
    "block_size",
    "per_channel",
    "symmetric_weights",
    "symmetric_activations",
    "exclude_nodes",
    "exclude_op_types",
    "accuracy_target",
)


class OpenVinoPlanner(RuntimePlanner):
    name = "openvino"
    methods = frozenset({"none", "fp16", "static", "weight_only"})

    def check_recipe(self, quant: dict[str, Any], options: dict[str, Any] | None = None) -> str | None:
        problem = super().check_recipe(quant, options)
        if problem is None:
            recipe = {**quant, "options": dict(quant.get("options", {}).get(self.name, {}) or {})}
            problem = recipe_problem(recipe)
        return problem

    def plan_artifact(self, target, shared) -> Node:
        quant = target.quant
        model_name = target.model["name"]
        # Conversion reads only the ONNX graph, so every OpenVINO recipe of a model shares this node.
        convert = Node(
            "openvino_convert",
            {},
            (("model", shared.export(target, "onnx")),),
            label=f"openvino_convert[{model_name}/{shared.graph(target)['name']}]",
        )

        params = recipe_params(quant, self.name, RECIPE_FIELDS)
        inputs: list[tuple[str, Node]] = [("model", convert)]
        if quant["method"] == "static":
            params["calibration"] = quant["calibration"]
        if quant["method"] == "static" or accuracy_target_enabled(quant):
            inputs.append(("dataset", shared.dataset(target)))
        return Node("openvino_compress", params, tuple(inputs), label=f"openvino_compress[{model_name}/{quant['name']}]")

    def plan_gap(self, target, artifact, shared) -> Node | None:
        # The float32 IR is the compress node's "model" input.
        if target.quant["method"] in ("none", "fp16"):
            return None
        convert = dict(artifact.inputs)["model"]
        return shared.numeric_gap(target, convert, artifact, self.name)
