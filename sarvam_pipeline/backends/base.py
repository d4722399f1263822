"""The interface between a built artifact and the stages that run it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np


class Session(ABC):
    """A loaded artifact, ready to run."""

    @abstractmethod
    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Run one batch and return the graph's first output as a new float32 array (never a view
        into runtime-owned memory, which a later call may overwrite)."""

    def placement(self) -> dict[str, Any]:
        """Return where the graph ran (provider or device, and share of nodes there), when the runtime reports it."""
        return {}


def artifact_bytes(path: Path) -> int:
    """Return the size on disk of an artifact file, or of every file in an artifact folder (.mlpackage)."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    total = path.stat().st_size
    # Weights stored beside the graph (OpenVINO .bin, ONNX external data) belong to the artifact.
    for sibling in (path.with_suffix(".bin"), path.with_name(path.name + ".data")):
        if sibling != path and sibling.is_file():
            total += sibling.stat().st_size
    return total


class Backend(ABC):
    """Loads artifacts of one runtime from disk."""

    name: str
    # Distributions whose versions change what the backend computes.
    tools: tuple[str, ...] = ()
    # Largest batch the artifact accepts; None when the batch dimension is dynamic.
    max_batch_size: int | None = None

    def unavailable_reason(self, options: dict[str, Any]) -> str | None:
        """Return why this host cannot run the runtime with these options, or None when it can."""
        return None

    def simulator_note(self, options: dict[str, Any]) -> str | None:
        """Return why latency measured here is a simulator's rather than a device's, or None when it is real."""
        return None

    @abstractmethod
    def artifact_file(self, folder: Path) -> Path:
        """Return the file (or package folder) in an artifact folder that an application loads."""

    def artifact_size(self, folder: Path) -> int:
        """Return the bytes an application deploys from an artifact folder: the artifact file and its weights."""
        return artifact_bytes(self.artifact_file(folder))

    @abstractmethod
    def load(self, folder: Path, options: dict[str, Any], threads: int | None = None) -> Session:
        """Load the artifact in ``folder`` with runtime options (provider, device, precision hints)."""
