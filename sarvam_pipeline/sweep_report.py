"""The comparison report of a Hydra multirun: ``python -m sarvam_pipeline.sweep_report <multirun dir>``.

It writes ``sweep_report.md``, a self-contained ``sweep_report.html`` (plots embedded as base64 PNG) and
the plots under ``sweep_plots/`` into the multirun folder. The report has a table of every job, and per
target the Pareto fronts of accuracy against latency and against size. It also names, per target, the
recipe that meets every budget at the lowest latency. ``SweepReportCallback`` writes the same report at
the end of each multirun.
"""

from __future__ import annotations

import argparse
import base64
import html
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sarvam_pipeline.sweep_callback import sweep_total
from sarvam_pipeline.sweep_jobs import JobResult, collect_jobs, count_stage_statuses, exit_text
from sarvam_pipeline.sweep_plots import AXES, front_of, plot_group

log = logging.getLogger(__name__)

# Appended to the p95 latency of a job whose benchmark ran while the host was busy.
BUSY_MARK = "(busy host)"
COLUMNS = ("job", "target", "recipe", "status", "cosine mean", "accuracy", "p95 ms", "peak MB", "performance", "size MB", "budgets")


@dataclass
class GroupSummary:
    """The jobs of one target (chipset and runtime), its Pareto fronts, best recipe and plots."""

    group: str
    jobs: list[JobResult]
    fronts: dict[str, list[JobResult]]
    best: JobResult | None
    best_note: str
    plots: list[Path]


