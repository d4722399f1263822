"""Hydra callback that logs sweep progress and writes the sweep report when a multirun ends.

Registered under ``hydra.callbacks`` in ``conf/config.yaml``. Hydra calls ``on_job_end`` in the process
that ran the job (a joblib worker with the parallel launcher) and ``on_multirun_end`` once, in the process
that launched the sweep.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class SweepReportCallback(Callback):
    """Logs each finished job and writes ``sweep_report.md`` and ``sweep_report.html`` at the end."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        # Counted from the folders, because parallel jobs run in other processes.
        finished = sum(1 for _ in sweep_dir.glob("*/report.json"))
        log.info(
            "sweep progress: job #%s ended (%s, exit code %s); %d job folders under %s contain a report",
            config.hydra.job.num,
            job_return.status.name,
            job_return.return_value if job_return.status == JobStatus.COMPLETED else "-",
            finished,
            sweep_dir,
        )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from sarvam_pipeline.sweep_report import write_sweep_report

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            write_sweep_report(sweep_dir)
        except (OSError, ValueError, KeyError) as error:
            # The jobs' own reports are written already; a report error must not turn the sweep into a failure.
            log.error(
                "sweep report of %s failed: %s: %s; rerun python -m sarvam_pipeline.sweep_report %s",
                sweep_dir,
                type(error).__name__,
                error,
                sweep_dir,
            )
