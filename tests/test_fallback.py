"""Build-time runtime choice: auto picks on this host, explicit requests that cannot run here, other hosts'
probes, and the degrade-mode chain."""

from __future__ import annotations

import pytest

from host_probes import intel_laptop, nvidia_desktop, snapdragon_laptop
from sarvam_pipeline.errors import ConfigError
from sarvam_pipeline.fallback import auto_runtime, check_entry, default_buildable, fallback_chain, main
from sarvam_pipeline.matrix import load_matrix
from sarvam_pipeline.probe import probe_host

# The choice of each chipset on a Linux x86_64 host with ONNX Runtime and OpenVINO on the CPU only.
CPU_LINUX_CHOICES = {
    "amd_ryzen_ai_9_hx370": "onnxruntime:cpu",
    "intel_core_ultra_7_155h": "openvino:CPU",
    "m3": "onnxruntime:cpu",
    "nvidia_rtx_4090": "onnxruntime:cpu",
    "snapdragon_x_elite": "onnxruntime:cpu",
    "x86_64_host": "onnxruntime:cpu",
}


@pytest.fixture(scope="module")
def host():
    return probe_host()


@pytest.fixture(scope="module")
def matrix():
    return load_matrix()


def is_cpu_only_linux(probe) -> bool:
    return (
        probe["os"]["name"] == "linux"
        and probe["os"]["arch"] == "x86_64"
        and not probe["nvidia"]["available"]
        and probe["openvino"]["available_devices"] == ["CPU"]
        and set(probe["onnxruntime"]["providers"]) - simulated_providers(probe) <= {"CPUExecutionProvider", "AzureExecutionProvider"}
    )


def simulated_providers(probe) -> set[str]:
    """Return the QNN EP when onnxruntime-qnn runs it as an HTP simulator, which runs no matrix entry on Linux."""
    return {"QNNExecutionProvider"} if probe["onnxruntime"]["qnn_plugin"]["simulator"] else set()


@pytest.mark.parametrize("chipset", sorted(CPU_LINUX_CHOICES))
def test_auto_picks_per_chipset_here(chipset, host):
    if not is_cpu_only_linux(host):
        pytest.skip("expected choices are those of a CPU-only Linux x86_64 host")

    decision = auto_runtime(chipset, host, default_buildable())

    assert decision.chosen.id == CPU_LINUX_CHOICES[chipset]
    assert decision.runs_here is True
    assert decision.requested == "auto"


@pytest.mark.parametrize("chipset", sorted(CPU_LINUX_CHOICES))
def test_auto_choice_runs_here(chipset, host, matrix):
    decision = auto_runtime(chipset, host, default_buildable())
    order = [entry.id for entry in matrix.chipset(chipset).entries]

    assert decision.chosen is not None
    assert decision.runs_here is True
    assert check_entry(decision.chosen, host) is None
    for entry, reason in decision.passed_over:
        assert order.index(entry.id) < order.index(decision.chosen.id)
        assert reason
    assert decision.chosen.id in decision.explanation()


def test_passed_over_reasons_name_cause(host):
    if not is_cpu_only_linux(host):
        pytest.skip("reasons are those of a CPU-only Linux x86_64 host")

    reasons = dict((entry.id, reason) for entry, reason in auto_runtime("intel_core_ultra_7_155h", host, default_buildable()).passed_over)

    assert "OpenVINO must list the NPU device" in reasons["openvino:NPU"]
    assert "found ['CPU']" in reasons["openvino:NPU"]


def test_coreml_request_builds_only_here(host):
    if host["os"]["name"] == "macos":
        pytest.skip("Core ML runs on macOS hosts")

    decision = auto_runtime("m3", host, default_buildable(), requested="coreml")

    assert decision.chosen.id == "coreml:CPU_AND_NE"
    assert decision.runs_here is False
    assert "Core ML prediction needs macOS" in decision.run_problem
    assert "to build only" in decision.explanation()


def test_tensorrt_request_has_reason(host):
    from sarvam_pipeline.backends.tensorrt import tensorrt_reason

    if tensorrt_reason() is None:
        pytest.skip("this host has TensorRT and an NVIDIA GPU, so it builds the engine")
    decision = auto_runtime("nvidia_rtx_4090", host, default_buildable(), requested="tensorrt")

    assert decision.chosen is None
    assert [entry.id for entry, _ in decision.passed_over] == ["tensorrt:GPU"]
    assert "needs an NVIDIA GPU with TensorRT" in decision.passed_over[0][1]
    assert "no matrix entry can be built" in decision.explanation()


def test_tensorrt_ep_request_builds_only_here(host):
    if "TensorrtExecutionProvider" in host["onnxruntime"]["providers"]:
        pytest.skip("this host has the TensorRT EP")

    decision = auto_runtime("nvidia_rtx_4090", host, default_buildable(), requested="onnxruntime:tensorrt")

    assert decision.chosen.id == "onnxruntime:tensorrt"
    assert decision.runs_here is False
    assert "ONNX Runtime must offer TensorrtExecutionProvider" in decision.run_problem


