"""Location of the configuration folder and its group options."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def conf_dir() -> Path:
    """Return the ``conf/`` folder: ``SARVAM_PIPELINE_CONF`` when set, else the one beside the package.

    NOTE: ``make run`` and ``make test`` install the package in editable mode. A wheel install does not
    carry ``conf/``, so it needs SARVAM_PIPELINE_CONF pointing at a checkout's ``conf/``.
    """
    override = os.environ.get("SARVAM_PIPELINE_CONF")
    return Path(override).resolve() if override else REPO_ROOT / "conf"


def group_options(group: str) -> list[str]:
    """Return the option names of a config group, from the YAML files in ``conf/<group>/``."""
    folder = conf_dir() / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
