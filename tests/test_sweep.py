"""A real Hydra multirun on the tiny model: shared nodes built once, a sweep report, and resuming."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import tiny_overrides
from omegaconf import OmegaConf

from sarvam_pipeline.cli import SWEEP_FAILED_EXIT_CODE
from sarvam_pipeline.sweep_callback import count_sweep_jobs

ROOT = Path(__file__).resolve().parent.parent
# quant=int8_dynamic with runtime=openvino is rejected before any stage runs, so 3 of the 4 jobs build.
GRID = ["quant=fp16,int8_dynamic", "runtime=onnxruntime,openvino"]
SHARED_KINDS = ("dataset", "export_onnx", "reference")


def run_sweep(arguments: list[str]) -> subprocess.CompletedProcess:
    environment = dict(os.environ, HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1")
    return subprocess.run(
        [sys.executable, "-m", "sarvam_pipeline", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *arguments],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment,
        timeout=900,
    )


def job_reports(sweep_dir: Path) -> dict[str, dict]:
    return {path.parent.name: json.loads(path.read_text(encoding="utf-8")) for path in sweep_dir.glob("*/report.json")}


@pytest.fixture(scope="module")
def sweep(tiny_model_dir, tmp_path_factory) -> dict:
    """Run the 2x2 grid once with two parallel jobs; return its folders, store, overrides and process."""
    root = tmp_path_factory.mktemp("sweep")
    store = root / "artifacts"
    base = [*GRID, *tiny_overrides(tiny_model_dir, store)]
    completed = run_sweep([*base, f"hydra.sweep.dir={root / 'first'}"])
    assert (root / "first" / "sweep_report.md").is_file(), completed.stderr[-3000:]
    return {"root": root, "store": store, "base": base, "dir": root / "first", "model_dir": tiny_model_dir, "completed": completed}


def test_rejected_job_makes_sweep_exit_nonzero(sweep):
    assert sweep["completed"].returncode == SWEEP_FAILED_EXIT_CODE, sweep["completed"].stderr[-3000:]


def test_sweep_exit_line_names_failures_and_report(sweep):
    last_line = sweep["completed"].stderr.strip().splitlines()[-1]
    assert last_line == f"error: 1 of 4 sweep jobs failed (#3 exit 2); see {sweep['dir'] / 'sweep_report.md'}"


def test_job_status_records_exit_codes(sweep):
    statuses = {path.parent.name: json.loads(path.read_text(encoding="utf-8")) for path in sweep["dir"].glob("*/job_status.json")}
    assert {job: status["exit_code"] for job, status in statuses.items()} == {"0": 0, "1": 0, "2": 0, "3": 2}
    assert "runtime openvino does not accept this recipe" in statuses["3"]["error"]


def test_progress_counts_jobs_done_of_total(sweep):
    output = sweep["completed"].stdout + sweep["completed"].stderr
    assert "sweep started: 4 jobs" in output
    logs = "".join(path.read_text(encoding="utf-8") for path in sweep["dir"].glob("*/*.log"))
    for done in range(1, 5):
        assert f"sweep progress: {done} of 4 jobs done" in logs


def test_console_tags_stage_lines_with_job(sweep):
    output = sweep["completed"].stdout + sweep["completed"].stderr
    for job in ("0", "1", "2"):
        assert re.search(rf"#{job} running +export_onnx|#{job} cached +export_onnx", output), job
        assert re.search(rf"#{job} running +validate\S* +\w+ \(stage \d of \d\)", output), job


def test_every_buildable_job_writes_report(sweep):
    reports = job_reports(sweep["dir"])
    assert sorted(reports) == ["0", "1", "2"]
    assert all(report["built"] for report in reports.values())
    assert not (sweep["dir"] / "3" / "report.json").exists()


def test_shared_nodes_built_once_in_store(sweep):
    for kind in SHARED_KINDS:
        manifests = list((sweep["store"] / kind).glob("*/manifest.json"))
        assert len(manifests) == 1, f"{kind}: {manifests}"


def test_each_node_ran_in_one_job(sweep):
    runs = Counter()
    for report in job_reports(sweep["dir"]).values():
        for stage in report["stages"]:
            runs[stage["key"]] += stage["status"] == "ran"
    assert runs and set(runs.values()) == {1}, runs


def test_shared_nodes_ran_once_across_logs(sweep):
    logs = "".join(path.read_text(encoding="utf-8") for path in sweep["dir"].glob("*/*.log"))
    for kind in SHARED_KINDS:
        assert logs.count(f"running {kind}[") == 1, kind


def test_static_recipes_share_one_calibration(tiny_model_dir, tmp_path):
    store = tmp_path / "artifacts"
    arguments = [
        "quant=int8_static,int8_static_accurate",
        "runtime=onnxruntime",
        "budgets.enforce=false",
        *tiny_overrides(tiny_model_dir, store),
        # Both recipes calibrate on 64 rows, more than the tiny overrides' 32.
        "data.calibration_samples=64",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]

    completed = run_sweep(arguments)

    assert completed.returncode == 0, completed.stderr[-3000:]
    assert len(list((store / "ort_calibrate").glob("*/manifest.json"))) == 1
    assert len(list((store / "ort_quantize").glob("*/manifest.json"))) == 2


def test_sweep_report_lists_every_job(sweep):
    markdown = (sweep["dir"] / "sweep_report.md").read_text(encoding="utf-8")
    table = markdown.split("## Jobs", 1)[1].split("##", 1)[0]
    job_numbers = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")][1:]
    assert job_numbers == ["0", "1", "2", "3"]
    assert "runtime openvino does not accept this recipe" in markdown
    assert (sweep["dir"] / "sweep_report.html").is_file()


def test_interrupted_sweep_resumes_from_store(sweep):
    # Remove the last two nodes of job 2, as if the sweep had stopped before they were built.
    report = job_reports(sweep["dir"])["2"]
    removed = {stage["key"] for stage in report["stages"] if stage["kind"] in ("validate", "benchmark")}
    assert len(removed) == 2
    for stage in report["stages"]:
        if stage["key"] in removed:
            shutil.rmtree(stage["path"])

    completed = run_sweep([*sweep["base"], f"hydra.sweep.dir={sweep['root'] / 'resumed'}"])
    # Job 3 is rejected again, as in the first sweep.
    assert completed.returncode == SWEEP_FAILED_EXIT_CODE, completed.stderr[-3000:]

    # Keys are compared, not stage names, because a key changes with the stage's code and tool versions.
    finished = {stage["key"] for report in job_reports(sweep["dir"]).values() for stage in report["stages"]} - removed
    resumed_stages = [stage for report in job_reports(sweep["root"] / "resumed").values() for stage in report["stages"]]
    assert removed <= {stage["key"] for stage in resumed_stages}
    for stage in resumed_stages:
        if stage["key"] in removed:
            assert stage["status"] == "ran", stage["name"]
        elif stage["key"] in finished:
            assert stage["status"] == "cached", stage["name"]


def test_optuna_study_resumes(sweep):
    optuna = pytest.importorskip("optuna")
    storage = f"sqlite:///{sweep['root'] / 'study.db'}"
    search = [
        "hydra/sweeper=recipe_search",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.sampler.seed=0",
        "sweep.objective=p95_latency_ms",
        "sweep.max_accuracy_drop=0.5",
        "runtime=onnxruntime",
        *tiny_overrides(sweep["model_dir"], sweep["store"]),
        # The int8_static recipe calibrates on 64 samples; tiny_overrides makes a data set of 32.
        "data.calibration_samples=64",
    ]
    environment = dict(os.environ, HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1")
    for name, trials in (("search", 2), ("search_resumed", 1)):
        completed = subprocess.run(
            [sys.executable, "-m", "sarvam_pipeline", "-m", *search, f"hydra.sweeper.n_trials={trials}", f"hydra.sweep.dir={sweep['root'] / name}"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=environment,
            timeout=900,
        )
        assert completed.returncode == 0, completed.stderr[-3000:]

    study = optuna.load_study(study_name="recipe_search", storage=storage)
    assert len(study.trials) == 3
    assert all(trial.state == optuna.trial.TrialState.COMPLETE for trial in study.trials)
    # Every trial built and was measured, so each returned a finite latency in milliseconds.
    assert all(0.0 < trial.value < 1e4 for trial in study.trials)


def test_submitit_local_reuses_store(sweep):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep_dir = sweep["root"] / "submitit"
    environment = dict(os.environ, HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "sarvam_pipeline",
            "-m",
            "hydra/launcher=submitit_local",
            "quant=fp16,int8_dynamic",
            "runtime=onnxruntime",
            *tiny_overrides(sweep["model_dir"], sweep["store"]),
            f"hydra.sweep.dir={sweep_dir}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]

    reports = job_reports(sweep_dir)
    assert sorted(reports) == ["0", "1"]
    # The grid sweep built the shared nodes into the same store, so the submitit jobs only read them.
    for report in reports.values():
        shared = [stage for stage in report["stages"] if stage["kind"] in SHARED_KINDS]
        assert len(shared) == 3
        assert {stage["status"] for stage in shared} == {"cached"}
    assert (sweep_dir / "sweep_report.md").is_file()


def test_interrupted_parallel_sweep_reports_finished_jobs(tiny_model_dir, tmp_path):
    sweep_dir = tmp_path / "sweep"
    arguments = [
        sys.executable,
        "-m",
        "sarvam_pipeline",
        "-m",
        "quant=fp16,int8_dynamic,fp32",
        "runtime=onnxruntime,openvino",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        *tiny_overrides(tiny_model_dir, tmp_path / "artifacts"),
        f"hydra.sweep.dir={sweep_dir}",
    ]
    environment = dict(os.environ, HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1")
    process = subprocess.Popen(
        arguments, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )

    # Ctrl-C reaches the launching process and the joblib workers, as in a terminal.
    try:
        deadline = time.monotonic() + 600
        while not list(sweep_dir.glob("*/report.json")) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert process.poll() is None, "the sweep ended before it could be interrupted"
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)

    assert process.returncode == 130
    interrupted = [line for line in stderr.splitlines() if line.startswith("error: sweep interrupted")]
    assert len(interrupted) == 1
    assert "Traceback" not in stderr
    assert (sweep_dir / "sweep_report.md").is_file()
    assert str(sweep_dir / "sweep_report.md") in interrupted[0]
    assert "of 6 planned jobs ran" in (sweep_dir / "sweep_report.md").read_text(encoding="utf-8")


def test_killed_sweep_resumes_without_rebuilding(tiny_model_dir, tmp_path):
    store = tmp_path / "artifacts"
    arguments = [
        sys.executable,
        "-m",
        "sarvam_pipeline",
        "-m",
        "quant=fp16,int8_dynamic",
        "runtime=onnxruntime",
        *tiny_overrides(tiny_model_dir, store),
    ]
    environment = dict(os.environ, HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1")

    # The basic launcher runs jobs one after another; stop the sweep (Ctrl-C) once job 0 has its report.
    first = tmp_path / "first"
    process = subprocess.Popen(
        [*arguments, f"hydra.sweep.dir={first}"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 600
        while not (first / "0" / "report.json").exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    finished = job_reports(first)
    assert "0" in finished
    assert "1" not in finished
    built_keys = {stage["key"] for stage in finished["0"]["stages"]}

    resumed = tmp_path / "resumed"
    completed = subprocess.run([*arguments, f"hydra.sweep.dir={resumed}"], capture_output=True, text=True, cwd=ROOT, env=environment, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]

    reports = job_reports(resumed)
    assert sorted(reports) == ["0", "1"]
    assert {stage["status"] for stage in reports["0"]["stages"]} == {"cached"}
    for stage in reports["1"]["stages"]:
        if stage["key"] in built_keys:
            assert stage["status"] == "cached", stage["name"]
    assert not list(store.glob("*/.tmp-*"))


BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


@pytest.mark.parametrize(
    "sweeper, task, expected",
    [
        ({"_target_": BASIC_SWEEPER, "params": None}, ["quant=fp16,int8_dynamic", "runtime=onnxruntime,openvino", "dry_run=true"], 4),
        ({"_target_": BASIC_SWEEPER, "params": {"benchmark.threads": "1,2,4"}}, ["quant=fp16,int8_dynamic"], 6),
        ({"_target_": BASIC_SWEEPER, "params": None}, ["quant=fp16"], 1),
        ({"_target_": "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper", "n_trials": 5}, [], 5),
        ({"_target_": "some.other.Sweeper"}, ["quant=fp16,int8_dynamic"], None),
    ],
)
def test_sweep_job_count_from_config(sweeper, task, expected):
    config = OmegaConf.create({"hydra": {"sweeper": sweeper, "overrides": {"task": task}}})
    assert count_sweep_jobs(config) == expected
