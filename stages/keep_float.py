"""Keep the nodes with the largest numeric gap in float until an accuracy target is met.

The search is greedy: quantize, measure the end-to-end accuracy on the calibration split (never the
evaluation split, which validation holds out), rank the still-quantized nodes by their local gap
(``stages.gap_analysis``), add the worst ones to the quantizer's exclusion list, and quantize again. The
quantizer is the runtime's own (ONNX Runtime's ``nodes_to_exclude``, NNCF's ignored scope); this module only
chooses which nodes it leaves out.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from stages.gap_analysis import NodeGap
from stages.metrics import embedding_agreement

log = logging.getLogger(__name__)

# Metrics of embedding_agreement that a target may bound from below.
TARGET_METRICS = ("cosine_mean", "cosine_worst", "nn_agreement")

# How candidates are ordered. local_gap re-ranks the still-quantized nodes by the gap report after every
# step (cheap: one comparison run). sensitivity quantizes once per candidate with that node alone in float
# and orders by the accuracy gained, which also finds nodes whose damage shows only downstream, such as a
# MatMul whose input has outlier channels.
RANKINGS = ("local_gap", "sensitivity")


@dataclass
class AccuracyTargetParams:
    """The accuracy a recipe must reach, measured against the float model on the calibration split."""

    cosine_mean: Optional[float] = None
    cosine_worst: Optional[float] = None
    nn_agreement: Optional[float] = None
    # Upper bound on the nodes kept in float, so a target out of reach cannot undo the whole quantization.
    max_float_nodes: int = 12
    # Nodes moved to float per step. Larger steps need fewer quantizer runs but may keep more nodes.
    nodes_per_step: int = 1
    # Rows of the calibration split the accuracy is measured on; NN@1 needs enough rows to mean something.
    samples: int = 128
    # Rows the layer-wise gap ranking runs on.
    gap_samples: int = 8
    # local_gap | sensitivity (see RANKINGS).
    ranking: str = "local_gap"

    def enabled(self) -> bool:
        return any(getattr(self, name) is not None for name in TARGET_METRICS)


def check_target(target: AccuracyTargetParams) -> None:
    """Raise ValueError for a target that cannot be searched for."""
    for name in TARGET_METRICS:
        value = getattr(target, name)
        if value is not None and not 0.0 < float(value) <= 1.0:
            raise ValueError(f"accuracy_target.{name} must be in (0, 1], got {value}")
    if target.max_float_nodes < 1:
        raise ValueError(f"accuracy_target.max_float_nodes must be at least 1, got {target.max_float_nodes}")
    if target.nodes_per_step < 1:
        raise ValueError(f"accuracy_target.nodes_per_step must be at least 1, got {target.nodes_per_step}")
    if target.samples < 2:
        raise ValueError(f"accuracy_target.samples must be at least 2 for NN@1, got {target.samples}")
    if target.ranking not in RANKINGS:
        raise ValueError(f"accuracy_target.ranking is '{target.ranking}'; valid choices: {', '.join(RANKINGS)}")
    if target.gap_samples < 1:
        raise ValueError(f"accuracy_target.gap_samples must be at least 1, got {target.gap_samples}")


def shortfalls(metrics: dict[str, Any], target: AccuracyTargetParams) -> dict[str, float]:
    """Return, per bounded metric that misses its target, how far below it the measurement is."""
    missing = {}
    for name in TARGET_METRICS:
        bound = getattr(target, name)
        if bound is not None and metrics[name] < bound:
            missing[name] = float(bound - metrics[name])
    return missing


@dataclass
class SearchStep:
    float_nodes: list[str]
    metrics: dict[str, float]


@dataclass
class SearchResult:
    met: bool
    # Nodes kept in float, in the order they were chosen, with their gap when chosen.
    kept: list[dict[str, Any]] = field(default_factory=list)
    steps: list[SearchStep] = field(default_factory=list)
    stopped_because: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "met": self.met,
            "kept_float": self.kept,
            "steps": [asdict(step) for step in self.steps],
            "stopped_because": self.stopped_because,
        }


def search(
    target: AccuracyTargetParams,
    quantize: Callable[[list[str]], Path],
    run: Callable[[Path], np.ndarray],
    rank: Callable[[Path], list[NodeGap]],
    reference: np.ndarray,
    fixed: list[str] | None = None,
) -> tuple[Path, SearchResult]:
    """Quantize with more nodes in float until ``target`` is met or the node limit is reached.

    ``quantize(excluded)`` writes a model that keeps the named nodes in float into a folder of its own and
    returns the model's path (the search deletes folders it no longer needs),
    ``run(path)`` returns its outputs on the search rows, ``rank(path)`` its NodeGap ranking, and ``fixed``
    the nodes the recipe keeps in float anyway. Returns the last model's path and the search record.
    """
    fixed = list(fixed or [])
    kept: list[dict[str, Any]] = []
    result = SearchResult(met=False)
    order: list[NodeGap] | None = None

    path: Path | None = None
    while True:
        excluded = fixed + [entry["node"] for entry in kept]
        if path is not None:
            shutil.rmtree(path.parent, ignore_errors=True)
        path = quantize(excluded)
        metrics = embedding_agreement(reference, run(path))
        step_metrics = {name: float(metrics[name]) for name in TARGET_METRICS}
        result.steps.append(SearchStep([entry["node"] for entry in kept], step_metrics))
        missing = shortfalls(metrics, target)
        log.info(
            "%d nodes in float: cosine mean %.5f, worst %.5f, NN@1 %.3f%s",
            len(kept), step_metrics["cosine_mean"], step_metrics["cosine_worst"], step_metrics["nn_agreement"],
            "" if missing else " (target met)",
        )

        if not missing:
            result.met = True
            result.stopped_because = "target met"
            break
        if len(kept) >= target.max_float_nodes:
            result.stopped_because = f"max_float_nodes ({target.max_float_nodes}) reached; still short by {missing}"
            break

        if target.ranking == "sensitivity":
            if order is None:
                order = sensitivity_order(rank(path), excluded, quantize, run, reference)
            candidates = [gap for gap in order if gap.node not in excluded]
        else:
            candidates = [gap for gap in rank(path) if gap.quantized and gap.node not in excluded]
        if not candidates:
            result.stopped_because = f"no quantized node left to keep in float; still short by {missing}"
            break
        room = target.max_float_nodes - len(kept)
        for gap in candidates[: min(target.nodes_per_step, room)]:
            kept.append({"node": gap.node, "op_type": gap.op_type, "layer": gap.layer, "local_gap": gap.local})

    result.kept = kept
    return path, result


def sensitivity_order(
    gaps: list[NodeGap],
    excluded: list[str],
    quantize: Callable[[list[str]], Path],
    run: Callable[[Path], np.ndarray],
    reference: np.ndarray,
) -> list[NodeGap]:
    """Order the quantized nodes by the accuracy gained when each alone is kept in float, largest gain first.

    The gain is the rise in mean cosine, with NN@1 and worst cosine breaking ties. Each candidate costs one
    quantizer run and one pass over the search rows.
    """
    candidates = [gap for gap in gaps if gap.quantized and gap.node not in excluded]
    log.info("measuring the sensitivity of %d quantized nodes", len(candidates))
    scored = []
    for gap in candidates:
        path = quantize(excluded + [gap.node])
        metrics = embedding_agreement(reference, run(path))
        shutil.rmtree(path.parent, ignore_errors=True)
        scored.append(((metrics["cosine_mean"], metrics["nn_agreement"], metrics["cosine_worst"]), gap))
    scored.sort(key=lambda item: (tuple(-value for value in item[0]), item[1].node))
    return [gap for _, gap in scored]


# A loaded model: takes one batch as a dict of input arrays and returns the first output.
Runner = Callable[[dict[str, np.ndarray]], np.ndarray]


def search_on_calibration(
    target: AccuracyTargetParams,
    float_model: Path,
    dataset: Path,
    scratch: Path,
    *,
    write: Callable[[list[str], Path], Path],
    load: Callable[[Path], Runner],
    gaps: Callable[[Path, Path, dict[str, np.ndarray], int], list[NodeGap]],
    fixed: list[str] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Run ``search`` on the calibration split with one runtime's quantizer, loader and gap report.

    ``write(excluded, folder)`` quantizes with the named nodes in float into ``folder`` and returns the
    model's path. ``load(path)`` returns a Runner. ``gaps(float_model, candidate, rows, gap_samples)`` is the
    runtime's layer-wise gap report. Rows run at batch 1, because dynamic quantization computes activation
    ranges per batch and deployment runs one sequence at a time.

    Returns the last candidate's path and the search record that goes into the manifest.
    """
    from stages.dataset import load_split

    arrays = load_split(dataset, "calibration")
    rows = min(target.samples, len(next(iter(arrays.values()))))
    search_rows = {name: array[:rows] for name, array in arrays.items()}

    def run(path: Path) -> np.ndarray:
        runner = load(path)
        outputs = [runner({name: array[row: row + 1] for name, array in search_rows.items()}) for row in range(rows)]
        return np.concatenate(outputs).reshape(rows, -1)

    steps = iter(range(1_000_000))

    def quantize(excluded: list[str]) -> Path:
        folder = scratch / f"candidate_{next(steps)}"
        folder.mkdir()
        return write(excluded, folder)

    reference = run(float_model)
    path, result = search(
        target, quantize, run, lambda candidate: gaps(float_model, candidate, search_rows, target.gap_samples), reference, fixed
    )

    record = result.to_dict()
    record["kept_nodes"] = [entry["node"] for entry in result.kept]
    record["target"] = {name: getattr(target, name) for name in TARGET_METRICS}
    record["ranking"] = target.ranking
    record["samples"] = rows
    return path, record
