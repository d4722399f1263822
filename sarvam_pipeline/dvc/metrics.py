"""The DVC metrics files of a target: ``accuracy.json`` and ``performance.json``.

They hold the figures of a validation or benchmark node's result that ``dvc metrics show`` should list, and
how each was obtained, so a reader can tell a measured figure from an estimate or a missing one.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

from sarvam_pipeline.budgets import MEGABYTE

# Decimal places kept: cosine similarities vary in the fifth place between recipes, latencies in microseconds.
COSINE_DIGITS = 6
MILLISECOND_DIGITS = 3
MEGABYTE_DIGITS = 3


def _rounded(result: dict[str, Any], key: str, digits: int) -> dict[str, float]:
    value = result.get(key)
    return {} if value is None else {key: round(float(value), digits)}


def accuracy_metrics(result: dict[str, Any]) -> dict[str, Any]:
    """Select the accuracy figures of a validate or coreml_estimate result."""
    method = result.get("method", "not_validated")
    metrics: dict[str, Any] = {"method": method}
    if method not in ("measured", "estimated"):
        metrics["reason"] = result.get("reason", "")
        return metrics
    for key in ("cosine_mean", "cosine_worst", "nn_agreement"):
        metrics.update(_rounded(result, key, COSINE_DIGITS))
    if "samples" in result:
        metrics["samples"] = int(result["samples"])
    return metrics


def performance_metrics(result: dict[str, Any]) -> dict[str, Any]:
    """Select latency, memory and artifact size from a benchmark result."""
    status = result.get("status", "not_measured")
    metrics: dict[str, Any] = {"status": status}
    if status == "measured":
        for key in ("p50_ms", "p95_ms"):
            metrics.update(_rounded(result, key, MILLISECOND_DIGITS))
        metrics.update(_rounded(result, "peak_rss_mb", 1))
    else:
        metrics["reason"] = result.get("reason", "")
    if "artifact_bytes" in result:
        metrics["artifact_bytes"] = int(result["artifact_bytes"])
        metrics["artifact_mb"] = round(result["artifact_bytes"] / MEGABYTE, MEGABYTE_DIGITS)
    return metrics


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON through a temporary file and a rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """Return a metrics file's content, or None when it does not exist."""
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
