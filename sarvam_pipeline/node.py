"""Nodes of the build plan and their cache keys.

A node is a stage kind bound to concrete parameters and upstream nodes. Its key is the SHA-256 of the kind,
the parameters, the upstream keys, the versions of the tools the stage declares and the hash of the stage's
source code. So the key changes when, and only when, something the node reads changes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, is_dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from stages import REGISTRY, ROOT, stage_source_files

from sarvam_pipeline.versions import tool_version

# Characters of the hex key used in folder names: 64 bits, short enough for Windows paths.
KEY_LENGTH = 16


def canonical_json(value: Any) -> str:
    """Serialise with sorted keys and no whitespace variance, so equal values hash equally."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


@lru_cache(maxsize=None)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def code_hash(kind: str) -> str:
    """Hash the source files a stage kind runs, keyed on their repository-relative paths."""
    digest = hashlib.sha256()
    for path in stage_source_files(kind):
        stat = path.stat()
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(_file_sha256(str(path), stat.st_size, stat.st_mtime_ns).encode())
    return digest.hexdigest()


def stage_tools(kind: str, params: dict[str, Any]) -> tuple[str, ...]:
    """Return the tools a node's stage uses, importing only the stage module (not its heavy imports)."""
    from stages import get_stage

    return tuple(get_stage(kind).tools_for(params))


@dataclass(frozen=True)
class Node:
    """A stage kind with concrete parameters and upstream nodes."""

    kind: str
    params: dict[str, Any]
    inputs: tuple[tuple[str, "Node"], ...] = ()
    # Human-readable name shown in progress and reports; not part of the key.
    label: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.kind not in REGISTRY:
            raise KeyError(f"unknown stage kind '{self.kind}'")
        if is_dataclass(self.params):
            object.__setattr__(self, "params", asdict(self.params))
        # Round-trip through JSON so the params are plain data and hash the same however they were built.
        object.__setattr__(self, "params", json.loads(canonical_json(self.params)))

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Node) and other.key == self.key

    @property
    def upstream(self) -> dict[str, "Node"]:
        return dict(self.inputs)

    def key_material(self) -> dict[str, Any]:
        """Everything the key hashes, recorded in the manifest so a key can be explained later.

        Computed once per node, so the manifest records the material the key came from even when a stage's
        source file changes while the node builds.
        """
        cached = self.__dict__.get("_key_material")
        if cached is None:
            cached = {
                "kind": self.kind,
                "params": self.params,
                "inputs": {name: node.key for name, node in self.inputs},
                "tools": {name: tool_version(name) for name in stage_tools(self.kind, self.params)},
                "code": code_hash(self.kind),
            }
            object.__setattr__(self, "_key_material", cached)
        return json.loads(json.dumps(cached))

    @property
    def key(self) -> str:
        cached = self.__dict__.get("_key")
        if cached is None:
            cached = hashlib.sha256(canonical_json(self.key_material()).encode()).hexdigest()[:KEY_LENGTH]
            object.__setattr__(self, "_key", cached)
        return cached

    @property
    def name(self) -> str:
        return f"{self.kind}/{self.key}"

    def __repr__(self) -> str:
        return f"Node({self.kind}, {self.key}, {self.label})"
