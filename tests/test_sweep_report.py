"""The sweep report on hand-made job folders: Pareto fronts, best recipe per target, Markdown and HTML."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from sarvam_pipeline.pareto import dominates, pareto_front
from sarvam_pipeline.sweep_jobs import collect_jobs, write_job_status
from sarvam_pipeline.sweep_objective import objective_value
from sarvam_pipeline.sweep_report import choose_best, main, write_sweep_report


def test_dominates_needs_one_strict_win():
    assert dominates((1.0, 1.0), (2.0, 1.0))
    assert not dominates((1.0, 1.0), (1.0, 1.0))
    assert not dominates((1.0, 3.0), (2.0, 1.0))


@pytest.mark.parametrize(
    "points, expected",
    [
        # (latency, accuracy drop): the fast lossy and the slow exact jobs trade off; (3, 0.05) loses to (2, 0.01).
        ([(1.0, 0.10), (2.0, 0.01), (3.0, 0.05), (5.0, 0.0)], [0, 1, 3]),
        # A job with a figure missing is never on the front and beats nothing.
        ([(1.0, 0.10), None, (0.5, 0.20)], [2, 0]),
        # Equal points are both kept.
        ([(1.0, 0.1), (1.0, 0.1), (2.0, 0.2)], [0, 1]),
        ([], []),
        ([None], []),
        # One job dominates all others.
        ([(4.0, 0.3), (1.0, 0.0), (2.0, 0.1)], [1]),
    ],
)
def test_pareto_front_on_hand_made_points(points, expected):
    assert pareto_front(points) == expected


def write_job(
    root: Path, number: int, overrides: list[str], report: dict | None, log_line: str = "", exit_code: int | None = None, error: str = ""
) -> None:
    folder = root / str(number)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides), encoding="utf-8")
    if report is not None:
        (folder / "report.json").write_text(json.dumps(report), encoding="utf-8")
    if log_line:
        (folder / "__main__.log").write_text(log_line + "\n", encoding="utf-8")
    if exit_code is not None:
        write_job_status(folder, exit_code, error)


def hand_made_report(
    runtime: str,
    quant: str,
    cosine: float,
    p95: float | None,
    size: int,
    budgets: list[str],
    load_average: float = 0.5,
    other_cpu_share: float | None = None,
) -> dict:
    """Return a report.json body with the fields the sweep report reads; ``budgets`` lists check statuses."""
    performance = (
        {"status": "measured", "p95_ms": p95, "peak_rss_mb": 300.0, "artifact_bytes": size, "load_average_1min": load_average, "cpu_count": 2}
        if p95 is not None
        else {"status": "not_measured", "reason": "needs macOS", "artifact_bytes": size}
    )
    if other_cpu_share is not None:
        performance["other_cpu_share"] = other_cpu_share
    return {
        "target": {"id": f"m/x86_64_host/{runtime}/{quant}", "chipset": "x86_64_host", "runtime": runtime, "quant": quant},
        "built": True,
        "accuracy": {"method": "measured", "cosine_mean": cosine},
        "performance": performance,
        "budgets": [{"name": f"budget{i}", "status": status} for i, status in enumerate(budgets)],
        "budgets_violated": [f"budget{i}" for i, status in enumerate(budgets) if status == "fail"],
        "stages": [
            {"kind": "dataset", "key": "d1", "status": "cached"},
            {"kind": "quantize", "key": f"q-{quant}", "status": "ran"},
        ],
    }


@pytest.fixture
def multirun(tmp_path) -> Path:
    root = tmp_path / "multirun"
    # Job 0 breaks a budget with budgets.enforce=true, so it exited 3.
    write_job(
        root, 0, ["quant=fp16", "runtime=onnxruntime"], hand_made_report("onnxruntime", "fp16", 0.9999, 9.0, 40_000_000, ["pass", "fail"]), exit_code=3
    )
    # Job 1's benchmark ran at a load average of 3.1 on 2 CPUs.
    write_job(
        root,
        1,
        ["quant=int8_dynamic", "runtime=onnxruntime"],
        hand_made_report("onnxruntime", "int8_dynamic", 0.990, 4.0, 20_000_000, ["pass", "pass"], load_average=3.1),
        exit_code=0,
    )
    # Job 2's load average is high, but other processes took 2% of the CPU time while it measured: the share
    # decides, since parallel jobs' stages wait during a benchmark while the load average still counts them.
    write_job(
        root,
        2,
        ["quant=int8_static", "runtime=onnxruntime", "quant.calibration.method=entropy"],
        hand_made_report("onnxruntime", "int8_static", 0.995, 5.0, 20_000_000, ["pass", "pass"], load_average=3.5, other_cpu_share=0.02),
    )
    # Job 3's benchmark shared the host with processes that took 40% of its CPU time.
    write_job(
        root,
        3,
        ["quant=int8_static", "runtime=openvino"],
        hand_made_report("openvino", "int8_static", 0.994, 3.0, 21_000_000, ["pass", "not_checked"], other_cpu_share=0.4),
    )
    write_job(
        root,
        10,
        ["quant=int8_dynamic", "runtime=openvino"],
        None,
        "[2026-01-01 00:00:00,000][sarvam_pipeline][ERROR] invalid quant 'int8_dynamic': runtime openvino does not accept this recipe",
    )
    return root


def test_jobs_read_in_numeric_order(multirun):
    jobs = collect_jobs(multirun)
    assert [job.job for job in jobs] == ["0", "1", "2", "3", "10"]


def test_failed_job_carries_log_error(multirun):
    failed = collect_jobs(multirun)[-1]
    assert failed.status == "failed"
    assert "runtime openvino does not accept this recipe" in failed.error
    assert failed.recipe == "int8_dynamic"


def test_recipe_shows_swept_settings(multirun):
    assert collect_jobs(multirun)[2].recipe == "int8_static (calibration.method=entropy)"


def test_best_recipe_is_fastest_meeting_budgets(multirun):
    onnxruntime = [job for job in collect_jobs(multirun) if job.runtime == "onnxruntime"]
    best, note = choose_best(onnxruntime)
    # Job 0 fails a budget; of jobs 1 (4 ms) and 2 (5 ms), both meeting every budget, job 1 is faster.
    assert best.job == "1"
    assert note == "meets every budget"


def test_no_best_when_budget_not_checked(multirun):
    openvino = [job for job in collect_jobs(multirun) if job.runtime == "openvino" and job.status == "built"]
    best, note = choose_best(openvino)
    assert best is None
    assert "1 with budgets not checked" in note


def test_report_lists_every_job(multirun):
    markdown_path, html_path = write_sweep_report(multirun)
    markdown = markdown_path.read_text(encoding="utf-8")
    table = markdown.split("## Jobs", 1)[1].split("##", 1)[0]
    job_numbers = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")][1:]
    assert job_numbers == ["0", "1", "2", "3", "10"]
    # Job 10 left no job_status.json, so its exit code is unknown.
    assert "5 jobs, 2 failed (#0 exit 3, #10 no exit code recorded)." in markdown
    assert "Stages over all job reports: 4 built, 4 reused" in markdown


def test_job_status_gives_exit_code(multirun):
    jobs = {job.job: job for job in collect_jobs(multirun)}
    assert jobs["0"].exit_code == 3
    assert jobs["0"].failed
    assert jobs["1"].exit_code == 0
    assert not jobs["1"].failed
    # No job_status.json: only a job without a report counts as failed.
    assert jobs["2"].exit_code is None
    assert not jobs["2"].failed
    assert jobs["10"].failed


def test_job_status_error_replaces_log(tmp_path):
    write_job(tmp_path, 0, ["quant=int8_dynamic", "runtime=openvino"], None, "[x][y][ERROR] older line", exit_code=2, error="invalid quant 'int8_dynamic'")
    job = collect_jobs(tmp_path)[0]
    assert job.error == "invalid quant 'int8_dynamic'"
    assert job.exit_code == 2


def test_report_shows_nonzero_exit_code(multirun):
    markdown = write_sweep_report(multirun)[0].read_text(encoding="utf-8")
    row = next(line for line in markdown.splitlines() if line.startswith("| 0 |"))
    assert "| built (exit 3) |" in row


def test_report_marks_busy_host(multirun):
    markdown_path, html_path = write_sweep_report(multirun)
    markdown = markdown_path.read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(): line for line in markdown.splitlines() if line.startswith("| ")}
    assert "| 4.00 (busy host) |" in rows["1"]
    assert "(busy host)" not in rows["2"]
    table = markdown.split("## Jobs", 1)[1].split("## Best", 1)[0]
    assert "| 3.00 (busy host) |" in rows["3"]
    assert "#1: the 1-minute load average was 3.1 on 2 CPUs" in table
    assert "#3: other processes used 40% of the host's CPU time" in table
    page = html_path.read_text(encoding="utf-8")
    assert "4.00 (busy host)" in page
    assert "#1: the 1-minute load average was 3.1 on 2 CPUs" in page


def test_report_without_busy_jobs_has_no_note(tmp_path):
    write_job(tmp_path, 0, ["quant=fp16"], hand_made_report("onnxruntime", "fp16", 0.9999, 9.0, 40_000_000, []), exit_code=0)
    markdown = write_sweep_report(tmp_path)[0].read_text(encoding="utf-8")
    assert "busy host" not in markdown
    assert "1 job, none failed." in markdown


def test_report_states_pareto_front(multirun):
    markdown = write_sweep_report(multirun)[0].read_text(encoding="utf-8")
    # x86_64_host/onnxruntime latency: job 1 (4 ms, 0.990), job 2 (5 ms, 0.995), job 0 (9 ms, 0.9999) all trade off.
    assert "- accuracy against latency: #1 int8_dynamic, #2 int8_static (calibration.method=entropy), #0 fp16" in markdown
    # Size: jobs 1 and 2 are both 20 MB, and job 2 is more accurate, so job 1 leaves the front.
    assert "- accuracy against size: #2 int8_static (calibration.method=entropy), #0 fp16" in markdown


def test_html_embeds_plots(multirun):
    _, html_path = write_sweep_report(multirun)
    page = html_path.read_text(encoding="utf-8")
    assert page.count("src='data:image/png;base64,") == 4
    assert (multirun / "sweep_plots" / "pareto_x86_64_host_onnxruntime_latency.png").is_file()
    assert "runtime openvino does not accept this recipe" in page


def test_cli_rejects_folder_without_jobs(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "no Hydra job folders" in capsys.readouterr().err


def test_cli_rejects_missing_folder(tmp_path, capsys):
    assert main([str(tmp_path / "missing")]) == 2
    assert f"multirun folder {tmp_path / 'missing'} not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "objective, max_drop, expected",
    [
        ("p95_latency_ms", None, 4.0),
        ("artifact_size_mb", None, 20.0),
        # Accuracy drop 0.01 exceeds 0.005, so the job is infeasible.
        ("p95_latency_ms", 0.005, math.inf),
        ("p95_latency_ms", 0.02, 4.0),
    ],
)
def test_objective_value_under_accuracy_constraint(objective, max_drop, expected):
    report = hand_made_report("onnxruntime", "int8_dynamic", 0.990, 4.0, 20_000_000, [])
    assert objective_value(report, objective, max_drop) == pytest.approx(expected)


def test_objective_infinite_without_latency():
    report = hand_made_report("coreml", "fp16", 0.999, None, 20_000_000, [])
    assert objective_value(report, "p95_latency_ms", None) == math.inf
    assert objective_value(report, "artifact_size_mb", None) == pytest.approx(20.0)


def test_unknown_objective_rejected():
    from omegaconf import OmegaConf

    from sarvam_pipeline.errors import ConfigError
    from sarvam_pipeline.sweep_objective import requested_objective

    assert requested_objective(OmegaConf.create({})) is None
    assert requested_objective(OmegaConf.create({"sweep": {"objective": "artifact_size_mb"}})) == "artifact_size_mb"
    with pytest.raises(ConfigError, match="invalid sweep.objective 'latency'"):
        requested_objective(OmegaConf.create({"sweep": {"objective": "latency"}}))


@pytest.mark.parametrize("module", ["sarvam_pipeline.sweep_report", "sarvam_pipeline.report"])
def test_module_command_writes_report(module, multirun):
    import subprocess
    import sys

    completed = subprocess.run([sys.executable, "-m", module, str(multirun)], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert (multirun / "sweep_report.md").is_file()
    assert (multirun / "sweep_report.html").is_file()
