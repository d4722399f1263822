"""Compile one graph of the float PyTorch model ahead of time with AOTInductor into ``model.pt2``.

``torch.export`` captures the graph with a dynamic batch dimension and a static sequence length (the
model's ``sequence_length``), so every input must be padded to that length, as the tokenizer does.
AOTInductor then generates and compiles C++ (CPU) or Triton and CUDA (GPU) kernels into a package that
``torch._inductor.aoti_load_package`` loads without Python model code.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stages.base import Stage, StageInputs

DEVICES = ("cpu", "cuda")
METHODS = ("none", "fp16")

# Largest batch the package accepts; the dynamic batch dimension runs from 1 to this.
MAX_BATCH = 1024

# Largest absolute difference from eager PyTorch accepted for the float32 package, and for fp16 on CUDA,
# whose half-precision matmuls drift further.
PARITY_TOLERANCE = {"none": 1e-4, "fp16": 1e-2}


@dataclass
class AotiCompileParams:
    model: dict[str, Any] = field(default_factory=dict)
    graph: dict[str, Any] = field(default_factory=dict)
    # "none" keeps float32, and "fp16" stores half weights and runs under CUDA autocast.
    method: str = "none"
    device: str = "cpu"


def cuda_reason() -> str | None:
    """Return why this host cannot compile or run for CUDA, or None when it can."""
    import torch

    if not torch.cuda.is_available():
        return f"needs an NVIDIA GPU with CUDA (torch {torch.__version__} finds no CUDA device)"
    return None


def _half_precision(module):
    """Wrap a module to run with fp16 weights under CUDA autocast and return float32 outputs.

    Autocast keeps softmax and LayerNorm in float32 and casts the float32 attention mask for the fp16 matmuls.
    """
    import torch

    class HalfPrecision(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module.half()

        def forward(self, input_ids, attention_mask):
            with torch.autocast(device_type="cuda", dtype=torch.float16):
                output = self.inner(input_ids, attention_mask)
            return output.float()

    return HalfPrecision().eval()


class AotiCompileStage(Stage):
    kind = "aoti_compile"
    Params = AotiCompileParams
    tools = ("torch", "transformers")

    def unavailable_reason(self, params: AotiCompileParams) -> str | None:
        if params.device == "cuda":
            return cuda_reason()
        return None

    def run(self, params: AotiCompileParams, inputs: StageInputs, out: Path) -> dict[str, Any]:
        import torch
        import torch.fx.experimental._config

        from sarvam_pipeline.models import get_adapter

        if params.device not in DEVICES:
            raise ValueError(f"invalid device '{params.device}' for aoti_compile: expected one of {', '.join(DEVICES)}")
        if params.method not in METHODS:
            raise ValueError(f"invalid method '{params.method}' for aoti_compile: expected one of {', '.join(METHODS)}")
        if params.method == "fp16" and params.device != "cuda":
            raise ValueError("method fp16 for aoti_compile needs device cuda: the CPU package runs in float32")

        adapter = get_adapter(params.model["family"])
        module = adapter.build_module(params.model, params.graph["name"]).to(params.device)
        # A batch of 2: with batch 1 torch.export specializes the batch dimension to the constant 1.
        example = tuple(
            tensor.to(params.device) for tensor in adapter.example_inputs(params.model, params.graph["name"], batch_size=2)
        )
        with torch.no_grad():
            expected = module(*example).float().cpu().numpy()
        if params.method == "fp16":
            module = _half_precision(module)

        batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
        dynamic_shapes = {spec["name"]: {0: batch} for spec in params.graph["inputs"]}
        # Without size-oblivious reasoning, export and compile specialize sizes 0 and 1, and the package
        # rejects batch 1 ("dim value is too small ... expected it to be >= 2", torch 2.13).
        path = out / "model.pt2"
        with torch.no_grad(), torch.fx.experimental._config.patch(backed_size_oblivious=True):
            exported = torch.export.export(module, example, dynamic_shapes=dynamic_shapes)
            self.log.info("exported graph with input ranges %s", exported.range_constraints)
            self._compile(exported, path)

        difference = self._check_package(path, example, expected)
        if difference > PARITY_TOLERANCE[params.method]:
            raise ValueError(
                f"AOTInductor package differs from eager PyTorch by {difference:.2e} (tolerance {PARITY_TOLERANCE[params.method]})"
            )

        sequence_length = int(params.model["sequence_length"])
        self.log.info(
            "compiled %s/%s with AOTInductor for %s, method %s (max |diff| %.1e)",
            params.model["name"], params.graph["name"], params.device, params.method, difference,
        )
        return {
            "device": params.device,
            "method": params.method,
            "max_abs_diff_vs_torch": difference,
            "input_shape": {"batch": [1, MAX_BATCH], "sequence": sequence_length},
            "inputs": [spec["name"] for spec in params.graph["inputs"]],
        }

    def _compile(self, exported, path: Path) -> None:
        """Run AOTInductor with its compile cache in a temporary folder next to the output.

        Inductor otherwise caches generated code under /tmp/torchinductor_<user> and never removes it.
        """
        import torch

        previous = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
        with tempfile.TemporaryDirectory(prefix="inductor_cache_", dir=path.parent.parent) as cache:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
            try:
                torch._inductor.aoti_compile_and_package(exported, package_path=str(path))
            finally:
                if previous is None:
                    os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
                else:
                    os.environ["TORCHINDUCTOR_CACHE_DIR"] = previous

    def _check_package(self, path: Path, example: tuple, expected: np.ndarray) -> float:
        """Reload the package from disk, run the example batch and return the max absolute difference."""
        import torch

        runner = torch._inductor.aoti_load_package(str(path))
        with torch.no_grad():
            actual = runner(*example).float().cpu().numpy()
        return float(np.abs(actual - expected).max())
