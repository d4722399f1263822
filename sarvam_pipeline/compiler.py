"""Compile targets into a plan: a networkx DiGraph of nodes, built from config alone.

Shared nodes (export, data sets, float reference) are created by ``SharedNodes``; each runtime's planner
adds its own nodes on top. Nodes are identified by key, so two targets that need the same stage with the
same inputs get one node.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable

import networkx as nx

from sarvam_pipeline.models import get_adapter
from sarvam_pipeline.node import Node
from sarvam_pipeline.runtimes import get_planner
from sarvam_pipeline.runtimes.base import TargetNodes
from sarvam_pipeline.target import Target
from sarvam_pipeline.versions import host_summary

log = logging.getLogger(__name__)


def model_identity(model: dict[str, Any]) -> dict[str, Any]:
    """Return what identifies a trained model for the stages that load it, weights hash included."""
    return {
        "name": model["name"],
        "family": model["family"],
        "source": model["source"],
        "fingerprint": get_adapter(model["family"]).fingerprint(model["source"]),
        "task": model["task"],
        "sequence_length": model["sequence_length"],
        "pooling": model["pooling"],
        "normalize": model["normalize"],
    }


class SharedNodes:
    """Factory of the nodes every runtime builds on."""

    def __init__(self) -> None:
        self._identity: dict[str, dict[str, Any]] = {}

    def identity(self, target: Target) -> dict[str, Any]:
        cache_key = f"{target.model['family']}|{target.model['source']}"
        if cache_key not in self._identity:
            self._identity[cache_key] = model_identity(target.model)
        return {**self._identity[cache_key], "name": target.model["name"]}

    def graph(self, target: Target) -> dict[str, Any]:
        # NOTE: single-graph models only for now; multi-graph models get one export node per graph name.
        return target.model["graphs"][0]

    def dataset(self, target: Target) -> Node:
        data = target.data
        params = {
            "source": data["source"],
            "languages": data["languages"],
            "calibration_samples": data["calibration_samples"],
            "evaluation_samples": data["evaluation_samples"],
            "seed": data["seed"],
            "model": self.identity(target),
        }
        return Node("dataset", params, label=f"dataset[{data['name']}, {target.model['name']}]")

    def export(self, target: Target, export_format: str) -> Node:
        graph = self.graph(target)
        params = {"model": self.identity(target), "graph": graph}
        if export_format == "onnx":
            params["opset"] = target.model.get("opset", 18)
            return Node("export_onnx", params, label=f"export_onnx[{target.model['name']}/{graph['name']}]")
        if export_format == "torchscript":
            return Node(
                "export_torchscript", params, label=f"export_torchscript[{target.model['name']}/{graph['name']}]"
            )
        raise ValueError(f"unknown export format '{export_format}'")

    def reference(self, target: Target) -> Node:
        params = {"model": self.identity(target), "graph": self.graph(target)}
        return Node(
            "reference", params, (("dataset", self.dataset(target)),), label=f"reference[{target.model['name']}]"
        )

    def validation(self, target: Target, artifact: Node, runtime: str, options: dict[str, Any], samples: int | None = None, estimate_for: str = "") -> Node:
        """Return the validate node; ``samples`` limits the evaluation rows, ``estimate_for`` labels the result an
        estimate of another provider's accuracy."""
        params = {
            "runtime": runtime,
            "options": options,
            "batch_size": target.validation["batch_size"],
            "task": target.model["task"],
        }
        # Set only when used, so the keys of other validation nodes stay as they were.
        if samples is not None:
            params["samples"] = samples
        if estimate_for:
            params["estimate_for"] = estimate_for
        inputs = (("artifact", artifact), ("dataset", self.dataset(target)), ("reference", self.reference(target)))
        return Node("validate", params, inputs, label=f"validate[{target.id}]")

    def numeric_gap(self, target: Target, float_model: Node, artifact: Node, runtime: str) -> Node | None:
        """Return the layer-wise numeric gap node of a quantized artifact, or None when validation.gap_samples is 0."""
        samples = int(target.validation.get("gap_samples", 0))
        if samples <= 0:
            return None
        params = {"runtime": runtime, "samples": samples, "top": int(target.validation.get("gap_top", 10))}
        inputs = (("float", float_model), ("artifact", artifact), ("dataset", self.dataset(target)))
        return Node("numeric_gap", params, inputs, label=f"numeric_gap[{target.id}]")

    def benchmark(self, target: Target, artifact: Node, runtime: str, options: dict[str, Any]) -> Node:
        bench = target.benchmark
        params = {
            "runtime": runtime,
            "options": options,
            "batch_size": bench["batch_size"],
            "warmup": bench["warmup"],
            "iterations": bench["iterations"],
            "threads": bench["threads"],
            "timeout_s": bench["timeout_s"],
            # Latency belongs to the machine it was measured on.
            "host": host_summary(),
        }
        inputs = (("artifact", artifact), ("dataset", self.dataset(target)))
        return Node("benchmark", params, inputs, label=f"benchmark[{target.id}]")


@dataclass
class Plan:
    """The DAG of nodes for a list of targets, and which nodes finish each target."""

    graph: nx.DiGraph = field(default_factory=nx.DiGraph)
    targets: list[tuple[Target, TargetNodes]] = field(default_factory=list)

    def add(self, node: Node) -> None:
        if node.key in self.graph:
            return
        self.graph.add_node(node.key, node=node)
        for name, upstream in node.inputs:
            self.add(upstream)
            self.graph.add_edge(upstream.key, node.key, input=name)

    def node(self, key: str) -> Node:
        return self.graph.nodes[key]["node"]

    def order(self, keys: Iterable[str] | None = None) -> list[Node]:
        """Return nodes in a deterministic topological order, limited to ``keys`` and their ancestors."""
        graph = self.graph
        if keys is not None:
            selected = set()
            for key in keys:
                selected.add(key)
                selected |= nx.ancestors(graph, key)
            graph = graph.subgraph(selected)
        ordered = nx.lexicographical_topological_sort(graph, key=lambda key: (self.node(key).kind, key))
        return [self.node(key) for key in ordered]

    def target_keys(self, nodes: TargetNodes) -> set[str]:
        keys = {node.key for node in nodes.all()}
        for key in list(keys):
            keys |= nx.ancestors(self.graph, key)
        return keys


def compile_plan(targets: list[Target]) -> Plan:
    """Build the plan for a list of targets; shared stages with equal keys become one node."""
    plan = Plan()
    shared = SharedNodes()
    for target in targets:
        planner = get_planner(target.runtime["name"])
        artifact = planner.plan_artifact(target, shared)
        nodes = TargetNodes(
            artifact=artifact,
            validation=planner.plan_validation(target, artifact, shared),
            benchmark=planner.plan_benchmark(target, artifact, shared),
            gap=planner.plan_gap(target, artifact, shared),
        )
        for node in nodes.all():
            plan.add(node)
        plan.targets.append((target, nodes))
    log.debug("plan has %d nodes for %d targets", plan.graph.number_of_nodes(), len(targets))
    return plan
