"""Export one graph of the float PyTorch model to ONNX with torch.onnx's dynamo exporter.

Writes a single-file ``model.onnx`` with dynamic batch and sequence dimensions, then checks it with the
ONNX checker and against eager PyTorch on ONNX Runtime before publishing it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stages.base import Stage, StageInputs


@dataclass
class ExportOnnxParams:
    model: dict[str, Any] = field(default_factory=dict)
    graph: dict[str, Any] = field(default_factory=dict)
    opset: int = 18


# Largest absolute difference between ONNX Runtime and eager PyTorch accepted for the float export.
PARITY_TOLERANCE = 1e-4


class ExportOnnxStage(Stage):
    kind = "export_onnx"
    Params = ExportOnnxParams
    tools = ("torch", "onnx", "onnxscript", "onnxruntime", "transformers")

    def run(self, params: ExportOnnxParams, inputs: StageInputs, out: Path) -> dict[str, Any]:
        import onnx
        import onnxruntime
        import torch

        from sarvam_pipeline.models import get_adapter

        if params.opset < 18:
            raise ValueError(f"invalid opset {params.opset}: the dynamo ONNX exporter needs opset 18 or newer")
        adapter = get_adapter(params.model["family"])
        module = adapter.build_module(params.model, params.graph["name"])
        # A batch of 2: with batch 1 the exporter may bake the batch size into a Reshape.
        example = adapter.example_inputs(params.model, params.graph["name"], batch_size=2)
        input_names = [spec["name"] for spec in params.graph["inputs"]]
        output_names = list(params.graph["outputs"])

        batch = torch.export.Dim("batch", min=1, max=1024)
        sequence = torch.export.Dim("sequence", min=2, max=int(params.model["sequence_length"]))
        dims = {"batch": batch, "sequence": sequence}
        dynamic_shapes = {
            spec["name"]: {axis: dims[dim] for axis, dim in enumerate(spec["shape"]) if dim in dims}
            for spec in params.graph["inputs"]
        }

        path = out / "model.onnx"
        with torch.no_grad():
            program = torch.onnx.export(
                module,
                example,
                input_names=input_names,
                output_names=output_names,
                dynamic_shapes=dynamic_shapes,
                opset_version=params.opset,
                dynamo=True,
                external_data=False,
            )
        program.save(str(path), external_data=False)
        onnx.checker.check_model(str(path), full_check=True)

        with torch.no_grad():
            expected = module(*example).numpy()
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feeds = {name: tensor.numpy() for name, tensor in zip(input_names, example)}
        actual = session.run(None, feeds)[0]
        difference = float(np.abs(actual - expected).max())
        if difference > PARITY_TOLERANCE:
            raise ValueError(f"ONNX export differs from PyTorch by {difference:.2e} (tolerance {PARITY_TOLERANCE})")

        self.log.info("exported %s/%s to ONNX opset %d (max |diff| %.1e)", params.model["name"], params.graph["name"], params.opset, difference)
        return {"opset": params.opset, "max_abs_diff_vs_torch": difference, "inputs": input_names, "outputs": output_names}
