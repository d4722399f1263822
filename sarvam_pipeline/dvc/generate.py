"""Compile a targets config into a ``dvc.yaml`` and a ``params.yaml``: one DVC stage per unique node.

Each stage lists its upstream node folders and the source files of its stage kind as ``deps``, its own entry
of ``params.yaml`` as ``params``, and its node folder in the artifact store as ``outs``. Validation and
benchmark stages also write one metrics file per target they serve, and a final ``report`` stage turns the
metrics into a Markdown table and plot data. The output is a function of the config, the code, the tool
versions, the model weights and the benchmark host, so the same inputs give byte-identical files.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import yaml

from sarvam_pipeline.compiler import Plan, compile_plan
from sarvam_pipeline.dvc.config import TargetsConfig
from sarvam_pipeline.dvc.layout import ACCURACY_FILE, PERFORMANCE_FILE, PLOT_FILES, PipelineLayout
from sarvam_pipeline.dvc.naming import REPORT_STAGE, stage_names
from sarvam_pipeline.dvc.targets import ExpandedTarget, expand_targets, target_summary
from sarvam_pipeline.executor import typed_params
from sarvam_pipeline.node import Node
from sarvam_pipeline.versions import host_summary
from stages import ROOT, get_stage, stage_source_files

log = logging.getLogger(__name__)

# The module every generated stage command runs.
COMMAND_MODULE = "sarvam_pipeline.dvc"
# Source files the report stage runs, relative to the repository root.
REPORT_SOURCES = ("sarvam_pipeline/dvc/report.py", "sarvam_pipeline/dvc/metrics.py", "sarvam_pipeline/budgets.py")


@dataclass
class GeneratedPipeline:
    """The text of the generated files, by path relative to the repository root, and figures about the plan."""

    layout: PipelineLayout
    files: dict[str, str] = field(default_factory=dict)
    targets: int = 0
    # Unique nodes of the plan.
    nodes: int = 0
    # Sum over targets of the nodes each target needs on its own: the node count without sharing.
    nodes_without_sharing: int = 0
    # Node stages in dvc.yaml: the nodes this host can build.
    stages: int = 0


def regenerate_command(choice: str, overrides: list[str]) -> str:
    return shlex.join(["python", "-m", COMMAND_MODULE, "compile", "--targets", choice, *overrides])


def repro_command(layout: PipelineLayout) -> str:
    return "dvc repro" if layout.folder == "." else f"dvc repro {shlex.quote(layout.dvc_file)}"


def describe_host(host: dict[str, str]) -> str:
    return f"{host['os']} {host['arch']}, {host['cpu']}, Python {host['python']}"


def model_dependency(node: Node) -> str | None:
    """Return the model folder a node reads when it is a relative path inside the repository, else None.

    Weights from a pip package, or from a folder outside the repository, enter only through the fingerprint
    in the node's params, which changes when the pipeline is regenerated.
    """
    model = node.params.get("model")
    if not isinstance(model, dict):
        return None
    source = str(model.get("source", ""))
    if not source or source.startswith(("package:", "~")) or os.path.isabs(source):
        return None
    path = posixpath.normpath(source.replace("\\", "/"))
    return None if path == ".." or path.startswith("../") else path


def source_dependencies(kind: str) -> list[str]:
    return [path.relative_to(ROOT).as_posix() for path in stage_source_files(kind)]


def unavailable_nodes(plan: Plan) -> dict[str, str]:
    """Return, by node key, why this host cannot build a node: its own stage's reason or an upstream node's.

    The direct run skips the same nodes with the same reasons (LocalExecutor), so they get no DVC stage.
    """
    reasons: dict[str, str] = {}
    for node in plan.order():
        blocked = [upstream.key for _, upstream in node.inputs if upstream.key in reasons]
        if blocked:
            reasons[node.key] = reasons[blocked[0]]
            continue
        reason = get_stage(node.kind).unavailable_reason(typed_params(node))
        if reason:
            reasons[node.key] = f"{node.label or node.kind} cannot run on this host: {reason}"
    return reasons


def metrics_files(plan: Plan, layout: PipelineLayout) -> dict[str, dict[str, str]]:
    """Return, by node key, the metrics file each validation or benchmark node writes for each target."""
    files: dict[str, dict[str, str]] = {}
    for target, nodes in plan.targets:
        files.setdefault(nodes.validation.key, {})[target.id] = layout.metrics_file(target.id, ACCURACY_FILE)
        files.setdefault(nodes.benchmark.key, {})[target.id] = layout.metrics_file(target.id, PERFORMANCE_FILE)
    return {key: dict(sorted(by_target.items())) for key, by_target in files.items()}


def node_entry(node: Node, names: dict[str, str], metrics: dict[str, str] | None) -> dict[str, Any]:
    """Return what ``run`` needs to rebuild a node and check it is the one that was planned."""
    material = node.key_material()
    entry: dict[str, Any] = {
        "kind": node.kind,
        "key": node.key,
        "label": node.label,
        "inputs": {name: {"stage": names[upstream.key], "key": upstream.key} for name, upstream in node.inputs},
        "params": node.params,
        "tools": material["tools"],
        "code": material["code"],
    }
    if metrics:
        entry["metrics"] = metrics
    return entry


def node_stage(node: Node, name: str, layout: PipelineLayout, metrics: dict[str, str] | None) -> dict[str, Any]:
    stage: dict[str, Any] = {}
    if layout.folder != ".":
        stage["wdir"] = layout.working_directory
    stage["cmd"] = shlex.join(["python", "-m", COMMAND_MODULE, "run", "--pipeline", layout.folder, name])

    deps = [layout.node_output(upstream.kind, upstream.key) for _, upstream in node.inputs]
    deps += source_dependencies(node.kind)
    model_folder = model_dependency(node)
    if model_folder is not None:
        deps.append(model_folder)
    stage["deps"] = list(dict.fromkeys(deps))

    stage["params"] = [{layout.params_file: [f"nodes.{name}"]}]
    stage["outs"] = [layout.node_output(node.kind, node.key)]
    if metrics:
        stage["metrics"] = [{path: {"cache": False}} for path in sorted(set(metrics.values()))]
    return stage


def report_stage(layout: PipelineLayout, target_entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Return the report stage; it also writes the metrics files of targets whose nodes this host cannot build."""
    stage: dict[str, Any] = {}
    if layout.folder != ".":
        stage["wdir"] = layout.working_directory
    stage["cmd"] = shlex.join(["python", "-m", COMMAND_MODULE, "report", "--pipeline", layout.folder])

    built, unavailable = set(), set()
    for entry in target_entries.values():
        for kind in ("accuracy", "performance"):
            (unavailable if kind in entry.get("unavailable", {}) else built).add(entry[kind])
    stage["deps"] = sorted(built) + list(REPORT_SOURCES)
    stage["params"] = [{layout.params_file: ["targets"]}]
    stage["outs"] = [{layout.report_markdown: {"cache": False}}]
    if unavailable:
        stage["metrics"] = [{path: {"cache": False}} for path in sorted(unavailable)]
    stage["plots"] = [
        {layout.plot_file(file_name): {"cache": False, "template": "bar_horizontal", "x": column, "y": "target"}}
        for file_name, column in PLOT_FILES.items()
    ]
    return stage


