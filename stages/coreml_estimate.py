"""Estimate the accuracy of a Core ML recipe on a host without Core ML: emulate its numeric change in PyTorch.

Core ML prediction needs macOS, so on other hosts this stage replaces ``validate``. It builds the float
module, applies what the Core ML artifact changes (``stages.coreml_emulation``), runs the evaluation split
and compares with the float reference. Writes ``outputs.npy``.

fp16 is emulated by rounding every operation's result to float16 rather than by ``module.half()``. The
sentence-encoder module casts the attention mask to float32, which promotes the attention scores to float32,
so under ``half()`` the next matmul fails on mixed dtypes (torch 2.13, transformers 5.25). Rounding also
covers the mask arithmetic and the pooling, which a Core ML fp16 program computes in float16.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stages.base import Stage, StageInputs
from stages.coreml_compress import CoreMLCompressParams
from stages.dataset import load_split
from stages.metrics import embedding_agreement

BATCH_SIZE = 32


@dataclass
class CoreMLEstimateParams(CoreMLCompressParams):
    """The compress stage's recipe fields, plus the model to emulate them on."""

    model: dict[str, Any] = field(default_factory=dict)
    graph: dict[str, Any] = field(default_factory=dict)
    # fp16 | fp32, as the convert stage sets it.
    compute_precision: str = "fp16"


def probe_inputs(evaluation: dict[str, np.ndarray], names: list[str]) -> list[tuple]:
    """Return two batch-1 inputs from the evaluation split that differ, or one when all samples are equal."""
    import torch

    first = [evaluation[name][:1] for name in names]
    for row in range(1, len(evaluation[names[0]])):
        other = [evaluation[name][row: row + 1] for name in names]
        if any(not np.array_equal(a, b) for a, b in zip(first, other)):
            return [tuple(torch.from_numpy(a) for a in first), tuple(torch.from_numpy(b) for b in other)]
    return [tuple(torch.from_numpy(a) for a in first)]


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def describe_emulation(params: CoreMLEstimateParams, layers: int, constants: int) -> str:
    parts = []
    compressed = f"{plural(layers, 'layer weight')} and {plural(constants, 'folded lookup constant')}"
    if params.method == "weight_only":
        parts.append(f"int{params.weight_bits} {compressed} quantized by coremltools.optimize.torch PostTrainingQuantizer")
    elif params.method == "palettize":
        parts.append(
            f"{params.palettization['nbits']}-bit k-means palettization of {compressed} by coremltools.optimize.torch "
            "PostTrainingPalettizer, whose lookup tables differ from those of Core ML's k-means"
        )
    if params.compute_precision == "fp16":
        parts.append("weights and every operation's float32 result rounded to float16")
    return "; ".join(parts) if parts else "float32 module unchanged"


class CoreMLEstimateStage(Stage):
    kind = "coreml_estimate"
    Params = CoreMLEstimateParams
    inputs = ("dataset", "reference")
    tools = ("coremltools", "torch", "transformers", "numpy")

    def run(self, params: CoreMLEstimateParams, inputs: StageInputs, out: Path) -> dict[str, Any]:
        import torch

        from sarvam_pipeline.models import get_adapter
        from stages import coreml_emulation as emulation

        if params.compute_precision not in ("fp16", "fp32"):
            raise ValueError(f"invalid compute_precision '{params.compute_precision}'; valid choices: fp16, fp32")
        if params.method not in ("none", "fp16", "weight_only", "palettize"):
            raise ValueError(f"invalid method '{params.method}' for Core ML; valid choices: none, fp16, weight_only, palettize")

        # A copy, because adapters cache the loaded model and other stages in this process read it.
        module = copy.deepcopy(get_adapter(params.model["family"]).build_module(params.model, params.graph["name"]))
        fp16 = params.compute_precision == "fp16"
        if fp16:
            # Core ML casts weights to float16 before it compresses them.
            emulation.round_parameters_to_float16(module)

        evaluation = load_split(inputs["dataset"], "evaluation")
        names = [spec["name"] for spec in params.graph["inputs"]]
        layers, constants, unmapped = [], [], []
        if params.method in ("weight_only", "palettize"):
            threshold = int(params.options.get("weight_threshold", emulation.DEFAULT_WEIGHT_THRESHOLD))
            lookups = emulation.constant_lookups(module, probe_inputs(evaluation, names))
            selected, unmapped = emulation.select_layers(module, params, threshold, skip=set(lookups))
            if unmapped:
                # NOTE: these weights stay float in the Core ML artifact but are compressed in this emulation.
                self.log.warning("exclude_nodes not mapped to a PyTorch layer, so compressed here: %s", ", ".join(unmapped))
            module, layers = emulation.compress_weights(module, selected, params, fp16)
            constants = emulation.fold_constant_lookups(module, lookups, params, threshold, fp16)
            if fp16:
                # Dequantized weights and lookup tables are float16 in an fp16 program.
                emulation.round_parameters_to_float16(module)
        module.eval()

        outputs = []
        with torch.no_grad():
            for start in range(0, len(evaluation[names[0]]), BATCH_SIZE):
                batch = [torch.from_numpy(evaluation[name][start: start + BATCH_SIZE]) for name in names]
                if fp16:
                    with emulation.float16_activations():
                        result = module(*batch)
                else:
                    result = module(*batch)
                outputs.append(result.numpy().astype(np.float32))
        candidate = np.concatenate(outputs)
        np.save(out / "outputs.npy", candidate)

        reference = np.load(inputs["reference"] / "reference.npy")
        metrics = embedding_agreement(reference, candidate)
        texts_path = inputs["dataset"] / "texts.json"
        if texts_path.is_file():
            texts = json.loads(texts_path.read_text(encoding="utf-8"))["evaluation"]
            metrics["worst_text"] = texts[metrics["worst_sample"]]

        description = describe_emulation(params, len(layers), len(constants))
        self.log.info(
            "estimated (%s): cosine mean %.5f, worst %.5f, NN@1 %.3f",
            description,
            metrics["cosine_mean"],
            metrics["cosine_worst"],
            metrics["nn_agreement"],
        )
        return {
            "method": "estimated",
            "how": (
                f"PyTorch emulation of the Core ML numeric change ({description}), not a Core ML prediction, "
                "because Core ML prediction needs macOS"
            ),
            "compressed_layers": layers,
            "folded_constants": constants,
            "exclude_nodes_not_emulated": unmapped,
            **metrics,
        }
