"""Core ML: convert the shared TorchScript export to an mlprogram, then compress its weights.

Core ML prediction runs only on macOS, so on other hosts the accuracy node is a PyTorch emulation of the
recipe's numeric change (``coreml_estimate``) in place of a measured validation.
"""

from __future__ import annotations

import sys
from typing import Any

from sarvam_pipeline.errors import ConfigError
from sarvam_pipeline.node import Node
from sarvam_pipeline.runtimes.base import RuntimePlanner, recipe_params

RECIPE_FIELDS = (
    "precision",
    "method",
    "weight_bits",
    "block_size",
    "per_channel",
    "symmetric_weights",
    "exclude_nodes",
    "exclude_op_types",
)

# Core ML specification version of each coremltools deployment target, written as the iOS release that
# introduced it (coremltools 9.0, coremltools/converters/mil/_deployment_compatibility.py). Kept here so
# planning does not import coremltools.
DEPLOYMENT_TARGETS = {
    **{f"iOS{version}": version for version in (13, 14, 15, 16, 17, 18, 26)},
    **{f"tvOS{version}": version for version in (13, 14, 15, 16, 17, 18, 26)},
    **{f"watchOS{version}": version + 7 for version in (6, 7, 8, 9, 10, 11)},
    "watchOS26": 26,
    "macOS10_15": 13,
    "macOS10_16": 14,
    "macOS11": 14,
    "macOS12": 15,
    "macOS13": 16,
    "macOS14": 17,
    "macOS15": 18,
    "macOS26": 26,
}
# mlprogram models need iOS15 and weight compression needs iOS16. int4 weights, per-block quantization and
# per-grouped-channel palettization need iOS18 (coremltools 9.0, optimize/coreml/_quantization_passes.py).
MLPROGRAM_MIN, COMPRESSION_MIN, BLOCKWISE_MIN = 15, 16, 18

# Palettization bit widths that coremltools 9.0 OpPalettizerConfig accepts.
PALETTIZE_NBITS = (1, 2, 3, 4, 6, 8)
PALETTIZE_GRANULARITIES = ("per_tensor", "per_grouped_channel")


def compute_precision(quant: dict[str, Any]) -> str:
    """Return the Core ML compute precision of a recipe: fp32 for the fp32 recipe, fp16 for all others.

    Compressed recipes convert at fp16 too, the coremltools default for mlprogram models, so their weights
    are compressed from float16 values.
    """
    return "fp32" if quant["precision"] == "fp32" else "fp16"


def deployment_target(options: dict[str, Any]) -> str:
    return str(options.get("minimum_deployment_target", "macOS15"))


