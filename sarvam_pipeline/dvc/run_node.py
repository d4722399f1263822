"""Build one node of a generated pipeline: the command of every DVC stage except the report.

The node is rebuilt from ``params.yaml`` (kind, params and upstream stages), checked against the cache key
recorded there, and built by the same LocalExecutor and ArtifactStore as ``python -m sarvam_pipeline``, so
its folder is ``<store>/<kind>/<key>/`` exactly as in a direct run. DVC deletes a stage's outputs before it
runs the command, and the store publishes the folder with an atomic rename, so the folder exists when the
command returns.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from sarvam_pipeline.compiler import Plan
from sarvam_pipeline.dvc.layout import PipelineLayout
from sarvam_pipeline.dvc.metrics import accuracy_metrics, performance_metrics, write_json
from sarvam_pipeline.errors import ConfigError, PipelineError
from sarvam_pipeline.executor import LocalExecutor
from sarvam_pipeline.host_lock import HostLock
from sarvam_pipeline.models import get_adapter
from sarvam_pipeline.node import Node, code_hash, stage_tools
from sarvam_pipeline.store import MANIFEST, ArtifactStore
from sarvam_pipeline.versions import host_summary, tool_version

log = logging.getLogger(__name__)


class StalePipelineError(PipelineError):
    """The generated pipeline no longer matches the code, tools, weights or host; it must be regenerated."""

    exit_code = 2


def load_params(layout: PipelineLayout) -> dict[str, Any]:
    path = Path(layout.params_file)
    if not path.is_file():
        raise ConfigError(
            f"{path} not found; generate the pipeline with `python -m sarvam_pipeline.dvc compile` "
            "and run this command from the repository root"
        )
    return yaml.safe_load(path.read_text(encoding="utf-8"))


class NodeLoader:
    """Rebuilds nodes from the ``nodes`` section of params.yaml and checks each against its recorded key."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.entries: dict[str, dict[str, Any]] = params["nodes"]
        self.regenerate = params["pipeline"]["command"]
        self.nodes: dict[str, Node] = {}

    def stale(self, name: str, problem: str) -> StalePipelineError:
        return StalePipelineError(
            f"stage {name}: {problem}; regenerate the pipeline with `{self.regenerate}`, then run `dvc repro` again"
        )

    def load(self, name: str) -> Node:
        if name in self.nodes:
            return self.nodes[name]
        if name not in self.entries:
            raise ConfigError.invalid_choice("stage", name, self.entries)
        entry = self.entries[name]

        inputs = []
        for input_name, reference in entry["inputs"].items():
            upstream = self.load(reference["stage"])
            if upstream.key != reference["key"]:
                raise self.stale(name, f"upstream {reference['stage']} has key {upstream.key}, not {reference['key']}")
            inputs.append((input_name, upstream))
        node = Node(entry["kind"], entry["params"], tuple(inputs), label=entry.get("label", ""))

        self.check_current(name, node, entry)
        self.nodes[name] = node
        return node

    def check_current(self, name: str, node: Node, entry: dict[str, Any]) -> None:
        """Raise StalePipelineError when this machine would give the node a different key than recorded."""
        model = node.params.get("model")
        if isinstance(model, dict) and "fingerprint" in model:
            current = get_adapter(model["family"]).fingerprint(model["source"])
            if current != model["fingerprint"]:
                raise self.stale(name, f"the model files in {model['source']} changed since the pipeline was generated")

        host = node.params.get("host")
        if isinstance(host, dict) and host != host_summary():
            raise self.stale(name, f"it benchmarks on host {host}, but this host is {host_summary()}")

        changed = []
        for tool in stage_tools(node.kind, node.params):
            recorded, installed = entry["tools"].get(tool), tool_version(tool)
            if recorded != installed:
                changed.append(f"{tool} {recorded} -> {installed}")
        if changed:
            raise self.stale(name, f"tool versions changed: {', '.join(changed)}")
        if code_hash(node.kind) != entry["code"]:
            raise self.stale(name, f"the source code of stage kind {node.kind} changed")
        if node.key != entry["key"]:
            raise self.stale(name, f"its cache key is {node.key}, not {entry['key']} as recorded")

    def stage_name(self, key: str) -> str:
        return next(name for name, entry in self.entries.items() if entry["key"] == key)


def check_upstream_present(plan: Plan, node: Node, store: ArtifactStore, loader: NodeLoader) -> None:
    """Raise when an upstream node has no folder, so this stage never builds another stage's output."""
    for upstream in plan.order([node.key]):
        if upstream.key == node.key:
            continue
        if not (store.path_for(upstream) / MANIFEST).is_file():
            raise PipelineError(
                f"stage {loader.stage_name(node.key)}: the output of upstream stage {loader.stage_name(upstream.key)} "
                f"is missing at {store.path_for(upstream)}; run `dvc repro` for the whole pipeline or `dvc checkout`"
            )


def write_target_metrics(node: Node, result: dict[str, Any], files: dict[str, str]) -> None:
    """Write the metrics file of every target this validation or benchmark node serves."""
    metrics = performance_metrics(result) if node.kind == "benchmark" else accuracy_metrics(result)
    for target_id, path in files.items():
        write_json(Path(path), metrics)
        log.info("metrics of %s written to %s", target_id, path)


def run_stage(layout: PipelineLayout, name: str) -> Path:
    """Build the node of one DVC stage into the pipeline's artifact store and return its folder."""
    params = load_params(layout)
    loader = NodeLoader(params)
    node = loader.load(name)

    plan = Plan()
    plan.add(node)
    store = ArtifactStore(layout.store)
    check_upstream_present(plan, node, store, loader)

    outcome = LocalExecutor(store, show_progress=False, host_lock=HostLock()).run(plan, [node.key])[node.key]
    if outcome.status == "skipped":
        raise PipelineError(f"stage {name} cannot run on this host: {outcome.reason}")

    metrics = params["nodes"][name].get("metrics")
    if metrics:
        write_target_metrics(node, outcome.result, metrics)
    log.info("stage %s: %s %s", name, outcome.status, outcome.path)
    return outcome.path
