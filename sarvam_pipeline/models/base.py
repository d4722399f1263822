"""The interface every model family implements."""

from __future__ import annotations

import hashlib
import importlib.util
from abc import ABC, abstractmethod
from functools import lru_cache
from pathlib import Path
from typing import Any

from sarvam_pipeline.errors import ConfigError


def resolve_source(source: str) -> Path:
    """Resolve ``package:<name>[/sub/path]`` or a folder path to an existing folder.

    The package is located with ``importlib.util.find_spec`` and never imported, because some
    weight-carrying packages import heavy optional dependencies at import time.
    """
    if source.startswith("package:"):
        package, _, subpath = source[len("package:"):].partition("/")
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(
                f"model source package '{package}' is not installed; install it with pip or set model.source to a folder"
            )
        folder = Path(list(spec.submodule_search_locations)[0]) / subpath
    else:
        folder = Path(source).expanduser().resolve()
    if not folder.is_dir():
        raise ConfigError(f"model source folder '{folder}' not found; set model.source to a folder of weights")
    return folder


@lru_cache(maxsize=32)
def _fingerprint_cached(folder: str, stats: tuple) -> str:
    digest = hashlib.sha256()
    for name, _size, _mtime in stats:
        digest.update(name.encode())
        with open(Path(folder) / name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def fingerprint_folder(folder: Path, patterns: tuple[str, ...]) -> str:
    """Hash the files matching ``patterns`` in a folder, so new weights give new cache keys."""
    files = sorted({p for pattern in patterns for p in folder.glob(pattern) if p.is_file()})
    if not files:
        raise ConfigError(f"no model files matching {', '.join(patterns)} in '{folder}'")
    stats = tuple((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _fingerprint_cached(str(folder), stats)


class ModelAdapter(ABC):
    """Loads a model family's weights and builds the modules that are exported, one per graph."""

    # Files whose content identifies the trained model (weights, configuration, tokenizer).
    fingerprint_patterns: tuple[str, ...] = ("*",)

    def fingerprint(self, source: str) -> str:
        return fingerprint_folder(resolve_source(source), self.fingerprint_patterns)

    @abstractmethod
    def build_module(self, model_cfg: dict[str, Any], graph: str) -> Any:
        """Return an eval-mode ``torch.nn.Module`` for one graph, taking the graph's inputs positionally."""

    @abstractmethod
    def tokenize(self, model_cfg: dict[str, Any], texts: list[str]) -> dict[str, Any]:
        """Return numpy inputs for a list of texts, padded to the model's sequence length."""

    @abstractmethod
    def example_inputs(self, model_cfg: dict[str, Any], graph: str, batch_size: int) -> tuple:
        """Return example torch tensors for tracing and export."""
