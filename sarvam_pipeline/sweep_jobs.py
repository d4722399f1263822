"""Read the jobs of a Hydra multirun folder into one row per job for the sweep report.

Each job folder contains ``.hydra/overrides.yaml`` (written by Hydra) and, when the job built its target,
``report.json`` (written by ``sarvam_pipeline.report``). A job without a report failed or was rejected
before any stage ran; its row carries the last error line of its log. ``job_status.json`` contains the
job's exit code, as a single run of the same overrides would return it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sarvam_pipeline.report import competing_work

log = logging.getLogger(__name__)

# Overrides under these prefixes change the recipe, so the report shows them beside the recipe name.
RECIPE_PREFIXES = ("quant.", "+quant.")
JOB_STATUS = "job_status.json"


@dataclass
class JobResult:
    """One job of a sweep and the figures its report gives."""

    job: str
    folder: Path
    overrides: list[str]
    # built | not built | failed
    status: str
    target: str = ""
    chipset: str = ""
    runtime: str = ""
    recipe: str = ""
    # Mean cosine similarity against the float model, and how it was obtained (measured | estimated).
    cosine_mean: float | None = None
    accuracy_basis: str = ""
    p95_ms: float | None = None
    peak_memory_mb: float | None = None
    # measured, or why latency and memory were not measured
    performance_basis: str = ""
    size_bytes: int | None = None
    # pass | fail | not checked | none set
    budgets: str = "none set"
    budgets_failed: list[str] = field(default_factory=list)
    error: str = ""
    stages: list[dict[str, Any]] = field(default_factory=list)
    # None when the job wrote no job_status.json: it was killed, or ran before job statuses were written.
    exit_code: int | None = None
    # 1-minute load average and CPU count while the job's benchmark ran, when it measured latency.
    load_average: float | None = None
    cpu_count: int | None = None
    other_cpu_share: float | None = None

    @property
    def group(self) -> str:
        """Return the deployment target the job belongs to: chipset and runtime, across recipes."""
        return f"{self.chipset}/{self.runtime}" if self.chipset else "unresolved"

    @property
    def accuracy_drop(self) -> float | None:
        return None if self.cosine_mean is None else 1.0 - self.cosine_mean

    @property
    def failed(self) -> bool:
        """Return True when the job exited non-zero, or ended without a report and without an exit code."""
        return self.exit_code != 0 if self.exit_code is not None else self.status == "failed"

    @property
    def competition(self) -> str | None:
        """Return what competed for the cores during the job's latency measurement, or None."""
        performance = {"other_cpu_share": self.other_cpu_share, "load_average_1min": self.load_average, "cpu_count": self.cpu_count}
        return competing_work(performance)

    @property
    def host_was_busy(self) -> bool:
        """Return True when other work competed for the cores during the job's latency measurement."""
        return self.competition is not None

    @property
    def meets_budgets(self) -> bool:
        """Return True when every budget set was checked and passed, or when none is set."""
        return self.status == "built" and self.budgets in ("pass", "none set")


def exit_text(exit_code: int | None) -> str:
    """Describe a job's exit code for summaries; None means the job ended without recording one."""
    return "no exit code recorded" if exit_code is None else f"exit {exit_code}"


def _job_folders(multirun_dir: Path) -> list[Path]:
    folders = [path.parent.parent for path in multirun_dir.glob("*/.hydra/overrides.yaml")]
    # Hydra names job folders by job number; sort numerically where it can.
    return sorted(folders, key=lambda path: (0, int(path.name)) if path.name.isdigit() else (1, path.name))


def _recipe_label(quant: str, overrides: list[str]) -> str:
    settings = [item.split(".", 1)[1] for item in overrides if item.startswith(RECIPE_PREFIXES)]
    return f"{quant} ({', '.join(settings)})" if settings else quant


def _budget_status(checks: list[dict[str, Any]]) -> str:
    statuses = {check["status"] for check in checks}
    if not checks:
        return "none set"
    if "fail" in statuses:
        return "fail"
    if "not_checked" in statuses:
        return "not checked"
    return "pass"


def _last_error(folder: Path) -> str:
    """Return the last ERROR line of the job's Hydra log file, or a note that there is none."""
    for log_file in sorted(folder.glob("*.log")):
        errors = [line for line in log_file.read_text(encoding="utf-8", errors="replace").splitlines() if "[ERROR]" in line]
        if errors:
            return errors[-1].split("[ERROR]", 1)[1].strip()
    return "no report.json and no error in the job's log (the job was interrupted or is still running)"


def write_job_status(folder: Path, exit_code: int, error: str = "") -> Path:
    """Write ``job_status.json``: the job's exit code and, for a failed job, its one-line error."""
    path = folder / JOB_STATUS
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"exit_code": exit_code, "error": error}) + "\n", encoding="utf-8")
    return path


def _read_job_status(folder: Path) -> dict[str, Any]:
    path = folder / JOB_STATUS
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        log.warning("ignoring unreadable %s: %s", path, error)
        return {}


def read_job(folder: Path) -> JobResult:
    """Read one job folder of a multirun."""
    overrides = yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text(encoding="utf-8")) or []
    status = _read_job_status(folder)
    report_path = folder / "report.json"
    if not report_path.is_file():
        # The job never resolved its target, so the recipe comes from the quant= override, if any.
        quant = next((item.split("=", 1)[1] for item in overrides if item.startswith("quant=")), "")
        return JobResult(
            folder.name,
            folder,
            overrides,
            "failed",
            recipe=_recipe_label(quant, overrides),
            error=status.get("error") or _last_error(folder),
            exit_code=status.get("exit_code"),
        )

    report = json.loads(report_path.read_text(encoding="utf-8"))
    target, accuracy, performance = report["target"], report["accuracy"], report["performance"]
    measured = performance.get("status") == "measured"
    return JobResult(
        job=folder.name,
        folder=folder,
        overrides=overrides,
        status="built" if report["built"] else "not built",
        target=target["id"],
        chipset=target["chipset"],
        runtime=target["runtime"],
        recipe=_recipe_label(target["quant"], overrides),
        cosine_mean=accuracy.get("cosine_mean"),
        accuracy_basis=accuracy.get("method", ""),
        p95_ms=performance.get("p95_ms") if measured else None,
        peak_memory_mb=performance.get("peak_rss_mb") if measured else None,
        performance_basis="measured" if measured else performance.get("reason", "not measured"),
        size_bytes=performance.get("artifact_bytes"),
        budgets=_budget_status(report["budgets"]),
        budgets_failed=list(report["budgets_violated"]),
        stages=report["stages"],
        exit_code=status.get("exit_code"),
        load_average=performance.get("load_average_1min") if measured else None,
        cpu_count=performance.get("cpu_count") if measured else None,
        other_cpu_share=performance.get("other_cpu_share") if measured else None,
    )


def collect_jobs(multirun_dir: Path) -> list[JobResult]:
    """Read every job folder under a multirun folder, in job order."""
    jobs = [read_job(folder) for folder in _job_folders(multirun_dir)]
    log.info("read %d jobs from %s", len(jobs), multirun_dir)
    return jobs


def count_stage_statuses(jobs: list[JobResult]) -> dict[str, int]:
    """Count stage outcomes (ran, cached, skipped) over every job's report."""
    counts: dict[str, int] = {}
    for job in jobs:
        for stage in job.stages:
            counts[stage["status"]] = counts.get(stage["status"], 0) + 1
    return counts
