"""A host-wide readers-writer lock that keeps builds off the CPU cores while a stage measures latency.

A stage that times a runtime (``Stage.measures_time``) holds the lock exclusively, and every other stage
holds it shared. Parallel sweep jobs (``hydra/launcher=joblib``) and other main jobs on the host still build
side by side, but a benchmark starts only once no stage of any sarvam_pipeline process on the host is
running, and no stage starts while it measures. Processes that are not sarvam_pipeline still compete. The
benchmark measures the CPU time they take (``other_cpu_share``) so that reports can flag it.

The lock is ``fcntl.flock`` on one file per host and user, in the temporary directory or in
``SARVAM_HOST_LOCK``. The kernel releases it when a process dies, so a killed job leaves no stale lock.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import tempfile
from pathlib import Path
from typing import Iterator

from filelock import FileLock

log = logging.getLogger(__name__)

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


def default_lock_path() -> Path:
    """Return the lock file every sarvam_pipeline process of this user on this host shares."""
    configured = os.environ.get("SARVAM_HOST_LOCK")
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"sarvam_pipeline-{getpass.getuser()}-host.lock"


class HostLock:
    """Shared for building and exclusive for measuring, across the processes of one host."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_lock_path()

    @contextlib.contextmanager
    def hold(self, exclusive: bool, label: str = "") -> Iterator[None]:
        """Hold the lock, exclusively or shared, for the duration of the block."""
        if fcntl is None:
            # NOTE: without flock (Windows) only measuring stages exclude each other, so a benchmark may
            # still overlap a build of another process.
            if not exclusive:
                yield
                return
            with FileLock(str(self.path.with_suffix(".exclusive.lock"))):
                yield
            return

        self.path.parent.mkdir(parents=True, exist_ok=True)
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        with open(self.path, "a+b") as handle:
            try:
                fcntl.flock(handle.fileno(), mode | fcntl.LOCK_NB)
            except BlockingIOError:
                if exclusive:
                    log.info("%s waits for the other stages on this host to finish", label)
                else:
                    log.info("%s waits for a latency measurement on this host to finish", label)
                fcntl.flock(handle.fileno(), mode)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
