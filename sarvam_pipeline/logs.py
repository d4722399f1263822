"""Logging filters used by conf/hydra/job_logging/rich.yaml."""

from __future__ import annotations

import logging


class DropLibraryInfo(logging.Filter):
    """Drop INFO and DEBUG records that libraries log on the root logger from the given source folders.

    ONNX Runtime's quantizer calls ``logging.info`` directly for every tensor it skips, so a logger-level
    setting cannot silence it.
    """

    def __init__(self, folders: list[str] | None = None) -> None:
        super().__init__()
        self.folders = tuple(folders or ("onnxruntime/quantization",))

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING or record.name != "root":
            return True
        path = record.pathname.replace("\\", "/")
        return not any(folder in path for folder in self.folders)


class TagSweepJob(logging.Filter):
    """Set ``record.job_tag`` to ``#<job number> `` in a multirun and to an empty string otherwise.

    Parallel sweep jobs write to one terminal, so the console format puts the tag before each message to
    tell the jobs' stage lines apart. Hydra configures logging anew for every job, after it sets the job's
    config, so the tag is read once here.
    """

    def __init__(self) -> None:
        super().__init__()
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
        self.tag = f"#{HydraConfig.get().job.num} " if multirun else ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.job_tag = self.tag
        return True
