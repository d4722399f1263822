"""Compute the float reference: eager fp32 PyTorch outputs on the evaluation set (``reference.npy``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stages.base import Stage, StageInputs
from stages.dataset import load_split


@dataclass
class ReferenceParams:
    model: dict[str, Any] = field(default_factory=dict)
    graph: dict[str, Any] = field(default_factory=dict)


class ReferenceStage(Stage):
    kind = "reference"
    Params = ReferenceParams
    inputs = ("dataset",)
    tools = ("torch", "transformers")

    def run(self, params: ReferenceParams, inputs: StageInputs, out: Path) -> dict[str, Any]:
        import torch

        from sarvam_pipeline.models import get_adapter

        module = get_adapter(params.model["family"]).build_module(params.model, params.graph["name"])
        evaluation = load_split(inputs["dataset"], "evaluation")
        names = [spec["name"] for spec in params.graph["inputs"]]
        outputs = []
        with torch.no_grad():
            for start in range(0, len(evaluation[names[0]]), 32):
                batch = [torch.from_numpy(evaluation[name][start: start + 32]) for name in names]
                outputs.append(module(*batch).numpy().astype(np.float32))
        reference = np.concatenate(outputs)
        np.save(out / "reference.npy", reference)
        return {"samples": int(reference.shape[0]), "dimension": int(reference.shape[1])}
