"""PNG plots of a sweep: accuracy against latency and against size, with the Pareto front, per target."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import matplotlib

# No display on build hosts and workers; Agg renders PNG files only.
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sarvam_pipeline.pareto import pareto_front  # noqa: E402
from sarvam_pipeline.sweep_jobs import JobResult  # noqa: E402

log = logging.getLogger(__name__)

# (file suffix, axis label, figure of a job) for each plot's x axis; accuracy is always the y axis.
AXES = (
    ("latency", "latency p95 (ms)", lambda job: job.p95_ms),
    ("size", "artifact size (MB)", lambda job: None if job.size_bytes is None else job.size_bytes / 1e6),
)


def front_of(jobs: list[JobResult], figure) -> list[JobResult]:
    """Return the jobs on the Pareto front of accuracy drop against ``figure`` (both lower is better)."""
    points = []
    for job in jobs:
        value = figure(job)
        points.append(None if value is None or job.accuracy_drop is None else (value, job.accuracy_drop))
    return [jobs[i] for i in pareto_front(points)]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def plot_group(group: str, jobs: list[JobResult], folder: Path) -> list[Path]:
    """Write one PNG per axis for one target; a plot with no point that has both figures is not written."""
    paths = []
    for suffix, label, figure in AXES:
        plotted = [job for job in jobs if figure(job) is not None and job.cosine_mean is not None]
        if not plotted:
            log.info("no %s plot for %s: no job has both accuracy and %s", suffix, group, suffix)
            continue
        front = front_of(plotted, figure)

        figure_handle, axes = plt.subplots(figsize=(6.4, 4.2), dpi=100)
        axes.scatter([figure(job) for job in plotted], [job.cosine_mean for job in plotted], color="0.6", label="job")
        axes.plot(
            [figure(job) for job in front],
            [job.cosine_mean for job in front],
            color="tab:red",
            marker="o",
            label="Pareto front",
        )
        for job in plotted:
            axes.annotate(f"#{job.job} {job.recipe}", (figure(job), job.cosine_mean), fontsize=7, xytext=(4, 4), textcoords="offset points")
        # Cosines differ in the 4th or 5th decimal; an offset label above the axis is easy to misread.
        axes.ticklabel_format(axis="y", useOffset=False)
        axes.margins(x=0.15, y=0.15)
        axes.set_xlabel(label)
        axes.set_ylabel("cosine similarity to float, mean")
        axes.set_title(f"{group}: accuracy against {suffix}")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
        figure_handle.tight_layout()

        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"pareto_{_slug(group)}_{suffix}.png"
        figure_handle.savefig(path)
        plt.close(figure_handle)
        paths.append(path)
    return paths
