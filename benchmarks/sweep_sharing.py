"""Measure what sharing stages saves in a Hydra multirun, against running each job alone.

It runs a grid sweep (3x3 by default, on the real model) once with ``-m`` into an empty artifact store, so
jobs share the float export, data sets and reference outputs. Then it runs every job of the grid alone,
each into its own empty store, as if nothing were shared. It prints the wall time of the sweep against the
sum of the standalone times, and the number of stage builds (``ran`` in the reports) in both cases.

    python benchmarks/sweep_sharing.py [--grid OVERRIDE ...] [--fixed OVERRIDE ...] [--n-jobs 2]
                                       [--workdir DIR] [--keep]

The default grid is int8 static quantization on ONNX Runtime with 3 calibration set sizes x 3 sets of op
types kept in float. The op types do not change calibration, so the 9 jobs share 3 ``ort_calibrate`` nodes.
Each standalone job rebuilds every stage on the real model. On 2 cores the default grid took 150 s as a sweep
and 356 s standalone (docs/sweeps.md).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent

log = logging.getLogger("benchmarks.sweep_sharing")

DEFAULT_GRID = [
    "quant.calibration.samples=32,64,128",
    "quant.exclude_op_types=[Softmax],[Add,Softmax],[Add,Softmax,Mul]",
]
DEFAULT_FIXED = ["runtime=onnxruntime", "quant=int8_static", "chipset=x86_64_host"]
# Every job must exit 0 for its time to count. A recipe that breaks a budget (fp16 is over the 30 MB size
# budget of x86_64_host) would exit 3, so budgets are reported but not enforced here.
ALWAYS_FIXED = ["budgets.enforce=false"]


def expand_grid(grid: list[str]) -> list[list[str]]:
    """Return every combination of ``key=a,b,c`` overrides as a list of single-value overrides."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    # Hydra's own parser splits the sweep, so list values such as [Add,Softmax] stay whole. A single-value
    # override keeps its text as written, since str() of the parsed value is not override syntax (null, quotes).
    axes = []
    for override in OverridesParser.create().parse_overrides(grid):
        if override.is_sweep_override():
            axes.append([f"{override.get_key_element()}={value}" for value in override.sweep_string_iterator()])
        else:
            axes.append([override.input_line])
    return [list(combination) for combination in itertools.product(*axes)]


def run_pipeline(arguments: list[str]) -> float:
    """Run ``python -m sarvam_pipeline`` with the arguments and return its wall time in seconds."""
    environment = dict(os.environ, HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1")
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "sarvam_pipeline", *arguments],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"sarvam_pipeline {' '.join(arguments)} failed ({completed.returncode}): {completed.stderr[-2000:]}")
    return seconds


def count_builds(report_folders: list[Path]) -> int:
    """Count the stages that ran (were built, not reused) over the reports in the folders."""
    builds = 0
    for folder in report_folders:
        report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        builds += sum(stage["status"] == "ran" for stage in report["stages"])
    return builds


def measure_sweep(workdir: Path, grid: list[str], fixed: list[str], n_jobs: int) -> tuple[float, int, int]:
    """Run the grid as one multirun into an empty store; return seconds, stage builds and job count."""
    sweep_dir = workdir / "sweep"
    arguments = [
        "-m",
        "hydra/launcher=joblib",
        f"hydra.launcher.n_jobs={n_jobs}",
        *fixed,
        *ALWAYS_FIXED,
        *grid,
        f"store.root={workdir / 'sweep_artifacts'}",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    seconds = run_pipeline(arguments)

    folders = sorted(path.parent for path in sweep_dir.glob("*/report.json"))
    return seconds, count_builds(folders), len(folders)


def measure_standalone(workdir: Path, grid: list[str], fixed: list[str]) -> tuple[float, int, int]:
    """Run each job of the grid alone, each into its own empty store; return summed seconds and builds."""
    total_seconds, folders = 0.0, []
    for number, combination in enumerate(expand_grid(grid)):
        run_dir = workdir / "standalone" / str(number)
        arguments = [*fixed, *ALWAYS_FIXED, *combination, f"store.root={run_dir / 'artifacts'}", f"hydra.run.dir={run_dir}"]
        seconds = run_pipeline(arguments)
        log.info("standalone job %d (%s): %.1f s", number, " ".join(combination), seconds)

        total_seconds += seconds
        folders.append(run_dir)
    return total_seconds, count_builds(folders), len(folders)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", nargs="+", default=DEFAULT_GRID, help="swept overrides, key=a,b,c (default: 3 calibration sizes x 3 sets of excluded op types)")
    parser.add_argument("--fixed", nargs="*", default=DEFAULT_FIXED, help="overrides every job gets")
    parser.add_argument("--n-jobs", type=int, default=2, help="parallel jobs of the sweep (joblib launcher)")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    options = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="sweep_sharing_"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        log.info("sweep of %s with %s, %d parallel jobs, in %s", " ".join(options.grid), " ".join(options.fixed), options.n_jobs, workdir)
        sweep_seconds, sweep_builds, sweep_jobs = measure_sweep(workdir, options.grid, options.fixed, options.n_jobs)
        log.info("sweep done: %.1f s", sweep_seconds)
        alone_seconds, alone_builds, alone_jobs = measure_standalone(workdir, options.grid, options.fixed)

        print(f"jobs: {sweep_jobs} in the sweep, {alone_jobs} standalone")
        print(f"time: sweep with sharing {sweep_seconds:.1f} s, sum of standalone jobs {alone_seconds:.1f} s ({alone_seconds / sweep_seconds:.2f}x)")
        print(f"stage builds: {sweep_builds} with sharing, {alone_builds} without ({alone_builds - sweep_builds} saved)")
        print(f"host: {platform.node()}, {os.cpu_count()} CPUs, 1-minute load average {os.getloadavg()[0]:.1f} at the end")
        print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    finally:
        if not options.keep and options.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