def direct_run_command(expanded: ExpandedTarget, layout: PipelineLayout) -> str:
    # store.root is explicit so that SARVAM_ARTIFACTS cannot send the direct run to another store.
    return shlex.join(["python", "-m", "sarvam_pipeline", *expanded.overrides, f"store.root={layout.store}"])


def target_entry(
    expanded: ExpandedTarget, nodes, names: dict[str, str], layout: PipelineLayout, unavailable: dict[str, str]
) -> dict[str, Any]:
    target = expanded.target
    entry = {
        **target_summary(target),
        # The direct run that builds the same nodes into the same store layout.
        "command": direct_run_command(expanded, layout),
        # Stage names; null for a node this host cannot build, which has no stage.
        "artifact": names.get(nodes.artifact.key),
        "validation": names.get(nodes.validation.key),
        "benchmark": names.get(nodes.benchmark.key),
        "accuracy": layout.metrics_file(target.id, ACCURACY_FILE),
        "performance": layout.metrics_file(target.id, PERFORMANCE_FILE),
        "budgets": target.budgets,
        "host_is_target": bool(target.chipset.get("host_is_target", False)),
    }
    reasons = {kind: unavailable[node.key] for kind, node in (("accuracy", nodes.validation),
                                                               ("performance", nodes.benchmark))
               if node.key in unavailable}
    if reasons:
        entry["unavailable"] = reasons
    return entry


