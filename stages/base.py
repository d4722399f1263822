"""The contract every stage kind implements.

A stage kind declares its typed parameters (a dataclass), the upstream outputs it consumes, and the
distributions whose versions change its result. ``run`` reads upstream folders and writes into one
output folder; it does not depend on Hydra, DVC or the other stages.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar


@dataclass(frozen=True)
class StageInputs:
    """Upstream output folders, by input name, and the manifests the upstream stages wrote."""

    folders: dict[str, Path]
    results: dict[str, dict[str, Any]]

    def __getitem__(self, name: str) -> Path:
        return self.folders[name]


class Stage(ABC):
    """A stage kind. Subclasses set the class attributes and implement ``run``."""

    kind: ClassVar[str]
    # Dataclass of the parameters the stage reads; every field enters the cache key.
    Params: ClassVar[type]
    # Names of the upstream outputs the stage consumes.
    inputs: ClassVar[tuple[str, ...]] = ()
    # Distributions whose installed versions enter the cache key and the manifest.
    tools: ClassVar[tuple[str, ...]] = ()
    # pip extra that installs what the stage needs, named in the error when an import fails.
    extra: ClassVar[str | None] = None
    # The stage times a runtime, so the executor runs it while no other stage on the host runs
    # (sarvam_pipeline.host_lock).
    measures_time: ClassVar[bool] = False

    def __init__(self) -> None:
        self.log = logging.getLogger(f"stages.{self.kind}")

    def tools_for(self, params: dict[str, Any]) -> tuple[str, ...]:
        """Return the distributions whose versions enter this node's key; stages that run a
        runtime chosen by a parameter narrow ``tools`` to that runtime."""
        return tuple(self.tools)

    def unavailable_reason(self, params: Any) -> str | None:
        """Return why this host cannot run the stage, or None when it can."""
        return None

    @abstractmethod
    def run(self, params: Any, inputs: StageInputs, out: Path) -> dict[str, Any]:
        """Write the stage's files into ``out`` and return a JSON-serialisable result for the manifest."""
