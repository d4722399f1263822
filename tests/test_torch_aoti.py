"""torch_aoti runtime on the tiny model: a real AOTInductor compile on the CPU, the backend and the planner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import run_stage

CPU_OPTIONS = {"device": "cpu"}


@pytest.fixture(scope="module")
def compiled(tiny_shared, tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("aoti") / "aoti_compile"
    params = {"model": tiny_shared.model, "graph": tiny_shared.model["graphs"][0], "method": "none", "device": "cpu"}
    return out, run_stage("aoti_compile", params, {}, out)


def test_compile_writes_package(compiled):
    folder, result = compiled
    assert (folder / "model.pt2").is_file()
    assert result["max_abs_diff_vs_torch"] <= 1e-4
    assert result["input_shape"]["sequence"] == 32
    assert result["input_shape"]["batch"][0] == 1


def test_compile_removes_inductor_cache(compiled):
    folder, _ = compiled
    # The stage compiles in a temporary folder next to its output and removes it afterwards.
    assert not list(folder.parent.glob("inductor_cache_*"))


def test_package_reloads_any_batch(compiled, tiny_shared):
    from sarvam_pipeline.backends import get_backend
    from stages.dataset import load_split

    evaluation = load_split(tiny_shared.dataset, "evaluation")
    session = get_backend("torch_aoti").load(compiled[0], CPU_OPTIONS, threads=1)
    for batch in (1, 3):
        output = session.run({key: array[:batch] for key, array in evaluation.items()})
        assert output.shape == (batch, 32)
        assert output.dtype == np.float32


def test_session_casts_int32_feed(compiled, tiny_shared):
    from sarvam_pipeline.backends import get_backend
    from stages.dataset import load_split

    evaluation = {key: array[:2].astype(np.int32) for key, array in load_split(tiny_shared.dataset, "evaluation").items()}
    session = get_backend("torch_aoti").load(compiled[0], CPU_OPTIONS)
    output = session.run(evaluation)
    assert output.shape == (2, 32)


def test_package_rejects_int32_tensor(compiled):
    import torch

    from sarvam_pipeline.backends import get_backend

    session = get_backend("torch_aoti").load(compiled[0], CPU_OPTIONS)
    ids = torch.ones((2, 32), dtype=torch.int32)
    mask = torch.ones((2, 32), dtype=torch.int64)
    # AOTI_RUNTIME_CHECK_INPUTS=1, set by the backend, turns a wrong dtype into an exception.
    with pytest.raises(RuntimeError, match="unmatched dtype"):
        session._runner(ids, mask)


def test_validate_matches_reference(compiled, tiny_shared, tmp_path):
    inputs = {"artifact": compiled[0], "dataset": tiny_shared.dataset, "reference": tiny_shared.reference}
    result = run_stage("validate", {"runtime": "torch_aoti", "options": CPU_OPTIONS}, inputs, tmp_path)
    assert result["cosine_mean"] > 0.9999
    assert result["cosine_worst"] > 0.9999
    assert result["placement"] == {"device": "cpu"}


def test_benchmark_measures_latency(compiled, tiny_shared, tmp_path):
    params = {"runtime": "torch_aoti", "options": CPU_OPTIONS, "warmup": 1, "iterations": 3, "threads": 1}
    inputs = {"artifact": compiled[0], "dataset": tiny_shared.dataset}
    result = run_stage("benchmark", params, inputs, tmp_path)
    assert result["status"] == "measured"
    assert result["iterations"] == 3
    assert result["artifact"] == "model.pt2"


def test_planner_rejects_fp16_without_cuda():
    import torch

    from sarvam_pipeline.runtimes import get_planner
    from sarvam_pipeline.target import load_recipe

    if torch.cuda.is_available():
        pytest.skip("this host has a CUDA device, so fp16 is accepted")
    planner = get_planner("torch_aoti")
    fp16 = load_recipe("fp16")
    assert planner.check_recipe(load_recipe("fp32"), {"device": "cpu"}) is None
    assert "device=cuda" in planner.check_recipe(fp16, {"device": "cpu"})
    assert "needs an NVIDIA GPU with CUDA" in planner.check_recipe(fp16, {"device": "cuda"})
    assert "is not one of" in planner.check_recipe(load_recipe("int8_dynamic"), {"device": "cpu"})


def test_cuda_device_unavailable_here():
    import torch

    from sarvam_pipeline.backends import get_backend
    from stages import get_stage
    from stages.aoti_compile import AotiCompileParams

    if torch.cuda.is_available():
        pytest.skip("this host has a CUDA device")
    assert get_backend("torch_aoti").unavailable_reason(CPU_OPTIONS) is None
    assert "needs an NVIDIA GPU with CUDA" in get_backend("torch_aoti").unavailable_reason({"device": "cuda"})
    assert "needs an NVIDIA GPU with CUDA" in get_stage("aoti_compile").unavailable_reason(AotiCompileParams(device="cuda"))


def test_planner_plans_compile_node(tiny_target):
    from sarvam_pipeline.compiler import compile_plan

    target = tiny_target("chipset=x86_64_host", "runtime=torch_aoti")
    plan = compile_plan([target])
    _, nodes = plan.targets[0]
    assert target.quant["name"] == "fp32"
    assert nodes.artifact.kind == "aoti_compile"
    assert nodes.artifact.params["device"] == "cpu"
    assert nodes.artifact.params["method"] == "none"
    assert nodes.validation.upstream["artifact"].key == nodes.artifact.key
