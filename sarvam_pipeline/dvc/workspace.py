"""Scratch repositories for tests and benchmarks: a git repository with DVC, holding a copy of the sources.

Stage commands import the package from the repository they run in (``python -m`` puts the working
directory first on ``sys.path``), and DVC tracks the stage sources as deps, so the copy is complete: the
package, the stage kinds and the configs.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

from sarvam_pipeline.dvc.environment import run_dvc
from sarvam_pipeline.errors import PipelineError
from stages import ROOT

log = logging.getLogger(__name__)

COPIED_FOLDERS = ("sarvam_pipeline", "stages", "conf")
COPIED_FILES = (".dvcignore", ".gitignore")
# DVC settings of the project's own .dvc/config, applied to every scratch repository.
DVC_SETTINGS = {"core.analytics": "false", "core.check_update": "false"}


def last_output_line(completed: subprocess.CompletedProcess) -> str:
    """Return the last line of a process's stderr, else of its stdout: where tools print the error."""
    output = completed.stderr.strip() or completed.stdout.strip()
    return output.splitlines()[-1] if output else "no output"


def run_checked(command: list[str], cwd: Path, environment: dict[str, str] | None = None) -> str:
    """Run a command, raise PipelineError with its output's last line when it fails, and return stdout."""
    completed = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True)
    if completed.returncode != 0:
        tail = last_output_line(completed)
        raise PipelineError(f"{' '.join(command)} failed with exit code {completed.returncode}: {tail}")
    return completed.stdout


def git(arguments: list[str], cwd: Path) -> str:
    identity = ["-c", "user.name=sarvam_pipeline", "-c", "user.email=sarvam-pipeline@localhost"]
    return run_checked(["git", *identity, *arguments], cwd)


def dvc(arguments: list[str], cwd: Path) -> str:
    completed = run_dvc(arguments, cwd)
    if completed.returncode != 0:
        tail = last_output_line(completed)
        raise PipelineError(f"dvc {' '.join(arguments)} failed with exit code {completed.returncode}: {tail}")
    return completed.stdout + completed.stderr


def create_workspace(destination: Path, source: Path = ROOT) -> Path:
    """Copy the sources into ``destination``, then ``git init`` and ``dvc init`` it; return its path."""
    destination.mkdir(parents=True, exist_ok=True)
    ignored = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in COPIED_FOLDERS:
        shutil.copytree(source / folder, destination / folder, ignore=ignored)
    for name in COPIED_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, destination / name)

    git(["init", "--quiet", "--initial-branch=main"], destination)
    dvc(["init", "--quiet"], destination)
    for key, value in DVC_SETTINGS.items():
        dvc(["config", key, value], destination)
    log.info("scratch repository with DVC created in %s", destination)
    return destination


def commit_all(repository: Path, message: str) -> None:
    git(["add", "--all"], repository)
    git(["commit", "--quiet", "--allow-empty", "-m", message], repository)