def test_unknown_request_rejected(host):
    with pytest.raises(ConfigError, match="valid choices: auto, onnxruntime"):
        auto_runtime("nvidia_rtx_4090", host, default_buildable(), requested="tensorflow")


def test_unbuildable_runtime_passed_over(host):
    decision = auto_runtime("intel_core_ultra_7_155h", intel_laptop(["CPU", "GPU", "NPU"]), {"onnxruntime"})

    assert decision.chosen.id == "onnxruntime:directml"
    assert [entry.id for entry, _ in decision.passed_over][:3] == ["openvino:NPU", "openvino:GPU", "openvino:CPU"]
    assert all("cannot be built on this host" in reason for _, reason in decision.passed_over[:3])


def test_nothing_buildable_chooses_none(host):
    decision = auto_runtime("x86_64_host", host, set())

    assert decision.chosen is None
    assert len(decision.passed_over) == len(load_matrix().chipset("x86_64_host").entries)


def test_intel_laptop_picks_npu():
    decision = auto_runtime("intel_core_ultra_7_155h", intel_laptop(["CPU", "GPU", "NPU"]), default_buildable())

    assert decision.chosen.id == "openvino:NPU"
    assert decision.passed_over == []


def test_intel_laptop_without_npu_driver_picks_gpu():
    decision = auto_runtime("intel_core_ultra_7_155h", intel_laptop(["CPU", "GPU"]), default_buildable())

    assert decision.chosen.id == "openvino:GPU"
    assert "OpenVINO must list the NPU device" in decision.passed_over[0][1]


def test_old_nvidia_driver_falls_to_directml():
    probe = nvidia_desktop(driver="472.12", cuda="11.4", os_name="windows")

    decision = auto_runtime("nvidia_rtx_4090", probe, default_buildable())
    reasons = dict((entry.id, reason) for entry, reason in decision.passed_over)

    assert decision.chosen.id == "onnxruntime:directml"
    assert "nvidia.driver_version >= 527.41, found 472.12" in reasons["onnxruntime:cuda"]
    assert "nvidia.driver_version >= 537, found 472.12" in reasons["onnxruntime:tensorrt"]


def test_current_nvidia_driver_picks_tensorrt_ep():
    decision = auto_runtime("nvidia_rtx_4090", nvidia_desktop(driver="570.86.15", cuda="12.8"), default_buildable())

    assert decision.chosen.id == "onnxruntime:tensorrt"
    assert [entry.id for entry, _ in decision.passed_over] == ["tensorrt:GPU"]


def test_cuda13_build_needs_driver_580(matrix):
    probe = nvidia_desktop(driver="570.86.15", cuda="12.8")
    probe["onnxruntime"].update(cuda_version="13.0", cuda_major="13")
    cuda_entry = next(entry for entry in matrix.chipset("nvidia_rtx_4090").entries if entry.id == "onnxruntime:cuda")

    assert "nvidia.driver_version >= 580, found 570.86.15" in check_entry(cuda_entry, probe)


def test_snapdragon_with_qnn_picks_npu():
    decision = auto_runtime("snapdragon_x_elite", snapdragon_laptop(qnn=True), default_buildable())

    assert decision.chosen.id == "onnxruntime:qnn"


def test_fallback_chain_here(host):
    if not is_cpu_only_linux(host):
        pytest.skip("chains are those of a CPU-only Linux x86_64 host")

    assert [entry.id for entry in fallback_chain("intel_core_ultra_7_155h", "openvino:NPU", host)] == ["openvino:CPU"]
    assert [entry.id for entry in fallback_chain("snapdragon_x_elite", "onnxruntime:qnn", host)] == ["onnxruntime:cpu"]
    assert fallback_chain("m3", "coreml", host) == []


def test_fallback_chain_starts_with_built_entry():
    chain = fallback_chain("intel_core_ultra_7_155h", "openvino:GPU", intel_laptop(["CPU", "GPU", "NPU"]))

    assert [entry.id for entry in chain] == ["openvino:GPU", "openvino:NPU", "openvino:CPU"]


def test_fallback_chain_stays_in_runtime():
    chain = fallback_chain("nvidia_rtx_4090", "onnxruntime", nvidia_desktop(driver="470.82.01", cuda="11.4"))

    assert [entry.id for entry in chain] == ["onnxruntime:cpu"]


def test_fallback_chain_rejects_other_runtime(host):
    with pytest.raises(ConfigError, match="valid choices"):
        fallback_chain("nvidia_rtx_4090", "openvino", host)


def test_cli_prints_decision(capsys):
    assert main(["x86_64_host"]) == 0
    assert "chipset x86_64_host, request auto: chose" in capsys.readouterr().out


def test_cli_rejects_unknown_chipset(capsys):
    assert main(["nvidia_rtx_4080"]) == 2
    assert "did you mean 'nvidia_rtx_4090'" in capsys.readouterr().err
