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
