"""LiteRT backend: a ``model.tflite`` run by the ai-edge-litert Interpreter through its signature runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sarvam_pipeline.backends.base import Backend, Session

# Delegates (conf/matrix PROVIDERS["litert"]) the Python interpreter runs on this host. GPU and NPU delegates
# are loaded by the app on the device.
HOST_DELEGATES = ("CPU",)


class LiteRtSession(Session):
    def __init__(self, interpreter, threads: int | None) -> None:
        self._runner = interpreter.get_signature_runner()
        # The file's input dtypes: litert-torch converts int64 token ids to int32.
        self._input_dtypes = {name: detail["dtype"] for name, detail in self._runner.get_input_details().items()}
        (self._output_name,) = self._runner.get_output_details()
        self._threads = threads

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        inputs = {name: np.ascontiguousarray(feeds[name], dtype=dtype) for name, dtype in self._input_dtypes.items()}
        outputs = self._runner(**inputs)
        return np.array(outputs[self._output_name], dtype=np.float32, copy=True)

    def placement(self) -> dict[str, Any]:
        return {"delegate": "CPU", "threads": self._threads}


def interpreter_reason() -> str | None:
    """Return why the ai-edge-litert Interpreter cannot be imported here, or None when it can."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except Exception as error:  # noqa: BLE001 - a wheel for another platform raises OSError
        return f"the ai-edge-litert Interpreter is not importable ({error}); pip install ai-edge-litert==2.3.0"
    return None


class LiteRtBackend(Backend):
    name = "litert"
    tools = ("ai-edge-litert",)
    # The file is converted at batch 1 (stages/litert_convert.py), so validation feeds one sample at a time.
    max_batch_size = 1

    def unavailable_reason(self, options: dict[str, Any]) -> str | None:
        delegate = str(options.get("delegate", "CPU"))
        if delegate not in HOST_DELEGATES:
            return f"the LiteRT {delegate} delegate runs on the device; this host runs the CPU (XNNPACK) path only"
        return interpreter_reason()

    def artifact_file(self, folder: Path) -> Path:
        return folder / "model.tflite"

    def load(self, folder: Path, options: dict[str, Any], threads: int | None = None) -> Session:
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(self.artifact_file(folder)), num_threads=threads)
        return LiteRtSession(interpreter, threads)
