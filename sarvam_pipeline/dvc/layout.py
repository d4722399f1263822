"""File paths of a generated pipeline, POSIX and relative to the repository root.

Every stage command runs in the repository root, so DVC resolves these paths the same way.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

DVC_FILE = "dvc.yaml"
PARAMS_FILE = "params.yaml"
STORE_FOLDER = "artifacts"
METRICS_FOLDER = "metrics"
REPORT_FOLDER = "report"
ACCURACY_FILE = "accuracy.json"
PERFORMANCE_FILE = "performance.json"
# Plot data written by the report stage: file name, then the column on the x axis.
PLOT_FILES = {"accuracy.csv": "cosine_mean", "latency.csv": "p95_ms", "size.csv": "artifact_mb"}

_UNSAFE_PATH_CHARACTERS = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_path_part(text: str) -> str:
    """Replace characters that need quoting in a shell or a YAML key, so a name can be a folder name."""
    return _UNSAFE_PATH_CHARACTERS.sub("_", text).strip(".") or "_"


@dataclass(frozen=True)
class PipelineLayout:
    """The files of one generated pipeline under its folder (``.`` for the repository root)."""

    folder: str

    def path(self, *parts: str) -> str:
        return posixpath.normpath(posixpath.join(self.folder, *parts))

    @property
    def dvc_file(self) -> str:
        return self.path(DVC_FILE)

    @property
    def params_file(self) -> str:
        return self.path(PARAMS_FILE)

    @property
    def store(self) -> str:
        return self.path(STORE_FOLDER)

    def node_output(self, kind: str, key: str) -> str:
        """Return a node's folder: the artifact store's ``<store>/<kind>/<key>`` layout."""
        return self.path(STORE_FOLDER, kind, key)

    def metrics_file(self, target_id: str, file_name: str) -> str:
        parts = [safe_path_part(part) for part in target_id.split("/")]
        return self.path(METRICS_FOLDER, *parts, file_name)

    @property
    def report_markdown(self) -> str:
        return self.path(REPORT_FOLDER, "matrix.md")

    def plot_file(self, file_name: str) -> str:
        return self.path(REPORT_FOLDER, file_name)

    @property
    def working_directory(self) -> str:
        """Return the repository root as seen from the pipeline folder: the ``wdir`` of every stage."""
        return posixpath.relpath(".", self.folder)
