"""Hydra callback that logs sweep progress and writes the sweep report when a multirun ends.

Registered under ``hydra.callbacks`` in ``conf/config.yaml``. Hydra calls ``on_job_end`` in the process
that ran the job (a joblib worker with the parallel launcher) and ``on_multirun_start`` and
``on_multirun_end`` once, in the process that launched the sweep.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


@dataclass
class SweepSummary:
    """Outcome of a multirun: its folder, its report, its job count and the jobs that failed."""

    sweep_dir: Path
    report: Path | None
    jobs: int
    # (job number, exit code or None when the job left no exit code)
    failed: list[tuple[str, int | None]] = field(default_factory=list)


# Set by on_multirun_end in the process that launched the sweep. Hydra discards the jobs' return values, so
# ``python -m sarvam_pipeline`` reads this after Hydra returns to choose its exit code.
last_sweep: SweepSummary | None = None
# Set by on_multirun_start, so that an interrupted sweep can still report the jobs that finished and clean
# the build folders of jobs that stopped.
current_sweep_dir: Path | None = None
current_store_root: Path | None = None


def count_sweep_jobs(config: DictConfig) -> int | None:
    """Return how many jobs the sweep of this config launches, or None when it cannot be known in advance.

    The basic sweeper launches the cartesian product of the sweep overrides (expanded with Hydra's own
    ``BasicSweeper.split_arguments``); a search sweeper such as Optuna launches ``n_trials`` jobs.
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    sweeper = config.hydra.sweeper
    if "n_trials" in sweeper:
        return int(sweeper.n_trials)
    if not str(sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return None
    arguments = list(config.hydra.overrides.task)
    params = sweeper.get("params") or {}
    arguments += [f"{key}={value}" for key, value in params.items()]
    try:
        overrides = OverridesParser.create().parse_overrides(arguments)
        batches = BasicSweeper.split_arguments(overrides, None)
    except HydraException:
        return None
    return sum(len(batch) for batch in batches)


def sweep_total(sweep_dir: Path) -> int | None:
    """Count the sweep's jobs from ``multirun.yaml``, which the sweeper writes before launching any job."""
    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return None
    return count_sweep_jobs(OmegaConf.load(path))


class SweepReportCallback(Callback):
    """Logs each finished job and writes ``sweep_report.md`` and ``sweep_report.html`` at the end."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global last_sweep, current_sweep_dir, current_store_root
        last_sweep = None
        current_sweep_dir = Path(config.hydra.sweep.dir).resolve()
        current_store_root = Path(config.store.root).resolve()
        total = count_sweep_jobs(config)
        log.info("sweep started: %s jobs, folder %s", "an unknown number of" if total is None else total, config.hydra.sweep.dir)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        # Counted from the folders, because parallel jobs run in other processes.
        done = sum(1 for _ in sweep_dir.glob("*/job_status.json"))
        total = sweep_total(sweep_dir)
        log.info(
            "sweep progress: %d of %s jobs done; job #%s ended (%s, exit code %s) in %s",
            done,
            "?" if total is None else total,
            config.hydra.job.num,
            job_return.status.name,
            job_return.return_value if job_return.status == JobStatus.COMPLETED else "-",
            config.hydra.runtime.output_dir,
        )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from sarvam_pipeline.sweep_jobs import collect_jobs
        from sarvam_pipeline.sweep_report import write_sweep_report

        global last_sweep
        sweep_dir = Path(config.hydra.sweep.dir).resolve()
        jobs = collect_jobs(sweep_dir)
        report = None
        try:
            report, _ = write_sweep_report(sweep_dir, jobs)
        except (OSError, ValueError, KeyError) as error:
            # The jobs' own reports are written already; the exit code still reflects the failed jobs.
            log.error(
                "sweep report of %s failed: %s: %s; rerun python -m sarvam_pipeline.sweep_report %s",
                sweep_dir,
                type(error).__name__,
                error,
                sweep_dir,
            )
        failed = [(job.job, job.exit_code) for job in jobs if job.failed]
        last_sweep = SweepSummary(sweep_dir, report, len(jobs), failed)


def write_interrupted_report() -> tuple[Path, Path | None] | None:
    """Write the sweep report of the jobs an interrupted sweep finished.

    Returns the sweep folder and the report (None when writing it failed), or None when no sweep started.
    """
    from sarvam_pipeline.sweep_jobs import collect_jobs
    from sarvam_pipeline.sweep_report import write_sweep_report

    from sarvam_pipeline.store import ArtifactStore

    if current_sweep_dir is None or not current_sweep_dir.is_dir():
        return None
    if current_store_root is not None:
        # Parallel launchers stop their workers without running cleanup; folders of workers still exiting
        # are removed by the next run.
        ArtifactStore(current_store_root).clean_temporary()
    try:
        report, _ = write_sweep_report(current_sweep_dir, collect_jobs(current_sweep_dir))
    except (OSError, ValueError, KeyError) as error:
        log.error("sweep report of %s failed: %s: %s", current_sweep_dir, type(error).__name__, error)
        return current_sweep_dir, None
    return current_sweep_dir, report
