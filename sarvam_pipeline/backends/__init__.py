"""Inference backends: load a built artifact from disk and run it on this host.

Validation and benchmark stages are generic over backends, so every runtime is measured the same way.
Backends import their runtime lazily.
"""

from __future__ import annotations

import importlib

from sarvam_pipeline.backends.base import Backend

BACKENDS = {
    "onnxruntime": "sarvam_pipeline.backends.onnxruntime:OnnxRuntimeBackend",
    "openvino": "sarvam_pipeline.backends.openvino:OpenVinoBackend",
    "coreml": "sarvam_pipeline.backends.coreml:CoreMLBackend",
    "torch_aoti": "sarvam_pipeline.backends.torch_aoti:TorchAotiBackend",
    "tensorrt": "sarvam_pipeline.backends.tensorrt:TensorRtBackend",
    "litert": "sarvam_pipeline.backends.litert:LiteRtBackend",
    "qnn": "sarvam_pipeline.backends.qnn:QnnBackend",
}


def get_backend(runtime: str) -> Backend:
    module_name, class_name = BACKENDS[runtime].split(":")
    return getattr(importlib.import_module(module_name), class_name)()