def _fmt(value: Any, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _status_cell(job: JobResult) -> str:
    exit_note = f" (exit {job.exit_code})" if job.exit_code else ""
    if job.error:
        return f"{job.status}{exit_note}: {job.error}"
    return job.status + exit_note


def _latency_cell(job: JobResult) -> str:
    latency = _fmt(job.p95_ms, 2)
    return f"{latency} {BUSY_MARK}" if job.host_was_busy else latency


def job_row(job: JobResult) -> list[str]:
    """Return the table cells of one job, in COLUMNS order."""
    budgets = job.budgets if not job.budgets_failed else f"fail: {', '.join(job.budgets_failed)}"
    return [
        job.job,
        job.group if job.status != "failed" else "-",
        job.recipe or "-",
        _status_cell(job),
        _fmt(job.cosine_mean, 5),
        job.accuracy_basis or "-",
        _latency_cell(job),
        _fmt(job.peak_memory_mb, 0),
        job.performance_basis or "-",
        _fmt(None if job.size_bytes is None else job.size_bytes / 1e6, 2),
        budgets if job.status != "failed" else "-",
    ]


def choose_best(jobs: list[JobResult]) -> tuple[JobResult | None, str]:
    """Return the job that meets every budget at the lowest measured latency, and a note on the choice."""
    meeting = [job for job in jobs if job.meets_budgets]
    timed = [job for job in meeting if job.p95_ms is not None]
    if not meeting:
        checked = sum(job.budgets == "not checked" for job in jobs)
        return None, f"no job meets every budget ({checked} with budgets not checked on this host)"
    if not timed:
        return None, f"{len(meeting)} jobs meet every budget, but none has a measured latency to rank them by"
    best = min(timed, key=lambda job: (job.p95_ms, job.size_bytes or 0))
    note = "no budgets set for this target, so every built job qualifies" if best.budgets == "none set" else "meets every budget"
    return best, note


def summarize(jobs: list[JobResult], plot_folder: Path) -> list[GroupSummary]:
    """Group built jobs by target, compute fronts and the best recipe, and write the plots."""
    groups: dict[str, list[JobResult]] = {}
    for job in jobs:
        if job.status != "failed":
            groups.setdefault(job.group, []).append(job)

    summaries = []
    for group, members in sorted(groups.items()):
        fronts = {suffix: front_of(members, figure) for suffix, _, figure in AXES}
        best, note = choose_best(members)
        summaries.append(GroupSummary(group, members, fronts, best, note, plot_group(group, members, plot_folder)))
    return summaries


def _stage_line(jobs: list[JobResult]) -> str:
    counts = count_stage_statuses(jobs)
    return (
        f"Stages over all job reports: {counts.get('ran', 0)} built, {counts.get('cached', 0)} reused from the "
        f"artifact store, {counts.get('skipped', 0)} skipped."
    )


def _failed_line(jobs: list[JobResult], planned: int | None = None) -> str:
    count = f"{len(jobs)} job" if len(jobs) == 1 else f"{len(jobs)} jobs"
    if planned is not None and planned > len(jobs):
        count = f"{len(jobs)} of {planned} planned jobs ran ({planned - len(jobs)} never started, as in an interrupted sweep)"
    failed = [job for job in jobs if job.failed]
    if not failed:
        return f"{count}, none failed."
    codes = ", ".join(f"#{job.job} {exit_text(job.exit_code)}" for job in failed)
    return f"{count}, {len(failed)} failed ({codes})."


def busy_host_note(jobs: list[JobResult]) -> str:
    """Return the note on jobs whose latency was measured on a busy host, or an empty string."""
    busy = [job for job in jobs if job.host_was_busy]
    if not busy:
        return ""
    causes = "; ".join(f"#{job.job}: {job.competition}" for job in busy)
    return (
        f"{BUSY_MARK}: other work competed for the cores during the job's benchmark ({causes}), so the latency is "
        "likely overstated. Rerun the job with rebuild=[benchmark] on a quiet host to measure it again."
    )


def render_markdown(multirun_dir: Path, jobs: list[JobResult], summaries: list[GroupSummary]) -> str:
    """Render the sweep report as Markdown; plots are linked as files beside it."""
    lines = [
        f"# Sweep report: {multirun_dir.name}",
        "",
        f"{_failed_line(jobs, sweep_total(multirun_dir))} {_stage_line(jobs)}",
        "",
        "## Jobs",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for job in jobs:
        cells = [cell.replace("|", "\\|") for cell in job_row(job)]
        lines.append("| " + " | ".join(cells) + " |")
    note = busy_host_note(jobs)
    if note:
        lines += ["", note]

    lines += ["", "## Best recipe per target", "", "| target | job | recipe | p95 ms | size MB | note |", "|---|---|---|---:|---:|---|"]
    for summary in summaries:
        best = summary.best
        if best is None:
            lines.append(f"| {summary.group} | - | - | - | - | {summary.best_note} |")
        else:
            size = _fmt(None if best.size_bytes is None else best.size_bytes / 1e6, 2)
            lines.append(f"| {summary.group} | {best.job} | {best.recipe} | {_fmt(best.p95_ms, 2)} | {size} | {summary.best_note} |")

    lines += ["", "## Pareto fronts", ""]
    for summary in summaries:
        lines += [f"### {summary.group}", ""]
        for suffix, _, _ in AXES:
            members = ", ".join(f"#{job.job} {job.recipe}" for job in summary.fronts[suffix]) or "no job has both figures"
            lines.append(f"- accuracy against {suffix}: {members}")
        lines.append("")
        lines += [f"![{path.stem}]({path.relative_to(multirun_dir).as_posix()})" for path in summary.plots]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _html_table(header: list[str] | tuple[str, ...], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(multirun_dir: Path, jobs: list[JobResult], summaries: list[GroupSummary]) -> str:
    """Render the sweep report as one HTML page with the plots inlined, so it opens without its folder."""
    note = busy_host_note(jobs)
    best_rows = []
    for summary in summaries:
        best = summary.best
        if best is None:
            best_rows.append([summary.group, "-", "-", "-", summary.best_note])
        else:
            best_rows.append([summary.group, best.job, best.recipe, _fmt(best.p95_ms, 2), summary.best_note])

    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>Sweep report: {html.escape(multirun_dir.name)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#eee}"
        "img{max-width:640px;margin:4px}</style></head><body>",
        f"<h1>Sweep report: {html.escape(multirun_dir.name)}</h1>",
        f"<p>{html.escape(_failed_line(jobs, sweep_total(multirun_dir)))} {html.escape(_stage_line(jobs))}</p>",
        "<h2>Jobs</h2>",
        _html_table(COLUMNS, [job_row(job) for job in jobs]),
        f"<p class='note'>{html.escape(note)}</p>" if note else "",
        "<h2>Best recipe per target</h2>",
        _html_table(["target", "job", "recipe", "p95 ms", "note"], best_rows),
        "<h2>Pareto fronts</h2>",
    ]
    for summary in summaries:
        parts.append(f"<h3>{html.escape(summary.group)}</h3><ul>")
        for suffix, _, _ in AXES:
            members = ", ".join(f"#{job.job} {job.recipe}" for job in summary.fronts[suffix]) or "no job has both figures"
            parts.append(f"<li>accuracy against {suffix}: {html.escape(members)}</li>")
        parts.append("</ul>")
        for path in summary.plots:
            encoded = base64.b64encode(path.read_bytes()).decode("ascii")
            parts.append(f"<img alt='{html.escape(path.stem)}' src='data:image/png;base64,{encoded}'>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_sweep_report(multirun_dir: Path, jobs: list[JobResult] | None = None) -> tuple[Path, Path]:
    """Write ``sweep_report.md``, ``sweep_report.html`` and ``sweep_plots/`` into a multirun folder.

    ``jobs`` are the folder's jobs when the caller has read them already (``collect_jobs``).
    """
    multirun_dir = Path(multirun_dir).resolve()
    if jobs is None:
        jobs = collect_jobs(multirun_dir)
    summaries = summarize(jobs, multirun_dir / "sweep_plots")

    markdown_path = multirun_dir / "sweep_report.md"
    html_path = multirun_dir / "sweep_report.html"
    markdown_path.write_text(render_markdown(multirun_dir, jobs, summaries), encoding="utf-8")
    html_path.write_text(render_html(multirun_dir, jobs, summaries), encoding="utf-8")
    log.info("sweep report of %d jobs written to %s and %s", len(jobs), markdown_path, html_path)
    return markdown_path, html_path


def main(arguments: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sarvam_pipeline.sweep_report", description=__doc__.splitlines()[0])
    parser.add_argument("multirun_dir", type=Path, help="folder of a Hydra multirun (contains multirun.yaml and one folder per job)")
    options = parser.parse_args(arguments)

    if not options.multirun_dir.is_dir():
        print(f"error: multirun folder {options.multirun_dir} not found; pass the folder of a multirun", file=sys.stderr)
        return 2
    if not any(options.multirun_dir.glob("*/.hydra/overrides.yaml")):
        print(f"error: no Hydra job folders (*/.hydra/overrides.yaml) under {options.multirun_dir}; pass the folder of a multirun", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    markdown_path, html_path = write_sweep_report(options.multirun_dir)
    print(f"{markdown_path}\n{html_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
