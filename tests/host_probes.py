"""Hand-written probes of hosts this test machine is not: the shape of probe_host(), with values as those
machines report them."""

from __future__ import annotations

from typing import Any

from sarvam_pipeline.probe import empty_probe


def _with_onnxruntime(probe: dict[str, Any], providers: list[str], plugin_providers: list[str] = ()) -> None:
    ort = probe["onnxruntime"]
    ort.update(installed=True, version="1.32.0", package="onnxruntime", reason=None)
    ort["available_providers"] = list(providers)
    ort["plugin_providers"] = list(plugin_providers)
    ort["providers"] = list(providers) + list(plugin_providers)
    ort["ep_devices"] = [
        {"ep_name": name, "ep_vendor": "", "device_type": "CPU", "device_vendor": "", "vendor_id": 0, "device_id": 0}
        for name in ort["providers"]
    ]


def snapdragon_laptop(qnn: bool) -> dict[str, Any]:
    """A Snapdragon X Elite laptop on Windows 11 24H2 with native arm64 Python; QNN via the plugin EP when qnn."""
    probe = empty_probe()
    probe["os"].update(name="windows", arch="arm64", version="10.0.26100", build=26100, release="11")
    probe["cpu"].update(model="Snapdragon(R) X Elite - X1E78100 - Qualcomm(R) Oryon(TM) CPU", count=12)
    _with_onnxruntime(probe, ["DmlExecutionProvider", "CPUExecutionProvider"], ["QNNExecutionProvider"] if qnn else [])
    if qnn:
        probe["onnxruntime"]["qnn_plugin"].update(installed=True, version="2.5.0", registered=True)
        probe["onnxruntime"]["ep_devices"][-1]["device_type"] = "NPU"
    else:
        probe["onnxruntime"]["qnn_plugin"]["reason"] = "onnxruntime_qnn is not importable"
    probe["nvidia"]["reason"] = "NVML is unavailable: NVML Shared Library Not Found"
    return probe


def nvidia_desktop(driver: str, cuda: str, os_name: str = "linux") -> dict[str, Any]:
    """An RTX 4090 desktop with onnxruntime-gpu (TensorRT, CUDA, and DirectML on Windows) and this NVIDIA driver."""
    probe = empty_probe()
    version = "10.0.22631" if os_name == "windows" else "6.8.0-45-generic"
    probe["os"].update(name=os_name, arch="x86_64", version=version)
    probe["cpu"].update(model="AMD Ryzen 9 7950X 16-Core Processor", count=32)
    providers = ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
    if os_name == "windows":
        providers.append("DmlExecutionProvider")
    _with_onnxruntime(probe, providers + ["CPUExecutionProvider"])
    probe["onnxruntime"].update(package="onnxruntime-gpu", cuda_version="12.8", cuda_major="12")
    probe["nvidia"].update(
        available=True,
        driver_version=driver,
        cuda_driver_version=cuda,
        compute_capability="8.9",
        gpus=[{"index": 0, "name": "NVIDIA GeForce RTX 4090", "compute_capability": "8.9", "memory_mb": 24564}],
        reason=None,
    )
    return probe


def m3_mac(macos: str) -> dict[str, Any]:
    """An M3 MacBook Air with coremltools and the onnxruntime wheel (CoreML EP) on this macOS version."""
    probe = empty_probe()
    probe["os"].update(name="macos", arch="arm64", version=macos, release="24.1.0")
    probe["cpu"].update(model="Apple M3", count=8)
    _with_onnxruntime(probe, ["CoreMLExecutionProvider", "AzureExecutionProvider", "CPUExecutionProvider"])
    probe["coreml"].update(
        installed=True,
        version="9.0",
        can_predict=True,
        compute_devices=["MLCPUComputeDevice", "MLGPUComputeDevice", "MLNeuralEngineComputeDevice"],
    )
    probe["nvidia"]["reason"] = "NVML is unavailable: NVML Shared Library Not Found"
    return probe


def intel_laptop(devices: list[str]) -> dict[str, Any]:
    """A Core Ultra 7 155H laptop on Windows 11 23H2 with OpenVINO listing these devices."""
    probe = empty_probe()
    probe["os"].update(name="windows", arch="x86_64", version="10.0.22631", build=22631)
    probe["cpu"].update(model="Intel(R) Core(TM) Ultra 7 155H", count=22)
    _with_onnxruntime(probe, ["DmlExecutionProvider", "CPUExecutionProvider"])
    probe["openvino"].update(installed=True, version="2026.4.1", available_devices=list(devices), reason=None)
    probe["openvino"]["devices"] = {device: {"FULL_DEVICE_NAME": f"Intel {device}"} for device in devices}
    return probe
