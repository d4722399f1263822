"""Trace one graph of the float PyTorch model to TorchScript, the input coremltools converts best.

The trace uses a fixed ``[1, sequence_length]`` shape, the static shape Core ML and its Neural Engine
compile for. Writes ``model.pt``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.base import Stage, StageInputs


@dataclass
class ExportTorchScriptParams:
    model: dict[str, Any] = field(default_factory=dict)
    graph: dict[str, Any] = field(default_factory=dict)


class ExportTorchScriptStage(Stage):
    kind = "export_torchscript"
    Params = ExportTorchScriptParams
    tools = ("torch", "transformers")

    def run(self, params: ExportTorchScriptParams, inputs: StageInputs, out: Path) -> dict[str, Any]:
        import torch

        from sarvam_pipeline.models import get_adapter

        adapter = get_adapter(params.model["family"])
        module = adapter.build_module(params.model, params.graph["name"])
        example = adapter.example_inputs(params.model, params.graph["name"], batch_size=1)
        with torch.no_grad():
            traced = torch.jit.trace(module, example, check_trace=False)
            difference = float((traced(*example) - module(*example)).abs().max())
        if difference > 1e-5:
            raise ValueError(f"TorchScript trace differs from eager PyTorch by {difference:.2e}")
        traced.save(str(out / "model.pt"))
        shapes = [list(tensor.shape) for tensor in example]
        return {"input_shapes": shapes, "max_abs_diff_vs_torch": difference}
