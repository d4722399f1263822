"""The environment every DVC command of the project runs in: no analytics, site cache inside the project.

DVC sends usage analytics from a background process unless ``DVC_NO_ANALYTICS`` is set or
``core.analytics`` is false, and keeps its site cache in ``/var/tmp/dvc`` unless ``DVC_SITE_CACHE_DIR``
names another folder (dvc 3.67, dvc/analytics.py and dvc/dirs.py).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

# Inside .dvc/tmp, which DVC's own .dvc/.gitignore keeps out of git.
SITE_CACHE = Path(".dvc") / "tmp" / "site_cache"


def dvc_environment(repo_root: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """Return an environment for DVC in ``repo_root``; stage commands find this interpreter's ``python`` first."""
    environment = dict(os.environ if base is None else base)
    environment["DVC_NO_ANALYTICS"] = "1"
    environment["DVC_SITE_CACHE_DIR"] = str(Path(repo_root).resolve() / SITE_CACHE)
    environment["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), environment.get("PATH", "")])
    return environment


def dvc_executable() -> str:
    """Return the ``dvc`` beside this interpreter (the project's virtual environment), else the one on PATH."""
    beside = Path(sys.executable).parent / "dvc"
    return str(beside) if beside.is_file() else "dvc"


def run_dvc(arguments: list[str], repo_root: Path, timeout_s: float = 3600.0) -> subprocess.CompletedProcess:
    """Run ``dvc <arguments>`` in ``repo_root`` and return the completed process, output captured."""
    command = [dvc_executable(), *arguments]
    log.debug("running %s in %s", " ".join(command), repo_root)
    return subprocess.run(
        command,
        cwd=repo_root,
        env=dvc_environment(repo_root),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
