"""Runtime planners, one module each, imported lazily."""

from __future__ import annotations

import importlib

from sarvam_pipeline.errors import ConfigError
from sarvam_pipeline.runtimes.base import RuntimePlanner

PLANNERS = {
    "onnxruntime": "sarvam_pipeline.runtimes.onnxruntime:OnnxRuntimePlanner",
    "openvino": "sarvam_pipeline.runtimes.openvino:OpenVinoPlanner",
    "coreml": "sarvam_pipeline.runtimes.coreml:CoreMLPlanner",
    "torch_aoti": "sarvam_pipeline.runtimes.torch_aoti:TorchAotiPlanner",
    "tensorrt": "sarvam_pipeline.runtimes.tensorrt:TensorRtPlanner",
    "litert": "sarvam_pipeline.runtimes.litert:LiteRtPlanner",
    "qnn": "sarvam_pipeline.runtimes.qnn:QnnPlanner",
}


def get_planner(runtime: str) -> RuntimePlanner:
    if runtime not in PLANNERS:
        raise ConfigError.invalid_choice("runtime", runtime, PLANNERS)
    module_name, class_name = PLANNERS[runtime].split(":")
    return getattr(importlib.import_module(module_name), class_name)()
