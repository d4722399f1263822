"""The generated DVC pipeline under real ``dvc`` in a scratch git repository, on the tiny model.

One module-scoped workspace is built once (about two minutes on 2 cores) and the tests below run in file
order against it: the later ones change a recipe, commit and clone it.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from conftest import TINY_SEQUENCE_LENGTH
from sarvam_pipeline.dvc.environment import dvc_environment, run_dvc
from sarvam_pipeline.dvc.workspace import commit_all, create_workspace, git

TINY_TARGETS_CONFIG = """\
defaults:
  - targets_schema
  - _self_

pipeline: .
chipsets: []
targets:
  - {{chipset: x86_64_host, runtime: onnxruntime, quant: int8_dynamic}}
  - {{chipset: x86_64_host, runtime: onnxruntime, quant: int8_static}}
overrides:
  - model.name=tiny_bert
  - model.source=models/tiny_bert
  - model.sequence_length={sequence_length}
  - data.calibration_samples=32
  - data.evaluation_samples=48
  - benchmark.warmup=2
  - benchmark.iterations=5
  - quant.calibration.samples={calibration_samples}
"""
TARGET_IDS = ("tiny_bert/x86_64_host/onnxruntime/int8_dynamic", "tiny_bert/x86_64_host/onnxruntime/int8_static")
RUNNING = re.compile(r"^Running stage '([^']+)'", re.MULTILINE)


@dataclass
class Workspace:
    root: Path
    first_repro: str


def write_targets(root: Path, calibration_samples: int) -> None:
    text = TINY_TARGETS_CONFIG.format(sequence_length=TINY_SEQUENCE_LENGTH, calibration_samples=calibration_samples)
    (root / "conf" / "targets" / "tiny.yaml").write_text(text, encoding="utf-8")


def compile_tiny(root: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sarvam_pipeline.dvc", "compile", "--targets", "tiny", *arguments],
        cwd=root,
        env=dvc_environment(root),
        capture_output=True,
        text=True,
        timeout=300,
    )


def dvc_ok(root: Path, *arguments: str) -> str:
    completed = run_dvc(list(arguments), root, timeout_s=900)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return completed.stdout + completed.stderr


def ran_stages(output: str) -> set[str]:
    return set(RUNNING.findall(output))


def stage_names(root: Path) -> set[str]:
    return set(yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_model_dir) -> Workspace:
    root = create_workspace(tmp_path_factory.mktemp("dvc") / "repository")
    shutil.copytree(tiny_model_dir, root / "models" / "tiny_bert")
    write_targets(root, calibration_samples=16)
    commit_all(root, "Add the sources, the tiny model and its targets config")

    completed = compile_tiny(root)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return Workspace(root, dvc_ok(root, "repro"))


def test_compile_is_byte_identical(workspace):
    before = {name: (workspace.root / name).read_bytes() for name in ("dvc.yaml", "params.yaml")}
    assert compile_tiny(workspace.root).returncode == 0
    after = {name: (workspace.root / name).read_bytes() for name in ("dvc.yaml", "params.yaml")}
    assert after == before


def test_compile_check_passes(workspace):
    completed = compile_tiny(workspace.root, "--check")
    assert completed.returncode == 0, completed.stderr
    assert "up to date" in completed.stdout


def test_fresh_repro_runs_every_stage(workspace):
    assert ran_stages(workspace.first_repro) == stage_names(workspace.root)


def test_noop_repro_runs_nothing(workspace):
    output = dvc_ok(workspace.root, "repro")
    assert ran_stages(output) == set()
    assert "Data and pipelines are up to date" in output


def test_direct_run_reuses_dvc_outputs(workspace, tmp_path):
    targets = yaml.safe_load((workspace.root / "params.yaml").read_text(encoding="utf-8"))["targets"]
    command = shlex.split(targets[TARGET_IDS[1]]["command"])
    assert command[:3] == ["python", "-m", "sarvam_pipeline"]
    report_dir = tmp_path / "report"
    completed = subprocess.run(
        [sys.executable, *command[1:], f"report_dir={report_dir}"],
        cwd=workspace.root,
        env=dvc_environment(workspace.root),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    assert {row["status"] for row in report["stages"]} == {"cached"}
    assert all(row["path"].startswith(str(workspace.root / "artifacts")) for row in report["stages"])


def test_metrics_show_lists_every_target(workspace):
    metrics = json.loads(run_dvc(["metrics", "show", "--json"], workspace.root).stdout)
    files = metrics[""]["data"]
    for target_id in TARGET_IDS:
        accuracy = files[f"metrics/{target_id}/accuracy.json"]["data"]
        performance = files[f"metrics/{target_id}/performance.json"]["data"]
        assert accuracy["method"] == "measured"
        assert 0.9 < accuracy["cosine_mean"] <= 1.0
        assert performance["p95_ms"] > 0
        assert performance["artifact_mb"] > 0


def test_report_lists_every_target(workspace):
    markdown = (workspace.root / "report" / "matrix.md").read_text(encoding="utf-8")
    for target_id in TARGET_IDS:
        assert f"`{target_id}`" in markdown
    latency = (workspace.root / "report" / "latency.csv").read_text(encoding="utf-8").splitlines()
    assert latency[0] == "target,p50_ms,p95_ms"
    assert len(latency) == 1 + len(TARGET_IDS)


def test_changed_stage_code_asks_to_regenerate(workspace):
    source = workspace.root / "stages" / "ort_quantize.py"
    original = source.read_text(encoding="utf-8")
    source.write_text(original + "\n# changed\n", encoding="utf-8")
    try:
        completed = run_dvc(["repro"], workspace.root, timeout_s=600)
    finally:
        source.write_text(original, encoding="utf-8")
    assert completed.returncode != 0
    # ort_calibrate reads ort_quantize.py too, and DVC may reach either stage first.
    assert re.search(r"the source code of stage kind ort_(calibrate|quantize) changed", completed.stdout + completed.stderr)
    assert "python -m sarvam_pipeline.dvc compile --targets tiny" in completed.stdout + completed.stderr

    # DVC deleted the outputs of the stage it tried to run, and restores them from its cache.
    dvc_ok(workspace.root, "checkout")
    assert ran_stages(dvc_ok(workspace.root, "repro")) == set()


def test_recipe_change_reruns_downstream_only(workspace):
    write_targets(workspace.root, calibration_samples=8)
    assert compile_tiny(workspace.root).returncode == 0
    ran = ran_stages(dvc_ok(workspace.root, "repro"))

    downstream = {
        "ort_quantize-tiny_bert-int8_static",
        "validate-tiny_bert-onnxruntime-int8_static",
        "benchmark-tiny_bert-onnxruntime-int8_static",
        "numeric_gap-tiny_bert-onnxruntime-int8_static",
        "ort_calibrate-tiny_bert-minmax-8",
    }
    # The report reruns when a metrics file it reads changed, which new latencies almost always do.
    assert ran - {"report"} == downstream
    assert ran_stages(dvc_ok(workspace.root, "repro")) == set()


def test_pushed_artifacts_pull_into_clone(workspace, tmp_path):
    remote = tmp_path / "remote"
    dvc_ok(workspace.root, "remote", "add", "--default", "local", str(remote))
    commit_all(workspace.root, "Build the matrix")
    dvc_ok(workspace.root, "push")

    clone = tmp_path / "clone"
    git(["clone", "--quiet", str(workspace.root), str(clone)], tmp_path)
    dvc_ok(clone, "pull")

    nodes = yaml.safe_load((clone / "params.yaml").read_text(encoding="utf-8"))["nodes"]
    for entry in nodes.values():
        assert (clone / "artifacts" / entry["kind"] / entry["key"] / "manifest.json").is_file()
    assert ran_stages(dvc_ok(clone, "repro")) == set()
    assert (clone / ".dvc" / "tmp" / "site_cache" / "repo").is_dir()
