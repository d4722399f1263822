"""runtime=auto and the fallback modes on this host (Linux x86_64, CPU only)."""

from __future__ import annotations

import pytest

from conftest import compose, tiny_overrides
from sarvam_pipeline.cli import resolve_target
from sarvam_pipeline.compiler import compile_plan
from sarvam_pipeline.errors import ConfigError
from sarvam_pipeline.probe import probe_host
from sarvam_pipeline.resolve import UnavailableRuntimeError


@pytest.fixture(scope="module")
def probe():
    return probe_host()


def resolve(tiny_model_dir, *overrides):
    return resolve_target(compose(tiny_overrides(tiny_model_dir) + list(overrides)))


def test_auto_picks_first_runnable(tiny_model_dir):
    target, extra = resolve(tiny_model_dir, "runtime=auto")
    assert target.runtime["name"] == "onnxruntime"
    assert extra["runtime_decision"]["chosen"] == "onnxruntime:cpu"
    assert target.quant["name"] == "int8_dynamic"


def test_auto_keeps_given_recipe(tiny_model_dir):
    target, _ = resolve(tiny_model_dir, "runtime=auto", "quant=fp16")
    assert target.quant["name"] == "fp16"


def test_auto_on_m3_builds_coreml_and_explains(tiny_model_dir):
    target, extra = resolve(tiny_model_dir, "runtime=auto", "chipset=m3")
    decision = extra["runtime_decision"]
    assert target.runtime["name"] == "coreml"
    assert decision["chosen"].startswith("coreml")
    assert decision["runs_here"] is False
    assert "macOS" in decision["run_problem"]
    assert extra["fallback"]["ran_on"] is None


def test_auto_on_nvidia_passes_over_tensorrt(tiny_model_dir):
    target, extra = resolve(tiny_model_dir, "runtime=auto", "chipset=nvidia_rtx_4090")
    decision = extra["runtime_decision"]
    skipped = {row["entry"]: row["reason"] for row in decision["passed_over"]}
    assert decision["chosen"] == "onnxruntime:tensorrt"
    assert "needs an NVIDIA GPU with TensorRT" in skipped["tensorrt:GPU"]
    assert extra["fallback"]["ran_on"]["provider"] == "cpu"


def test_strict_rejects_missing_provider(tiny_model_dir):
    with pytest.raises(UnavailableRuntimeError, match="CUDAExecutionProvider"):
        resolve(tiny_model_dir, "chipset=nvidia_rtx_4090", "runtime.options.provider=cuda", "fallback=strict")


def test_strict_rejects_coreml_on_linux(tiny_model_dir):
    with pytest.raises(UnavailableRuntimeError, match="needs macOS"):
        resolve(tiny_model_dir, "chipset=m3", "runtime=coreml", "fallback=strict")


def test_degrade_validates_on_cpu(tiny_model_dir):
    target, extra = resolve(tiny_model_dir, "chipset=nvidia_rtx_4090", "runtime.options.provider=cuda", "quant=fp16")
    fallback = extra["fallback"]
    assert fallback["requested"]["provider"] == "cuda"
    assert fallback["ran_on"]["provider"] == "cpu"
    assert "CUDAExecutionProvider" in fallback["reason"]
    plan = compile_plan([target])
    validation = next(node for node in plan.order() if node.kind == "validate")
    assert validation.params["options"]["provider"] == "cpu"


def test_degrade_coreml_runs_nothing_here(tiny_model_dir):
    target, extra = resolve(tiny_model_dir, "chipset=m3", "runtime=coreml")
    assert extra["fallback"]["ran_on"] is None
    assert target.execution_options is None


def test_runnable_request_records_no_fallback(tiny_model_dir):
    _, extra = resolve(tiny_model_dir, "runtime=onnxruntime")
    assert extra["fallback"]["reason"] == ""


def test_invalid_fallback_mode(tiny_model_dir):
    with pytest.raises(ConfigError, match="valid choices: degrade, strict"):
        resolve(tiny_model_dir, "fallback=maybe")


def test_probe_reports_cpu_provider(probe):
    assert "CPUExecutionProvider" in str(probe["onnxruntime"])