def input_shapes(model: dict[str, Any], graph: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the static shape of each graph input: batch 1 and the model's sequence length."""
    sizes = {"batch": 1, "sequence": int(model["sequence_length"])}
    shapes = []
    for spec in graph["inputs"]:
        shape = []
        for dim in spec["shape"]:
            if isinstance(dim, int):
                shape.append(dim)
            elif dim in sizes:
                shape.append(sizes[dim])
            else:
                raise ConfigError(
                    f"invalid dimension '{dim}' of input {spec['name']}: Core ML needs static shapes, "
                    f"so each dimension must be an integer or one of {sorted(sizes)}"
                )
        shapes.append({"name": spec["name"], "shape": shape})
    return shapes


def check_palettization(quant: dict[str, Any]) -> str | None:
    settings = quant["palettization"]
    if settings["nbits"] not in PALETTIZE_NBITS:
        return f"palettization.nbits must be one of {list(PALETTIZE_NBITS)}, not {settings['nbits']}"
    if settings["nbits"] != quant["weight_bits"]:
        return f"weight_bits {quant['weight_bits']} does not match palettization.nbits {settings['nbits']}"
    if settings["mode"] != "kmeans":
        # coremltools.optimize.torch, which the host-side estimate uses, palettizes only with k-means.
        return f"palettization.mode must be kmeans, not '{settings['mode']}'"
    if settings["granularity"] not in PALETTIZE_GRANULARITIES:
        return f"palettization.granularity must be one of {list(PALETTIZE_GRANULARITIES)}, not '{settings['granularity']}'"
    if settings["granularity"] == "per_grouped_channel" and settings["group_size"] < 1:
        return f"palettization.group_size must be at least 1, not {settings['group_size']}"
    return None


def check_deployment_target(quant: dict[str, Any], target: str) -> str | None:
    if target not in DEPLOYMENT_TARGETS:
        return f"unknown minimum_deployment_target '{target}'; valid choices: {', '.join(DEPLOYMENT_TARGETS)}"
    version = DEPLOYMENT_TARGETS[target]
    if version < MLPROGRAM_MIN:
        return f"minimum_deployment_target {target} is older than iOS15/macOS12, the first with mlprogram models"

    method = quant["method"]
    if method in ("weight_only", "palettize") and version < COMPRESSION_MIN:
        return f"weight compression needs minimum_deployment_target iOS16/macOS13 or newer, not {target}"
    if method == "weight_only" and version < BLOCKWISE_MIN:
        if quant["weight_bits"] == 4:
            return f"int4 weights need minimum_deployment_target iOS18/macOS15 or newer, not {target}"
        if quant["block_size"] is not None:
            return f"per-block quantization needs minimum_deployment_target iOS18/macOS15 or newer, not {target}"
    if method == "palettize" and version < BLOCKWISE_MIN:
        if quant["palettization"]["granularity"] == "per_grouped_channel":
            return f"grouped palettization needs minimum_deployment_target iOS18/macOS15 or newer, not {target}"
    return None


class CoreMLPlanner(RuntimePlanner):
    name = "coreml"
    methods = frozenset({"none", "fp16", "weight_only", "palettize"})

    def check_recipe(self, quant: dict[str, Any], options: dict[str, Any] | None = None) -> str | None:
        """Return why Core ML cannot apply the recipe, or None when it can.

        The deployment-target checks run only when runtime options are given. Target validation and
        ``plan_artifact`` pass them.
        """
        problem = super().check_recipe(quant, options)
        if problem is None and quant["method"] == "weight_only" and quant["weight_bits"] not in (4, 8):
            problem = f"weight-only quantization in Core ML takes weight_bits 4 or 8, not {quant['weight_bits']}"
        if problem is None and quant["method"] == "palettize":
            problem = check_palettization(quant)
        if problem is None and options is not None:
            problem = check_deployment_target(quant, deployment_target(options))
        return problem

    def plan_artifact(self, target, shared) -> Node:
        quant = target.quant
        options = self.backend_options(target)
        problem = self.check_recipe(quant, options)
        if problem:
            raise ConfigError(f"invalid quant '{quant['name']}' for runtime {self.name}: {problem}")

        graph = shared.graph(target)
        precision = compute_precision(quant)
        convert_params = {
            "compute_precision": precision,
            "minimum_deployment_target": deployment_target(options),
            "inputs": input_shapes(target.model, graph),
            "outputs": list(graph["outputs"]),
        }
        convert = Node(
            "coreml_convert",
            convert_params,
            (("model", shared.export(target, "torchscript")),),
            label=f"coreml_convert[{target.model['name']}/{precision}/{convert_params['minimum_deployment_target']}]",
        )

        params = recipe_params(quant, self.name, RECIPE_FIELDS)
        params["palettization"] = dict(quant["palettization"])
        return Node(
            "coreml_compress",
            params,
            (("model", convert),),
            label=f"coreml_compress[{target.model['name']}/{quant['name']}]",
        )

    def plan_validation(self, target, artifact, shared) -> Node:
        """Return the measured validation on macOS, and elsewhere a PyTorch estimate of the same numeric change."""
        if sys.platform == "darwin":
            return super().plan_validation(target, artifact, shared)

        quant = target.quant
        params = recipe_params(quant, self.name, RECIPE_FIELDS)
        params.update(
            {
                "model": shared.identity(target),
                "graph": shared.graph(target),
                "palettization": dict(quant["palettization"]),
                "compute_precision": compute_precision(quant),
            }
        )
        inputs = (("dataset", shared.dataset(target)), ("reference", shared.reference(target)))
        return Node("coreml_estimate", params, inputs, label=f"coreml_estimate[{target.id}]")
