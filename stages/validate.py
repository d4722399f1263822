"""Measure an artifact's accuracy: reload it from disk, run the evaluation set, compare with the reference."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from stages.base import Stage, StageInputs
from stages.dataset import load_split
from stages.metrics import embedding_agreement


@dataclass
class ValidateParams:
    runtime: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 16
    task: str = "sentence_embedding"
    # First rows of the evaluation split to run, None for all: the QNN HTP simulator takes seconds per row.
    samples: Optional[int] = None
    # Provider the artifact was prepared for when ``options`` run it on another one (fallback=degrade). The
    # result is then an estimate of that provider's accuracy, not a measurement of it.
    estimate_for: str = ""


def run_in_batches(session, evaluation: dict[str, np.ndarray], batch_size: int) -> np.ndarray:
    count = len(next(iter(evaluation.values())))
    outputs = []
    for start in range(0, count, batch_size):
        feeds = {name: np.ascontiguousarray(array[start: start + batch_size]) for name, array in evaluation.items()}
        outputs.append(session.run(feeds))
    return np.concatenate(outputs)


class ValidateStage(Stage):
    kind = "validate"
    Params = ValidateParams
    inputs = ("artifact", "dataset", "reference")
    tools = ("numpy",)

    def tools_for(self, params: dict[str, Any]) -> tuple[str, ...]:
        from sarvam_pipeline.backends import get_backend

        return self.tools + tuple(get_backend(params["runtime"]).tools)

    def unavailable_reason(self, params: ValidateParams) -> str | None:
        from sarvam_pipeline.backends import get_backend

        return get_backend(params.runtime).unavailable_reason(params.options)

    def run(self, params: ValidateParams, inputs: StageInputs, out: Path) -> dict[str, Any]:
        from sarvam_pipeline.backends import get_backend

        backend = get_backend(params.runtime)
        session = backend.load(inputs["artifact"], params.options)
        evaluation = load_split(inputs["dataset"], "evaluation")
        reference = np.load(inputs["reference"] / "reference.npy")
        if params.samples is not None:
            if params.samples < 2:
                raise ValueError(f"invalid samples {params.samples}: nearest-neighbour agreement needs at least 2")
            evaluation = {name: array[: params.samples] for name, array in evaluation.items()}
            reference = reference[: params.samples]

        batch_size = min(params.batch_size, backend.max_batch_size or params.batch_size)
        candidate = run_in_batches(session, evaluation, batch_size)
        np.save(out / "outputs.npy", candidate)

        metrics = embedding_agreement(reference, candidate)
        texts_path = inputs["dataset"] / "texts.json"
        if texts_path.is_file():
            import json

            texts = json.loads(texts_path.read_text(encoding="utf-8"))["evaluation"]
            metrics["worst_text"] = texts[metrics["worst_sample"]]
        self.log.info(
            "%s: cosine mean %.5f, worst %.5f, NN@1 %.3f", params.runtime, metrics["cosine_mean"], metrics["cosine_worst"], metrics["nn_agreement"]
        )
        how = f"{params.runtime} on this host, artifact reloaded from disk"
        if params.samples is not None:
            how += f", first {len(reference)} evaluation samples"
        if params.estimate_for:
            from sarvam_pipeline.backends.onnxruntime import provider_name

            return {
                "method": "estimated",
                "how": (
                    f"{provider_name(params.options)} on this host, running the graph prepared for {params.estimate_for}, "
                    f"which is not available here; {params.estimate_for}'s own kernels (precision, fusions) can change the result"
                ),
                "estimate_for": params.estimate_for,
                "placement": session.placement(),
                **metrics,
            }
        return {"method": "measured", "how": how, "placement": session.placement(), **metrics}
