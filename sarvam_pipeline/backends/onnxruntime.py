"""ONNX Runtime backend: InferenceSession on the requested execution provider."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sarvam_pipeline.backends.base import Backend, Session

PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "directml": "DmlExecutionProvider",
    "vitisai": "VitisAIExecutionProvider",
    "qnn": "QNNExecutionProvider",
}


class OnnxRuntimeSession(Session):
    def __init__(self, session) -> None:
        self._session = session
        self._input_names = [i.name for i in session.get_inputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        outputs = self._session.run(None, {name: feeds[name] for name in self._input_names})
        return np.array(outputs[0], dtype=np.float32, copy=True)

    def placement(self) -> dict[str, Any]:
        return {"providers": self._session.get_providers()}


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    tools = ("onnxruntime",)

    def unavailable_reason(self, options: dict[str, Any]) -> str | None:
        import onnxruntime

        provider = PROVIDER_NAMES.get(options.get("provider", "cpu"), options.get("provider", "cpu"))
        available = onnxruntime.get_available_providers()
        if provider not in available:
            return f"execution provider {provider} is not available here (available: {', '.join(available)})"
        return None

    def artifact_file(self, folder: Path) -> Path:
        return folder / "model.onnx"

    def load(self, folder: Path, options: dict[str, Any], threads: int | None = None) -> Session:
        import onnxruntime

        session_options = onnxruntime.SessionOptions()
        if threads:
            session_options.intra_op_num_threads = threads
            session_options.inter_op_num_threads = 1
        provider = PROVIDER_NAMES.get(options.get("provider", "cpu"), options.get("provider", "cpu"))
        provider_options = dict(options.get("provider_options", {}) or {})
        session = onnxruntime.InferenceSession(
            str(self.artifact_file(folder)),
            sess_options=session_options,
            providers=[(provider, provider_options)] if provider != "CPUExecutionProvider" else [provider],
        )
        return OnnxRuntimeSession(session)
