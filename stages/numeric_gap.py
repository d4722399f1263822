"""Write the layer-wise numeric gap report of a quantized artifact against its float model.

For ONNX Runtime the float model is the shared ONNX export and the artifact is ``model.onnx``; for OpenVINO
they are the float32 IR and the compressed IR. Both run the first rows of the evaluation split on the CPU
with every shared intermediate tensor exposed (``stages.gap_analysis``). The stage writes ``gaps.json``
with every compared node and returns the summary the build report shows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.base import Stage, StageInputs

RUNTIMES = ("onnxruntime", "openvino")


@dataclass
class NumericGapParams:
    runtime: str = "onnxruntime"
    # Evaluation rows compared.
    samples: int = 16
    # Nodes listed in the summary.
    top: int = 10


class NumericGapStage(Stage):
    kind = "numeric_gap"
    Params = NumericGapParams
    inputs = ("float", "artifact", "dataset")
    tools = ("numpy",)

    def tools_for(self, params: dict[str, Any]) -> tuple[str, ...]:
        return self.tools + (("onnx", "onnxruntime") if params.get("runtime") == "onnxruntime" else ("openvino",))

    def run(self, params: NumericGapParams, inputs: StageInputs, out: Path) -> dict[str, Any]:
        from stages.dataset import load_split
        from stages.gap_analysis import onnx_gaps, openvino_gaps, summarize

        if params.runtime not in RUNTIMES:
            raise ValueError(f"invalid runtime '{params.runtime}' for the numeric gap report; valid choices: {', '.join(RUNTIMES)}")
        if params.samples < 1:
            raise ValueError(f"samples must be at least 1, got {params.samples}")

        arrays = load_split(inputs["dataset"], "evaluation")
        if params.runtime == "onnxruntime":
            gaps = onnx_gaps(inputs["float"] / "model.onnx", inputs["artifact"] / "model.onnx", arrays, params.samples)
        else:
            gaps = openvino_gaps(inputs["float"] / "model.xml", inputs["artifact"] / "model.xml", arrays, params.samples)
        if not gaps:
            raise ValueError("the float model and the artifact share no intermediate tensor to compare")

        (out / "gaps.json").write_text(json.dumps([gap.to_dict() for gap in gaps], indent=1) + "\n", encoding="utf-8")
        summary = summarize(gaps, params.top)
        summary["samples"] = min(params.samples, len(next(iter(arrays.values()))))
        summary["metric"] = (
            "relative RMS error ||q - f|| / ||f|| per channel, RMS over channels, non-padding tokens only; "
            "local gap = output error - largest input error"
        )
        worst = summary["top_quantized_nodes"][:3]
        self.log.info(
            "%s: %d nodes compared, %d quantized; largest local gaps at %s",
            params.runtime, summary["compared_tensors"], summary["quantized_nodes"],
            ", ".join(f"{gap['layer']} ({gap['local']:.4f})" for gap in worst) or "no quantized node",
        )
        return summary
