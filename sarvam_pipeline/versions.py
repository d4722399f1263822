"""Installed versions of the tools a stage uses, read from package metadata without importing them."""

from __future__ import annotations

import platform
import sys
from functools import lru_cache
from importlib import metadata

# Tools recorded in every report, whether or not a stage of the run used them.
TOOLCHAIN = ("torch", "onnx", "onnxruntime", "openvino", "nncf", "coremltools", "transformers", "hydra-core", "dvc")


@lru_cache(maxsize=None)
def tool_version(distribution: str) -> str:
    """Return the installed version of a distribution, or ``not installed``."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def tool_versions(distributions: tuple[str, ...] | list[str] = TOOLCHAIN) -> dict[str, str]:
    versions = {name: tool_version(name) for name in distributions}
    versions["python"] = platform.python_version()
    return versions


def host_summary() -> dict[str, str]:
    """Describe the machine running the pipeline; benchmark results are only valid for it."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"os": platform.system(), "arch": platform.machine(), "cpu": cpu, "python": sys.version.split()[0]}
