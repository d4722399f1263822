"""The figure a search sweeper minimizes, read from a finished job's ``report.json``.

A search sweep (``hydra/sweeper=optuna``) needs each job to return a float, while a grid sweep keeps the
exit code. Set ``sweep.objective`` (``p95_latency_ms`` or ``artifact_size_mb``) and optionally
``sweep.max_accuracy_drop`` (on ``1 - cosine_mean``) to make the job return the objective. A job that did
not build, was not measured, or breaks the accuracy constraint returns infinity, so the search ranks it
last without counting it as a failed trial.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from sarvam_pipeline.errors import ConfigError

log = logging.getLogger(__name__)

OBJECTIVES = ("p95_latency_ms", "artifact_size_mb")
# 10**6 bytes, the unit of artifact_size_mb (as in sarvam_pipeline.budgets).
MEGABYTE = 1_000_000


def requested_objective(cfg: DictConfig) -> str | None:
    """Return the configured objective name, or None for a grid sweep or a single run."""
    sweep = cfg.get("sweep")
    objective = sweep.get("objective") if sweep is not None else None
    if objective is not None and objective not in OBJECTIVES:
        raise ConfigError.invalid_choice("sweep.objective", objective, OBJECTIVES)
    return objective


def objective_value(report: dict[str, Any], objective: str, max_accuracy_drop: float | None) -> float:
    """Return the objective of one job's report, or infinity when the job is infeasible."""
    accuracy, performance = report["accuracy"], report["performance"]
    if not report["built"]:
        return math.inf

    if max_accuracy_drop is not None:
        cosine = accuracy.get("cosine_mean")
        if cosine is None or 1.0 - cosine > max_accuracy_drop:
            return math.inf

    if objective == "artifact_size_mb":
        size = performance.get("artifact_bytes")
        return math.inf if size is None else size / MEGABYTE
    if performance.get("status") != "measured":
        return math.inf
    return float(performance["p95_ms"])


def job_objective(cfg: DictConfig, objective: str) -> float:
    """Read the job's report.json and return its objective; infinity when the job wrote no report."""
    from sarvam_pipeline.cli import report_folder

    path = Path(report_folder(cfg)) / "report.json"
    if not path.is_file():
        log.warning("no report at %s, so the job's %s is infinity", path, objective)
        return math.inf
    report = json.loads(path.read_text(encoding="utf-8"))
    value = objective_value(report, objective, cfg.sweep.get("max_accuracy_drop"))
    log.info("sweep objective %s = %s", objective, value)
    return value
