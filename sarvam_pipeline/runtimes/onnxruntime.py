"""ONNX Runtime: prepare the shared ONNX export for one execution provider with ``onnxruntime.quantization``.

Each provider takes the graph in the form it runs best (see ``PROVIDER_METHODS`` and ``provider_preparation``):
fp16 recipes become a float16 graph for CUDA and DirectML but stay float32 for TensorRT, Core ML and OpenVINO,
which convert to fp16 themselves when told by a provider option; VitisAI gets AMD's int8 QDQ settings; QNN gets
the QDQ model of ``stages.qnn_quantize``. The provider options a recipe implies are merged under the ones the
runtime options give and written into the artifact's manifest.

When the requested provider is not installed here and fallback=degrade runs the graph on another provider,
validation is labelled an estimate and the benchmark reports that latency needs the device.
"""

from __future__ import annotations

from typing import Any

from sarvam_pipeline.errors import ConfigError
from sarvam_pipeline.node import Node
from sarvam_pipeline.runtimes.base import RuntimePlanner, accuracy_target_enabled, recipe_params

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
    "accuracy_target",
)

# Recipe methods each execution provider runs, by the provider names of runtime.options.provider.
PROVIDER_METHODS: dict[str, frozenset[str]] = {
    "cpu": frozenset({"none", "fp16", "dynamic", "static", "weight_only"}),
    # NOTE: only none and fp16 were checked against the CUDA EP's kernels; the quantized methods rely on its
    # int8 contrib kernels and were not run on a GPU here.
    "cuda": frozenset({"none", "fp16", "dynamic", "static", "weight_only"}),
    "directml": frozenset({"none", "fp16"}),
    "tensorrt": frozenset({"none", "fp16", "static"}),
    "coreml": frozenset({"none", "fp16"}),
    "openvino": frozenset({"none", "fp16", "static"}),
    "vitisai": frozenset({"none", "static"}),
    "qnn": frozenset({"static"}),
}

# AMD's quantization settings for the Ryzen AI NPU: QDQ format, QUInt8 activations and QInt8 weights, both
# symmetric, per tensor ("Configuration", optimum.amd.ryzenai.QuantizationConfig defaults,
# https://huggingface.co/docs/optimum/v1.17.1/amd/ryzenai/package_reference/configuration). The same defaults
# calibrate with power-of-two scales (PowerOfTwoMethod.MinMSE), AMD's XINT8 format.
# NOTE: onnxruntime 1.32's quantize_static has no power-of-two scale option, so the scales are float; AMD's
# Quark or vai_q_onnx quantizer is needed for XINT8.
VITISAI_SETTINGS = {
    "activation_bits": 8,
    "activation_type": "QUInt8",
    "symmetric_activations": True,
    "symmetric_weights": True,
    "per_channel": False,
}


def requested_provider(options: dict[str, Any]) -> str:
    return str(options.get("provider", "cpu")).lower()


