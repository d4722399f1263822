"""Two artifact stores, as two sweep workers, sharing built nodes through one local-folder DVC remote."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import compose, tiny_overrides
from sarvam_pipeline.compiler import compile_plan
from sarvam_pipeline.errors import ConfigError
from sarvam_pipeline.executor import LocalExecutor
from sarvam_pipeline.store import MANIFEST, ArtifactStore
from sarvam_pipeline.store_remote import StoreRemote
from sarvam_pipeline.target import Target


def worker_config(model_dir: Path, root: Path, remote: Path, report_dir: Path):
    return compose([*tiny_overrides(model_dir, root), f"store.remote={remote}", f"report_dir={report_dir}", "runtime=openvino", "quant=fp16"])


def stage_statuses(report_dir: Path) -> dict[str, str]:
    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    return {stage["key"]: stage["status"] for stage in report["stages"]}


@pytest.fixture(scope="module")
def shared(tiny_model_dir, tmp_path_factory) -> dict:
    """Worker A builds the target into its store and the remote; worker B then runs the same target."""
    from sarvam_pipeline.cli import run_target

    root = tmp_path_factory.mktemp("remote_sharing")
    remote = root / "dvc_remote"
    workers = {}
    for name in ("a", "b"):
        config = worker_config(tiny_model_dir, root / f"store_{name}", remote, root / f"report_{name}")
        assert run_target(config) == 0
        workers[name] = {"store": root / f"store_{name}", "report": root / f"report_{name}"}
    plan = compile_plan([Target.from_config(worker_config(tiny_model_dir, root / "unused", remote, root / "unused"))])
    return {"root": root, "remote": remote, "plan": plan, **workers}


def test_worker_a_builds_and_pushes_every_node(shared):
    statuses = stage_statuses(shared["a"]["report"])
    assert statuses and set(statuses.values()) == {"ran"}
    for node in shared["plan"].order():
        assert (shared["remote"] / node.kind / node.key / MANIFEST).is_file(), node.label


def test_worker_b_reuses_without_building(shared):
    statuses = stage_statuses(shared["b"]["report"])
    assert set(statuses) == set(stage_statuses(shared["a"]["report"]))
    assert set(statuses.values()) == {"cached"}
    report = json.loads((shared["b"]["report"] / "report.json").read_text(encoding="utf-8"))
    assert {stage["reason"] for stage in report["stages"]} == {f"fetched from store remote {shared['remote']}"}


def test_worker_b_manifests_are_worker_a_records(shared):
    # A manifest records when and where its node was built, so equal manifests mean B built nothing itself.
    for node in shared["plan"].order():
        built_by_a = (shared["a"]["store"] / node.kind / node.key / MANIFEST).read_text(encoding="utf-8")
        fetched_by_b = (shared["b"]["store"] / node.kind / node.key / MANIFEST).read_text(encoding="utf-8")
        assert fetched_by_b == built_by_a, node.label


def copy_remote(shared, tmp_path: Path) -> Path:
    remote = tmp_path / "remote"
    shutil.copytree(shared["remote"], remote)
    return remote


def run_worker(plan, root: Path, remote: Path) -> dict[str, str]:
    outcomes = LocalExecutor(ArtifactStore(root), show_progress=False, remote=StoreRemote(str(remote))).run(plan)
    return {outcome.node.kind: outcome.status for outcome in outcomes.values()}


def test_corrupt_remote_entry_rebuilt_and_replaced(shared, tmp_path):
    remote = copy_remote(shared, tmp_path)
    export = next(node for node in shared["plan"].order() if node.kind == "export_onnx")
    entry = remote / export.kind / export.key
    onnx_file = next(path for path in entry.rglob("*.onnx"))
    with open(onnx_file, "ab") as handle:
        handle.write(b"tampered")

    statuses = run_worker(shared["plan"], tmp_path / "store_c", remote)
    assert statuses["export_onnx"] == "ran"
    assert {status for kind, status in statuses.items() if kind != "export_onnx"} == {"cached"}
    # The rebuilt node replaced the corrupt entry, so a further worker fetches it.
    assert ArtifactStore(tmp_path / "store_c").verify(entry, export) is None
    assert run_worker(shared["plan"], tmp_path / "store_d", remote)["export_onnx"] == "cached"


def test_partial_remote_entry_counts_as_absent(shared, tmp_path):
    remote = copy_remote(shared, tmp_path)
    dataset = next(node for node in shared["plan"].order() if node.kind == "dataset")
    # An upload cut off before its last file: the manifest is pushed last, so it is the one missing.
    (remote / dataset.kind / dataset.key / MANIFEST).unlink()

    statuses = run_worker(shared["plan"], tmp_path / "store_c", remote)
    assert statuses["dataset"] == "ran"
    assert (remote / dataset.kind / dataset.key / MANIFEST).is_file()


def test_named_dvc_remote_resolved_from_config(shared, tmp_path, monkeypatch):
    from dvc.repo import Repo

    repository = Repo.init(tmp_path / "repo", no_scm=True)
    with repository.config.edit() as config:
        config["remote"]["shared"] = {"url": str(shared["remote"])}
    monkeypatch.chdir(tmp_path / "repo")

    remote = StoreRemote("shared")
    assert Path(remote.path) == shared["remote"]
    assert Path(StoreRemote("remote://shared/kinds").path) == shared["remote"] / "kinds"
    statuses = run_worker(shared["plan"], tmp_path / "store_c", Path(remote.path))
    assert set(statuses.values()) == {"cached"}


def test_unknown_remote_name_rejected():
    with pytest.raises(ConfigError, match=r"invalid store.remote 'nosuchremote': no DVC remote of that name .*; valid choices: \(none\)"):
        StoreRemote("nosuchremote")


def test_remote_without_dvc_plugin_rejected():
    try:
        import dvc_s3  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("dvc-s3 is installed, so s3:// URLs open")
    with pytest.raises(ConfigError, match=r"invalid store.remote 's3://bucket/store': ImportError: .*'dvc-s3'"):
        StoreRemote("s3://bucket/store")
