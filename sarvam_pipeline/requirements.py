"""Requirement checks of a matrix entry: what a host or device must offer to run it.

Three kinds of checks, all in the plain-dict form that ``sarvam_pipeline.select`` evaluates:

* runtime checks: the runtime's Python package is present and offers the entry's provider or device;
* compatibility checks: the rules of conf/matrix/compatibility.yaml that apply to the entry;
* target checks: the device's OS and architecture are the chipset's (deploy manifests only, because a build
  host may validate a portable artifact, such as an ONNX model on the CPU EP, on another OS).
"""

from __future__ import annotations

import logging
from typing import Any

from sarvam_pipeline.backends.onnxruntime import PROVIDER_NAMES
from sarvam_pipeline.matrix import DecisionMatrix, MatrixEntry

logger = logging.getLogger(__name__)


def _check(rule: str, description: str, field: str, op: str, value: Any = None, when: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"rule": rule, "description": description, "field": field, "op": op, "value": value, "when": dict(when or {})}


def runtime_checks(entry: MatrixEntry) -> list[dict[str, Any]]:
    """Return the checks that the entry's runtime package is installed and offers its provider or device."""
    runtime, provider = entry.runtime, entry.provider
    rule = f"runtime:{entry.id}"

    if runtime == "onnxruntime":
        provider_name = PROVIDER_NAMES[provider]
        return [
            _check(rule, "ONNX Runtime must be installed", "onnxruntime.installed", "truthy"),
            _check(rule, f"ONNX Runtime must offer {provider_name}", "onnxruntime.providers", "contains", provider_name),
        ]
    if runtime == "openvino":
        checks = [_check(rule, "OpenVINO must be installed", "openvino.installed", "truthy")]
        if provider != "AUTO":
            checks.append(_check(rule, f"OpenVINO must list the {provider} device", "openvino.available_devices", "contains", provider))
        return checks
    if runtime == "coreml":
        return [_check(rule, "coremltools must be able to run Core ML predictions", "coreml.can_predict", "truthy")]
    if runtime == "tensorrt":
        return [
            _check(rule, "the TensorRT Python package must be installed", "tensorrt.installed", "truthy"),
            _check(rule, "an NVIDIA GPU must be visible through NVML", "nvidia.available", "truthy"),
        ]
    if runtime == "qnn":
        return [
            _check(rule, "the QNN plugin EP (onnxruntime-qnn) must be installed and registered", "onnxruntime.qnn_plugin.registered", "truthy"),
            _check(rule, "ONNX Runtime must offer QNNExecutionProvider", "onnxruntime.providers", "contains", "QNNExecutionProvider"),
        ]
    if runtime == "litert":
        return [_check(rule, "the LiteRT interpreter (ai-edge-litert) must be installed", "litert.installed", "truthy")]

    # NOTE: torch_aoti has no probe section yet, so its entries fail this check until the probe reports torch.
    return [_check(rule, f"the probe must report runtime {runtime}", f"{runtime}.installed", "truthy")]


def compatibility_checks(entry: MatrixEntry, matrix: DecisionMatrix, options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Return the checks of every compatibility rule that applies to the entry built with these options."""
    checks = []
    for rule in matrix.rules_for(entry, options):
        for check in rule.checks:
            checks.append(_check(rule.id, rule.description, check.field, check.op, check.value, check.when))
    return checks


def target_checks(entry: MatrixEntry, chipset_arch: str) -> list[dict[str, Any]]:
    """Return the checks that a device runs one of the entry's OSes on the chipset's architecture."""
    rule = f"target:{entry.id}"
    return [
        _check(rule, f"the artifact targets {', '.join(entry.os)}", "os.name", "one_of", list(entry.os)),
        _check(rule, f"the artifact targets {chipset_arch} devices", "os.arch", "equals", chipset_arch),
    ]


def host_requirements(entry: MatrixEntry, matrix: DecisionMatrix) -> list[dict[str, Any]]:
    """Return what a build host needs to run the entry for validation and benchmarking."""
    return runtime_checks(entry) + compatibility_checks(entry, matrix)


def entry_requirements(
    entry: MatrixEntry, matrix: DecisionMatrix, chipset_arch: str, options: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Return what a device needs to run the entry's artifact: runtime, compatibility and target checks.

    ``options`` are the runtime options the artifact was built with; None means the runtime defaults
    overlaid with the entry's options.
    """
    return runtime_checks(entry) + compatibility_checks(entry, matrix, options) + target_checks(entry, chipset_arch)
