"""AOTInductor backend: a ``model.pt2`` package loaded with ``torch._inductor.aoti_load_package``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from sarvam_pipeline.backends.base import Backend, Session

# Input names in the order the exported graph takes them (SentenceEncoder.forward).
INPUT_NAMES = ("input_ids", "attention_mask")


class TorchAotiSession(Session):
    def __init__(self, runner, device: str) -> None:
        self._runner = runner
        self._device = device

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        # The graph was exported with int64 inputs, and a package called with another dtype raises
        # (AOTI_RUNTIME_CHECK_INPUTS=1) instead of reading the memory as int64.
        tensors = [torch.from_numpy(np.ascontiguousarray(feeds[name], dtype=np.int64)).to(self._device) for name in INPUT_NAMES]
        with torch.no_grad():
            output = self._runner(*tensors)
        return np.array(output.float().cpu().numpy(), dtype=np.float32, copy=True)

    def placement(self) -> dict[str, Any]:
        return {"device": self._device}


class TorchAotiBackend(Backend):
    name = "torch_aoti"
    tools = ("torch",)

    def unavailable_reason(self, options: dict[str, Any]) -> str | None:
        from stages.aoti_compile import DEVICES, cuda_reason

        device = str(options.get("device", "cpu"))
        if device not in DEVICES:
            return f"invalid torch_aoti device '{device}': expected one of {', '.join(DEVICES)}"
        if device == "cuda":
            return cuda_reason()
        return None

    def artifact_file(self, folder: Path) -> Path:
        return folder / "model.pt2"

    def load(self, folder: Path, options: dict[str, Any], threads: int | None = None) -> Session:
        # Read by the AOTInductor runtime when the package is loaded, so it is set before loading.
        os.environ["AOTI_RUNTIME_CHECK_INPUTS"] = "1"

        import torch

        if threads:
            torch.set_num_threads(int(threads))
        device = str(options.get("device", "cpu"))
        runner = torch._inductor.aoti_load_package(str(self.artifact_file(folder)))
        return TorchAotiSession(runner, device)
