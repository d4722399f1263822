"""Measure the DVC pipeline of a targets config against direct runs, in a scratch copy of the repository.

It prints, for the default matrix unless --targets names another, the number of targets and the unique node
stages against the sum of per-target stages (the sharing ratio). Then it prints the time of a full
``dvc repro`` from an empty cache, of a no-op ``dvc repro``, and of a no-op direct run of every target: one
``python -m sarvam_pipeline`` per target, each finding every stage in the store that DVC filled.

    python benchmarks/dvc_matrix.py [--targets default] [--workdir DIR] [--keep]

The full build runs every stage of the matrix on the real model: tens of minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

from sarvam_pipeline.dvc.config import load_targets_config  # noqa: E402
from sarvam_pipeline.dvc.environment import dvc_environment, dvc_executable  # noqa: E402
from sarvam_pipeline.dvc.layout import PipelineLayout  # noqa: E402
from sarvam_pipeline.dvc.workspace import commit_all, create_workspace, last_output_line  # noqa: E402

log = logging.getLogger("benchmarks.dvc_matrix")

# Exit codes of a direct run that built or found every stage: 0, or 3 when a budget was violated.
DIRECT_RUN_OK = (0, 3)


def timed(command: list[str], cwd: Path, label: str) -> tuple[float, str]:
    """Run a command, raise when it fails, and return its wall-clock seconds and combined output."""
    log.info("%s: %s", label, shlex.join(command))
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=cwd, env=dvc_environment(cwd), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"error: {label} failed with exit code {completed.returncode}: {last_output_line(completed)}")
    return seconds, completed.stdout + completed.stderr


def direct_runs(root: Path, targets: dict[str, dict], report_root: Path) -> float:
    """Run every target's direct command once and return the total seconds."""
    total = 0.0
    for index, (target_id, entry) in enumerate(sorted(targets.items())):
        arguments = shlex.split(entry["command"])[1:]
        command = [sys.executable, *arguments, f"report_dir={report_root / str(index)}"]
        log.info("direct run of %s", target_id)
        started = time.perf_counter()
        completed = subprocess.run(command, cwd=root, env=dvc_environment(root), capture_output=True, text=True)
        total += time.perf_counter() - started
        if completed.returncode not in DIRECT_RUN_OK:
            tail = last_output_line(completed)
            raise SystemExit(f"error: direct run of {target_id} failed with exit code {completed.returncode}: {tail}")

        report = json.loads((report_root / str(index) / "report.json").read_text(encoding="utf-8"))
        # Skipped stages are the ones this host cannot build, which the DVC pipeline leaves out too.
        rebuilt = [row["name"] for row in report["stages"] if row["status"] == "ran"]
        if rebuilt:
            raise SystemExit(
                f"error: the direct run of {target_id} rebuilt {rebuilt}: "
                "its keys or store differ from the DVC pipeline's"
            )
    return total


def measure(targets_config: str, root: Path) -> dict[str, float | int | str]:
    create_workspace(root)
    commit_all(root, "Copy the sources")

    compile_seconds, _ = timed(
        [sys.executable, "-m", "sarvam_pipeline.dvc", "compile", "--targets", targets_config], root, "compile"
    )
    layout = PipelineLayout(load_targets_config(targets_config).pipeline)
    params = yaml.safe_load((root / layout.params_file).read_text(encoding="utf-8"))
    summary, targets = params["pipeline"], params["targets"]

    dvc = dvc_executable()
    full_seconds, _ = timed([dvc, "repro", layout.dvc_file], root, "full dvc repro")
    noop_seconds, noop_output = timed([dvc, "repro", layout.dvc_file], root, "no-op dvc repro")
    if "Running stage" in noop_output:
        raise SystemExit("error: the second dvc repro ran stages; the pipeline is not reproducible")
    direct_seconds = direct_runs(root, targets, root.parent / "direct-run-reports")

    return {
        "targets config": targets_config,
        "targets": summary["targets"],
        "unique nodes": summary["nodes"],
        # The stages one pipeline per target would have: each target's own nodes, summed.
        "nodes summed over targets": summary["nodes_without_sharing"],
        "sharing ratio": round(summary["nodes_without_sharing"] / summary["nodes"], 2),
        "node stages built on this host": len(params["nodes"]),
        "compile (s)": round(compile_seconds, 1),
        "full dvc repro (s)": round(full_seconds, 1),
        "no-op dvc repro (s)": round(noop_seconds, 1),
        "no-op direct run, all targets (s)": round(direct_seconds, 1),
        "no-op direct run per target (s)": round(direct_seconds / summary["targets"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="default", help="targets config name or file (default: %(default)s)")
    parser.add_argument("--workdir", type=Path, help="folder for the scratch repository (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch repository after the run")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    workdir = arguments.workdir or Path(tempfile.mkdtemp(prefix="dvc-matrix-"))
    root = workdir / "repository"
    try:
        figures = measure(arguments.targets, root)
    finally:
        if arguments.keep:
            log.info("scratch repository kept in %s", root)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    width = max(len(name) for name in figures)
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