def provider_preparation(provider: str, quant: dict[str, Any], options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the recipe fields to override for ``provider`` and the provider options the recipe implies.

    The provider options are ONNX Runtime's names for that provider (onnxruntime 1.32 documentation of each
    execution provider). Options given in ``options["provider_options"]`` are applied on top by the caller.
    """
    method = quant["method"]
    fields: dict[str, Any] = {}
    provider_options: dict[str, Any] = {}
    if provider == "tensorrt":
        # TensorRT builds fp16 engines from the float32 graph; int8 takes explicit QDQ with symmetric scales.
        if method == "fp16":
            fields["method"] = "none"
            provider_options["trt_fp16_enable"] = True
        elif method == "static":
            fields.update(symmetric_activations=True, symmetric_weights=True, activation_bits=8)
            provider_options["trt_int8_enable"] = True
    elif provider == "coreml":
        provider_options.update(ModelFormat="MLProgram", MLComputeUnits="ALL")
        if method == "fp16":
            # An MLProgram computes in fp16 on the GPU and Neural Engine when accumulation may be fp16.
            fields["method"] = "none"
            provider_options["AllowLowPrecisionAccumulationOnGPU"] = "1"
    elif provider == "openvino":
        provider_options["device_type"] = "CPU"
        if method in ("none", "fp16"):
            provider_options["precision"] = "FP16" if method == "fp16" else "FP32"
            fields["method"] = "none"
    elif provider == "vitisai" and method == "static":
        fields.update(VITISAI_SETTINGS)
    return fields, provider_options


class OnnxRuntimePlanner(RuntimePlanner):
    name = "onnxruntime"
    methods = frozenset({"none", "fp16", "dynamic", "static", "weight_only"})

    def check_recipe(self, quant: dict[str, Any], options: dict[str, Any] | None = None) -> str | None:
        problem = super().check_recipe(quant, options)
        if problem is None and quant["method"] == "weight_only" and quant["weight_bits"] not in (4, 8):
            problem = f"weight-only quantization in ONNX Runtime takes weight_bits 4 or 8, not {quant['weight_bits']}"
        if problem is None and options is not None:
            provider = requested_provider(options)
            if provider not in PROVIDER_METHODS:
                return f"unknown provider '{provider}'; valid choices: {', '.join(PROVIDER_METHODS)}"
            if quant["method"] not in PROVIDER_METHODS[provider]:
                return f"the {provider} execution provider takes methods {sorted(PROVIDER_METHODS[provider])}, not '{quant['method']}'"
            if provider == "qnn":
                from sarvam_pipeline.runtimes.qnn import check_qnn_recipe

                problem = check_qnn_recipe(quant)
        return problem

    def backend_options(self, target) -> dict[str, Any]:
        """Return the runtime options with the provider options the recipe implies, under the given ones."""
        options = dict(target.runtime.get("options", {}))
        provider = requested_provider(options)
        if provider in PROVIDER_METHODS and provider != "cpu":
            _, implied = provider_preparation(provider, target.quant, options)
            options["provider_options"] = {**implied, **(options.get("provider_options", {}) or {})}
        return options

    def plan_artifact(self, target, shared) -> Node:
        quant = target.quant
        options = self.backend_options(target)
        provider = requested_provider(options)
        problem = self.check_recipe(quant, options)
        if problem:
            raise ConfigError(f"invalid quant '{quant['name']}' for runtime {self.name}: {problem}")

        if provider == "qnn":
            from sarvam_pipeline.runtimes.qnn import qdq_node

            return qdq_node(target, shared, options["provider_options"])

        params = recipe_params(quant, self.name, RECIPE_FIELDS)
        label = f"ort_quantize[{target.model['name']}/{quant['name']}]"
        if provider != "cpu":
            fields, _ = provider_preparation(provider, quant, options)
            params.update(fields)
            # Set only for other providers, so CPU nodes keep their keys.
            params["provider"] = provider
            params["provider_options"] = options["provider_options"]
            label = f"ort_quantize[{target.model['name']}/{quant['name']}/{provider}]"
        inputs: list[tuple[str, Node]] = [("model", shared.export(target, "onnx"))]
        calibration = None
        if params["method"] == "static":
            params["calibration"] = quant["calibration"]
            calibration = self.calibration_node(target, shared, params["options"])
            if calibration is not None:
                inputs.append(("calibration", calibration))
        calibrates_inline = params["method"] == "static" and calibration is None
        if calibrates_inline or accuracy_target_enabled(quant):
            inputs.append(("dataset", shared.dataset(target)))
        return Node("ort_quantize", params, tuple(inputs), label=label)

    def calibration_node(self, target, shared, options: dict[str, Any]) -> Node | None:
        """Return the ort_calibrate node that static recipes with the same calibration settings share.

        SmoothQuant rewrites the model before calibrating, which a shared range cache cannot follow, so those
        recipes calibrate inside their quantize node.
        """
        from stages.ort_calibrate import calibration_options

        if options.get("SmoothQuant"):
            return None
        calibration = target.quant["calibration"]
        params = {
            "method": calibration["method"],
            "samples": calibration["samples"],
            "percentile": calibration["percentile"],
            "options": calibration_options(options),
        }
        inputs = (("model", shared.export(target, "onnx")), ("dataset", shared.dataset(target)))
        label = f"ort_calibrate[{target.model['name']}/{calibration['method']}-{calibration['samples']}]"
        return Node("ort_calibrate", params, inputs, label=label)

    def plan_gap(self, target, artifact, shared) -> Node | None:
        if target.quant["method"] == "none" or self._runs_elsewhere(target) or requested_provider(self.run_options(target)) != "cpu":
            return None
        return shared.numeric_gap(target, shared.export(target, "onnx"), artifact, self.name)

    def _runs_elsewhere(self, target) -> bool:
        """Return whether validation and benchmark run on another provider than the one the graph was prepared for."""
        from sarvam_pipeline.backends.onnxruntime import provider_name

        return provider_name(self.run_options(target)) != provider_name(self.backend_options(target))

    def plan_validation(self, target, artifact, shared) -> Node:
        from sarvam_pipeline.backends.onnxruntime import provider_name
        from sarvam_pipeline.runtimes.qnn import simulator_target

        run_options = self.run_options(target)
        if self._runs_elsewhere(target):
            estimate_for = provider_name(self.backend_options(target))
            return shared.validation(target, artifact, self.name, run_options, estimate_for=estimate_for)
        if requested_provider(run_options) == "qnn":
            limited, samples = simulator_target(target, run_options)
            return shared.validation(limited, artifact, self.name, run_options, samples=samples)
        return shared.validation(target, artifact, self.name, run_options)

    def plan_benchmark(self, target, artifact, shared) -> Node:
        from sarvam_pipeline.runtimes.qnn import simulator_target

        if self._runs_elsewhere(target):
            # Latency of the graph on a fallback provider tells nothing about the requested one, so the benchmark
            # gets the requested options and reports that it needs the device.
            return shared.benchmark(target, artifact, self.name, self.backend_options(target))
        run_options = self.run_options(target)
        if requested_provider(run_options) == "qnn":
            target, _ = simulator_target(target, run_options)
        return shared.benchmark(target, artifact, self.name, run_options)
