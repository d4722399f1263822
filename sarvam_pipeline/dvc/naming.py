"""Readable, unique and stable DVC stage names for the nodes of a plan.

DVC accepts only letters, digits, ``_`` and ``-`` in stage names, so a name is the stage kind, then the
parts of the node's label joined with ``-``: ``export_onnx-minilm_l6-encoder``. Validation and benchmark
nodes are named by model, runtime and recipe, because one such node serves every chipset that runs the
same artifact with the same options.
"""

from __future__ import annotations

import re
from collections import defaultdict

from sarvam_pipeline.compiler import Plan
from sarvam_pipeline.node import Node

REPORT_STAGE = "report"
# Characters of the cache key appended to names that two different nodes would otherwise share.
DISAMBIGUATION_LENGTH = 8

_LABEL = re.compile(r"^(?P<kind>[^\[]+)\[(?P<detail>.*)\]$")
_INVALID_RUN = re.compile(r"[^A-Za-z0-9_]+")


def sanitize(text: str) -> str:
    """Replace every run of characters DVC rejects in a stage name with one ``-``."""
    return _INVALID_RUN.sub("-", text).strip("-")


def label_name(node: Node) -> str:
    match = _LABEL.match(node.label or "")
    if match is None or match.group("kind") != node.kind:
        return node.kind
    return sanitize(f"{node.kind}-{match.group('detail')}")


def stage_names(plan: Plan) -> dict[str, str]:
    """Return the DVC stage name of every node of the plan, by node key."""
    per_target: dict[str, str] = {}
    for target, nodes in plan.targets:
        for node in (nodes.validation, nodes.benchmark, nodes.gap):
            if node is None:
                continue
            detail = f"{target.model['name']}-{target.runtime['name']}-{target.quant['name']}"
            per_target.setdefault(node.key, sanitize(f"{node.kind}-{detail}"))

    proposed = {key: per_target.get(key) or label_name(plan.node(key)) for key in plan.graph.nodes}
    keys_by_name: dict[str, list[str]] = defaultdict(list)
    for key, name in proposed.items():
        keys_by_name[name].append(key)

    names = {}
    for name, keys in keys_by_name.items():
        shared = len(keys) > 1 or name == REPORT_STAGE
        for key in keys:
            names[key] = f"{name}-{key[:DISAMBIGUATION_LENGTH]}" if shared else name
    return names
