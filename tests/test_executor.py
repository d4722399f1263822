"""Local executor: builds each node once, reuses verified nodes, rebuilds corrupt ones, and fails cleanly."""

from __future__ import annotations

import pytest

from sarvam_pipeline.compiler import compile_plan
from sarvam_pipeline.errors import StageError
from sarvam_pipeline.executor import LocalExecutor
from sarvam_pipeline.store import ArtifactStore


def statuses(outcomes) -> dict[str, str]:
    return {outcome.node.kind: outcome.status for outcome in outcomes.values()}


def test_second_run_is_all_cached(tiny_target, tmp_path):
    plan = compile_plan([tiny_target("runtime=onnxruntime", "quant=fp32")])
    executor = LocalExecutor(ArtifactStore(tmp_path), show_progress=False)
    first = executor.run(plan)
    assert set(statuses(first).values()) == {"ran"}
    second = executor.run(plan)
    assert set(statuses(second).values()) == {"cached"}


def test_second_target_reuses_shared_nodes(tiny_target, tmp_path):
    executor = LocalExecutor(ArtifactStore(tmp_path), show_progress=False)
    executor.run(compile_plan([tiny_target("runtime=onnxruntime", "quant=fp32")]))
    outcomes = executor.run(compile_plan([tiny_target("runtime=onnxruntime", "quant=int8_dynamic")]))
    result = statuses(outcomes)
    assert result["dataset"] == "cached"
    assert result["export_onnx"] == "cached"
    assert result["reference"] == "cached"
    assert result["ort_quantize"] == "ran"
    assert result["validate"] == "ran"


def test_rebuild_kind_runs_again(tiny_target, tmp_path):
    plan = compile_plan([tiny_target("runtime=onnxruntime", "quant=fp32")])
    store = ArtifactStore(tmp_path)
    LocalExecutor(store, show_progress=False).run(plan)
    benchmark = next(node for node in plan.order() if node.kind == "benchmark")
    first = store.read_manifest(benchmark)

    outcomes = LocalExecutor(store, show_progress=False, rebuild=["benchmark"]).run(plan)
    result = statuses(outcomes)
    assert result["benchmark"] == "ran"
    assert {status for kind, status in result.items() if kind != "benchmark"} == {"cached"}
    assert store.read_manifest(benchmark)["created"] >= first["created"]
    assert not any(path.name.startswith(".tmp-") for path in (tmp_path / "benchmark").iterdir())


def test_corrupt_artifact_is_rebuilt(tiny_target, tmp_path):
    plan = compile_plan([tiny_target("runtime=onnxruntime", "quant=fp32")])
    store = ArtifactStore(tmp_path)
    executor = LocalExecutor(store, show_progress=False)
    executor.run(plan)
    export = next(node for node in plan.order() if node.kind == "export_onnx")
    with open(store.path_for(export) / "model.onnx", "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00\x01\x02\x03")
    outcomes = executor.run(plan)
    assert statuses(outcomes)["export_onnx"] == "ran"
    assert statuses(outcomes)["validate"] == "cached"
    assert store.read_manifest(export) is not None


def test_failed_stage_leaves_no_folder(tiny_target, tmp_path):
    # More evaluation sentences than the corpus has: the dataset stage raises.
    plan = compile_plan([tiny_target("runtime=onnxruntime", "quant=fp32", "data.evaluation_samples=100000")])
    store = ArtifactStore(tmp_path)
    with pytest.raises(StageError, match="dataset"):
        LocalExecutor(store, show_progress=False).run(plan)
    dataset = next(node for node in plan.order() if node.kind == "dataset")
    assert not store.path_for(dataset).exists()
    assert not any(path.name.startswith(".tmp-") for path in (tmp_path / "dataset").iterdir())


def test_unavailable_provider_skips_validation(tiny_target, tmp_path):
    plan = compile_plan([tiny_target("runtime=onnxruntime", "quant=fp32", "runtime.options.provider=cuda")])
    outcomes = LocalExecutor(ArtifactStore(tmp_path), show_progress=False).run(plan)
    validation = next(outcome for outcome in outcomes.values() if outcome.node.kind == "validate")
    assert validation.status == "skipped"
    assert "CUDAExecutionProvider" in validation.reason


def test_manifest_records_versions_and_timing(tiny_target, tmp_path):
    plan = compile_plan([tiny_target("runtime=onnxruntime", "quant=fp32")])
    outcomes = LocalExecutor(ArtifactStore(tmp_path), show_progress=False).run(plan)
    export = next(outcome for outcome in outcomes.values() if outcome.node.kind == "export_onnx")
    assert export.manifest["key_material"]["tools"]["torch"].startswith("2.13")
    assert export.manifest["toolchain"]["onnxruntime"]
    assert export.manifest["seconds"] > 0


def test_benchmark_waits_for_other_stages(tiny_target, tmp_path, caplog):
    import threading
    import time

    from sarvam_pipeline.host_lock import HostLock

    plan = compile_plan([tiny_target("runtime=onnxruntime", "quant=fp32")])
    store = ArtifactStore(tmp_path / "store")
    lock_path = tmp_path / "host.lock"
    benchmark = next(node for node in plan.order() if node.kind == "benchmark")
    outcomes = {}

    def run() -> None:
        outcomes.update(LocalExecutor(store, show_progress=False, host_lock=HostLock(lock_path)).run(plan))

    # Another sweep job is in the middle of a stage: it holds the host lock shared.
    caplog.set_level("INFO", logger="sarvam_pipeline.host_lock")
    release = threading.Event()
    other_job_holds = threading.Event()

    def other_job() -> None:
        with HostLock(lock_path).hold(exclusive=False):
            other_job_holds.set()
            release.wait(300)

    threading.Thread(target=other_job, daemon=True).start()
    assert other_job_holds.wait(10)
    builder = threading.Thread(target=run, daemon=True)
    builder.start()

    deadline = time.monotonic() + 300
    while "waits for the other stages" not in caplog.text and builder.is_alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "waits for the other stages" in caplog.text
    assert store.read_manifest(benchmark) is None

    release.set()
    builder.join(300)
    assert outcomes[benchmark.key].status == "ran"
