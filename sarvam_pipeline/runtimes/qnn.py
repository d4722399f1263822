"""Qualcomm QNN: a QDQ model prepared for the HTP backend, compiled ahead of time into an EPContext model.

``qnn_quantize`` quantizes the shared ONNX export with ONNX Runtime's QNN tooling, calibrated on the shared
data set. ``qnn_context`` compiles it with the QNN EP of onnxruntime-qnn (optional extra ``qnn``) into
``model_ctx.onnx`` and a context binary. Validation and benchmark load that EPContext model on the QNN EP with
CPU fallback disabled. On x86_64 hosts the HTP backend is a simulator taking about 1.4 s per inference of
all-MiniLM-L6-v2 on an idle core, so validation runs a subset of the evaluation set and the benchmark a few
iterations (runtime options ``validation_samples``, ``benchmark_warmup``, ``benchmark_iterations``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sarvam_pipeline.errors import ConfigError
from sarvam_pipeline.node import Node
from sarvam_pipeline.runtimes.base import RuntimePlanner, recipe_params

RECIPE_FIELDS = ("precision", "method", "weight_bits", "activation_bits", "per_channel", "symmetric_weights", "symmetric_activations")

# Limits for runs on the HTP simulator when the runtime options set none.
SIMULATOR_LIMITS = {"validation_samples": 32, "benchmark_warmup": 1, "benchmark_iterations": 5}


def check_qnn_recipe(quant: dict[str, Any]) -> str | None:
    """Return why the QNN HTP backend cannot run the recipe's QDQ model, or None when it can."""
    if quant["method"] != "static":
        return f"QNN HTP runs static QDQ models: method must be static, not '{quant['method']}'"
    if quant["weight_bits"] != 8:
        return f"QNN HTP quantization takes weight_bits 8, not {quant['weight_bits']}"
    if quant["activation_bits"] not in (None, 8, 16):
        return f"QNN HTP takes activation_bits 8 or 16, not {quant['activation_bits']}"
    if quant["per_channel"] and not quant["symmetric_weights"]:
        return "per-channel weights on QNN HTP must be symmetric: set symmetric_weights true"
    if quant["exclude_nodes"] or quant["exclude_op_types"]:
        return "exclude_nodes and exclude_op_types leave float nodes that HTP cannot run with CPU fallback disabled"
    return None


def static_inputs(target, shared) -> list[dict[str, Any]]:
    """Return each graph input with batch 1 and the model's sequence length: HTP graphs have static shapes."""
    sizes = {"batch": 1, "sequence": int(target.model["sequence_length"])}
    inputs = []
    for spec in shared.graph(target)["inputs"]:
        shape = [dim if isinstance(dim, int) else sizes.get(dim) for dim in spec["shape"]]
        if any(dim is None for dim in shape):
            raise ConfigError(
                f"invalid dimension in input {spec['name']} {spec['shape']}: QNN HTP needs static shapes, "
                f"so each dimension must be an integer or one of {sorted(sizes)}"
            )
        inputs.append({"name": spec["name"], "shape": shape})
    return inputs


def qdq_node(target, shared, provider_options: dict[str, Any]) -> Node:
    """Return the qnn_quantize node: the shared ONNX export quantized for HTP with the shared calibration set."""
    quant = target.quant
    params = recipe_params(quant, "qnn", RECIPE_FIELDS)
    params["calibration"] = quant["calibration"]
    params["inputs"] = static_inputs(target, shared)
    params["provider_options"] = dict(provider_options)
    inputs = (("model", shared.export(target, "onnx")), ("dataset", shared.dataset(target)))
    return Node("qnn_quantize", params, inputs, label=f"qnn_quantize[{target.model['name']}/{quant['name']}]")


def simulator_target(target, options: dict[str, Any]):
    """Return the target with the simulator's benchmark iterations, and the validation sample count.

    Off a simulator (an arm64 host with a Hexagon NPU) the target is unchanged and every sample is validated.
    """
    from sarvam_pipeline.backends.qnn import is_simulator

    if not is_simulator():
        return target, None
    limits = {name: int(options.get(name, default)) for name, default in SIMULATOR_LIMITS.items()}
    benchmark = {**target.benchmark, "warmup": limits["benchmark_warmup"], "iterations": limits["benchmark_iterations"]}
    return dataclasses.replace(target, benchmark=benchmark), limits["validation_samples"]


class QnnPlanner(RuntimePlanner):
    name = "qnn"
    methods = frozenset({"static"})

    def check_recipe(self, quant: dict[str, Any], options: dict[str, Any] | None = None) -> str | None:
        return super().check_recipe(quant, options) or check_qnn_recipe(quant)

    def environment_problem(self) -> str | None:
        from sarvam_pipeline.backends.qnn import missing_package_message

        return missing_package_message("runtime qnn")

    def build_problem(self, options: dict[str, Any]) -> str | None:
        from sarvam_pipeline.backends.qnn import BACKEND_TYPES, qnn_unavailable_reason

        backend = str(options.get("backend", "HTP"))
        if backend not in BACKEND_TYPES:
            return f"QNN backend {backend} is not supported; valid choices: {', '.join(BACKEND_TYPES)}"
        # Compiling the EPContext model runs the QNN EP, so the artifact needs onnxruntime-qnn.
        return qnn_unavailable_reason()

    def context_options(self, target) -> dict[str, Any]:
        from sarvam_pipeline.backends.qnn import BACKEND_TYPES

        options = self.backend_options(target)
        backend = str(options.get("backend", "HTP"))
        if backend not in BACKEND_TYPES:
            raise ConfigError.invalid_choice("runtime.options.backend", backend, BACKEND_TYPES)
        return {"backend_type": BACKEND_TYPES[backend], **(options.get("provider_options", {}) or {})}

    def plan_artifact(self, target, shared) -> Node:
        provider_options = self.context_options(target)
        qdq = qdq_node(target, shared, provider_options)
        params = {"provider_options": provider_options, "embed_mode": int(self.backend_options(target).get("context_embed_mode", 0))}
        inputs = (("model", qdq), ("dataset", shared.dataset(target)))
        return Node("qnn_context", params, inputs, label=f"qnn_context[{target.model['name']}/{target.quant['name']}]")

    def plan_validation(self, target, artifact, shared) -> Node:
        limited, samples = simulator_target(target, self.run_options(target))
        return shared.validation(limited, artifact, self.name, self.run_options(target), samples=samples)

    def plan_benchmark(self, target, artifact, shared) -> Node:
        limited, _ = simulator_target(target, self.run_options(target))
        return shared.benchmark(limited, artifact, self.name, self.run_options(target))
