"""The Python environment that converts PyTorch models to LiteRT ``.tflite`` files.

litert-torch 0.10.0 pulls jax, torchao and transformers and downgrades pydantic and typing_extensions, so it
is installed apart from the project's environment: ``make setup-litert`` creates ``.venv-litert`` from
``envs/litert.txt``, and the conversion stage runs its worker with that interpreter. ``SARVAM_LITERT_PYTHON``
names another interpreter. Only the conversion needs it: the ai-edge-litert interpreter that validation and
benchmark use installs into the project's environment.
"""

from __future__ import annotations

import json
import os
import subprocess
from functools import lru_cache
from pathlib import Path

from sarvam_pipeline.errors import MissingExtraError
from sarvam_pipeline.paths import REPO_ROOT

PYTHON_VARIABLE = "SARVAM_LITERT_PYTHON"
DEFAULT_PYTHON = REPO_ROOT / ".venv-litert" / "bin" / "python"
SETUP_HINT = f"run `make setup-litert`, or set {PYTHON_VARIABLE} to a Python that has litert-torch==0.10.0"

# Distributions of the environment whose versions change the converted file: they enter the conversion
# node's key and its manifest.
TOOLS = ("litert-torch", "ai-edge-litert", "ai-edge-quantizer", "litert-converter", "torch", "transformers")

# Reads package metadata only, so it takes a fraction of a second where importing litert-torch takes seconds.
_VERSIONS_SCRIPT = """
import json, platform, sys
from importlib import metadata
versions = {}
for name in json.loads(sys.argv[1]):
    try:
        versions[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        versions[name] = None
versions["python"] = platform.python_version()
print(json.dumps(versions))
"""

# Seconds to wait for the version query before the environment is reported as failed.
_QUERY_TIMEOUT_S = 60.0


class LiteRtEnvironmentError(MissingExtraError):
    """The LiteRT conversion environment is missing or unusable (exit code 2, like a missing extra)."""


def interpreter_path() -> Path:
    """Return the Python that runs the conversion: ``SARVAM_LITERT_PYTHON``, else ``.venv-litert/bin/python``."""
    configured = os.environ.get(PYTHON_VARIABLE, "").strip()
    return Path(configured) if configured else DEFAULT_PYTHON


@lru_cache(maxsize=8)
def _query_versions(python: str) -> tuple[dict[str, str | None] | None, str | None]:
    """Return (versions, None) for an interpreter, or (None, problem). Results are cached per interpreter path."""
    if not Path(python).is_file():
        return None, f"the LiteRT conversion environment is missing: {python} does not exist; {SETUP_HINT}"
    try:
        completed = subprocess.run(
            [python, "-c", _VERSIONS_SCRIPT, json.dumps(TOOLS)],
            capture_output=True,
            text=True,
            timeout=_QUERY_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"the LiteRT conversion environment's Python {python} failed to start ({error}); {SETUP_HINT}"
    if completed.returncode != 0:
        tail = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"the LiteRT conversion environment's Python {python} failed: {tail}; {SETUP_HINT}"

    versions = json.loads(completed.stdout.strip().splitlines()[-1])
    missing = [name for name in ("litert-torch", "ai-edge-litert", "torch") if versions.get(name) is None]
    if missing:
        return None, f"the LiteRT conversion environment {python} lacks {', '.join(missing)}; {SETUP_HINT}"
    return versions, None


def environment_problem() -> str | None:
    """Return why the conversion environment cannot be used, with what to run, or None when it can."""
    return _query_versions(str(interpreter_path()))[1]


def environment_versions() -> dict[str, str | None]:
    """Return the versions of TOOLS (and ``python``) in the conversion environment.

    Raises LiteRtEnvironmentError, whose message names the command to run, when the environment is missing.
    """
    versions, problem = _query_versions(str(interpreter_path()))
    if problem is not None:
        raise LiteRtEnvironmentError(problem)
    return dict(versions)