def sharing(plan: Plan) -> tuple[int, int]:
    """Return the number of unique nodes and the sum over targets of the nodes each one needs."""
    per_target = sum(len(plan.target_keys(nodes)) for _, nodes in plan.targets)
    return plan.graph.number_of_nodes(), per_target


def render_yaml(header: list[str], data: dict[str, Any]) -> str:
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header)
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120)
    return comment + body


def config_source(choice: str) -> str:
    if choice.endswith((".yaml", ".yml")):
        path = Path(choice).resolve()
        return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else choice
    return f"conf/targets/{choice}.yaml"


def compile_pipeline(config: TargetsConfig, choice: str, overrides: list[str] | None = None) -> GeneratedPipeline:
    """Compile a targets config into the text of its dvc.yaml and params.yaml."""
    overrides = list(overrides or [])
    layout = PipelineLayout(config.pipeline)
    expanded = expand_targets(config)
    targets = [item.target for item in expanded]
    plan = compile_plan(targets)
    unavailable = unavailable_nodes(plan)
    all_names = stage_names(plan)
    names = {key: name for key, name in all_names.items() if key not in unavailable}
    metrics = metrics_files(plan, layout)

    buildable = plan.graph.subgraph(names)
    ordered = list(nx.lexicographical_topological_sort(buildable, key=lambda key: names[key]))
    stages = {names[key]: node_stage(plan.node(key), names[key], layout, metrics.get(key)) for key in ordered}
    entries = {names[key]: node_entry(plan.node(key), names, metrics.get(key)) for key in ordered}
    # compile_plan keeps the order of its targets, which expand_targets sorted by id.
    target_entries = {
        item.target.id: target_entry(item, nodes, names, layout, unavailable)
        for item, (_, nodes) in zip(expanded, plan.targets)
    }
    stages[REPORT_STAGE] = report_stage(layout, target_entries)

    unique, without_sharing = sharing(plan)
    host = host_summary()
    command = regenerate_command(choice, overrides)
    header = [
        f"Generated by `{command}`",
        f"from {config_source(choice)}. Do not edit: regenerate after changing that file, conf/, the stage code,",
        "the model weights or the installed tools, or to benchmark on another host, then run",
        f"`{repro_command(layout)}`. See docs/dvc.md.",
        f"Benchmark host: {describe_host(host)}.",
        f"{len(targets)} targets, {unique} nodes, {len(names)} of them built here as node stages, plus the report",
        f"({without_sharing} nodes if no target shared any).",
    ]
    params = {
        "pipeline": {
            "command": command,
            "folder": layout.folder,
            "host": host,
            "targets": len(targets),
            "nodes": unique,
            "nodes_without_sharing": without_sharing,
            # Nodes this host cannot build, by the stage name they would have, with the reason.
            "unavailable": {all_names[key]: unavailable[key] for key in sorted(unavailable, key=all_names.get)},
        },
        "nodes": entries,
        "targets": target_entries,
    }
    log.info("%d targets compiled into %d node stages (%d without sharing)", len(targets), len(names), without_sharing)
    generated = GeneratedPipeline(
        layout, targets=len(targets), nodes=unique, nodes_without_sharing=without_sharing, stages=len(names)
    )
    generated.files[layout.dvc_file] = render_yaml(header, {"stages": stages})
    generated.files[layout.params_file] = render_yaml(header, params)
    return generated


def write_pipeline(generated: GeneratedPipeline, root: Path = ROOT) -> list[Path]:
    """Write the generated files under the repository root and return their paths."""
    written = []
    for relative, text in generated.files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale_files(generated: GeneratedPipeline, root: Path = ROOT) -> list[str]:
    """Return the generated files whose content on disk differs from a fresh compile, or that are missing."""
    stale = []
    for relative, text in generated.files.items():
        path = root / relative
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(relative)
    return stale
