"""TensorRT backend: a serialized engine (``model.engine``) run on the NVIDIA GPU it was built for.

Engines are specific to the GPU model and TensorRT version that built them, so an engine runs only where
``tensorrt`` imports and an NVIDIA GPU is present. Device buffers are torch CUDA tensors.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from sarvam_pipeline.backends.base import Backend, Session

ENGINE_FILE = "model.engine"


def nvidia_gpu_present() -> bool:
    """Return whether this host has an NVIDIA GPU, from torch's CUDA runtime or ``nvidia-smi -L``."""
    try:
        import torch

        if torch.cuda.is_available():
            return True
    except ImportError:
        pass

    if shutil.which("nvidia-smi") is None:
        return False
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return listed.returncode == 0 and "GPU" in listed.stdout


def tensorrt_reason() -> str | None:
    """Return why this host cannot build or run TensorRT engines, or None when it can."""
    problems = []
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        problems.append("tensorrt is not installed")
    if not nvidia_gpu_present():
        problems.append("no NVIDIA GPU found")
    if problems:
        return f"needs an NVIDIA GPU with TensorRT ({', '.join(problems)})"
    return None


class TensorRtSession(Session):
    def __init__(self, engine, context) -> None:
        import tensorrt as trt

        self._engine = engine
        self._context = context
        names = [engine.get_tensor_name(index) for index in range(engine.num_io_tensors)]
        self._inputs = [name for name in names if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT]
        self._output = next(name for name in names if engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT)

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        stream = torch.cuda.current_stream()
        # Input tensors stay referenced until the stream is synchronized, so TensorRT reads live memory.
        device_inputs = {}
        for name in self._inputs:
            tensor = torch.from_numpy(np.ascontiguousarray(feeds[name], dtype=np.int64)).cuda()
            device_inputs[name] = tensor
            self._context.set_input_shape(name, tuple(tensor.shape))
            self._context.set_tensor_address(name, tensor.data_ptr())

        shape = tuple(self._context.get_tensor_shape(self._output))
        output = torch.empty(shape, dtype=torch.float32, device="cuda")
        self._context.set_tensor_address(self._output, output.data_ptr())
        if not self._context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed. The TensorRT log above has the cause.")
        stream.synchronize()
        return np.array(output.cpu().numpy(), dtype=np.float32, copy=True)

    def placement(self) -> dict[str, Any]:
        import torch

        return {"device": torch.cuda.get_device_name()}


class TensorRtBackend(Backend):
    name = "tensorrt"
    tools = ("tensorrt",)

    def unavailable_reason(self, options: dict[str, Any]) -> str | None:
        return tensorrt_reason()

    def artifact_file(self, folder: Path) -> Path:
        return folder / ENGINE_FILE

    def load(self, folder: Path, options: dict[str, Any], threads: int | None = None) -> Session:
        # NOTE: untested here: no NVIDIA GPU with TensorRT on the development hosts (also TensorRtSession).
        import tensorrt as trt

        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(self.artifact_file(folder).read_bytes())
        if engine is None:
            raise RuntimeError(f"TensorRT could not deserialize {self.artifact_file(folder)}. Rebuild it with this TensorRT version on this GPU.")
        return TensorRtSession(engine, engine.create_execution_context())
