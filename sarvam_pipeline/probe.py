"""Host probe: what this machine can run (OS, CPU, ONNX Runtime, OpenVINO, NVIDIA driver, TensorRT, Core ML, LiteRT).

``probe_host()`` returns a JSON-ready dict with every field of ``PROBE_FIELDS`` present. A component that is
missing or fails when queried keeps its fields, set to null, false or empty, and its ``reason`` field
gives the cause. ``sarvam_pipeline.select`` evaluates the same shape on a device, so hand-written probes of
other hosts start from ``empty_probe()``.

Run ``python -m sarvam_pipeline.probe`` for a summary or ``--json`` for the full dict.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import platform
import sys
from importlib import metadata
from typing import Any

logger = logging.getLogger(__name__)

PROBE_SCHEMA_VERSION = 1

# Every section and field probe_host() returns, with the value it has when the component is absent.
PROBE_FIELDS: dict[str, dict[str, Any]] = {
    "os": {"name": None, "arch": None, "version": None, "build": None, "release": None, "distribution": None},
    "cpu": {"model": None, "vendor": None, "count": None, "flags": [], "isa": {}, "reason": None},
    "python": {"version": None, "implementation": None},
    "onnxruntime": {
        "installed": False,
        "version": None,
        "package": None,
        "cuda_version": None,
        "cuda_major": None,
        # get_available_providers() plus every plugin EP that get_ep_devices() lists.
        "providers": [],
        "available_providers": [],
        "plugin_providers": [],
        "ep_devices": [],
        # onnxruntime-qnn: the QNN plugin EP, the QNN SDK version it bundles and the QNN EP's devices. On x86_64
        # its HTP backend is a simulator.
        "qnn_plugin": {
            "installed": False,
            "version": None,
            "qnn_sdk_version": None,
            "registered": False,
            "devices": [],
            "simulator": False,
            "reason": None,
        },
        "reason": None,
    },
    "openvino": {"installed": False, "version": None, "available_devices": [], "devices": {}, "reason": None},
    "nvidia": {
        "available": False,
        "driver_version": None,
        "cuda_driver_version": None,
        # Compute capability of GPU 0, the device CUDA uses by default.
        "compute_capability": None,
        "gpus": [],
        "nvml_version": None,
        "reason": None,
    },
    "tensorrt": {"installed": False, "version": None, "reason": None},
    "coreml": {"installed": False, "version": None, "can_predict": False, "compute_devices": [], "reason": None},
    # installed: the ai-edge-litert interpreter that runs .tflite files here. converter_*: the separate
    # environment whose litert-torch converts PyTorch models (sarvam_pipeline.litert_env).
    "litert": {
        "installed": False,
        "version": None,
        "reason": None,
        "converter_installed": False,
        "converter_python": None,
        "converter_version": None,
        "converter_reason": None,
    },
    "qnn_sdk": {"installed": False, "root": None, "reason": None},
}

# ISA features that change which kernels runtimes pick, with the flag names py-cpuinfo and /proc/cpuinfo use.
ISA_FLAGS: dict[str, tuple[str, ...]] = {
    "avx2": ("avx2",),
    "fma": ("fma",),
    "f16c": ("f16c",),
    "avx512f": ("avx512f",),
    "avx512bw": ("avx512bw",),
    "avx512_vnni": ("avx512vnni", "avx512_vnni"),
    "avx512_bf16": ("avx512bf16", "avx512_bf16"),
    "avx_vnni": ("avxvnni", "avx_vnni"),
    "amx_int8": ("amx_int8", "amxint8"),
    "amx_bf16": ("amx_bf16", "amxbf16"),
    "neon": ("neon", "asimd"),
    "dotprod": ("asimddp", "dotprod"),
    "i8mm": ("i8mm",),
    "arm_bf16": ("bf16",),
    "sve": ("sve",),
}

OS_NAMES = {"linux": "linux", "darwin": "macos", "windows": "windows", "android": "android", "ios": "ipados"}
ARCH_NAMES = {"x86_64": "x86_64", "amd64": "x86_64", "x64": "x86_64", "arm64": "arm64", "aarch64": "arm64", "armv8": "arm64"}


def empty_probe() -> dict[str, Any]:
    """Return a probe with every field present and every component absent."""
    return json.loads(json.dumps({"schema_version": PROBE_SCHEMA_VERSION, **PROBE_FIELDS}))


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".strip().rstrip(":")


def _package_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def probe_os() -> dict[str, Any]:
    """Describe the OS: normalized name and arch, version (macOS product version, Windows build, Linux kernel)."""
    section = dict(PROBE_FIELDS["os"])
    name = OS_NAMES.get(platform.system().lower(), platform.system().lower())
    section["name"] = name
    # NOTE: an x64 Python under Windows on Arm emulation reports AMD64, so arch is the interpreter's, which is
    # what decides which wheels (and so which execution providers) can load.
    section["arch"] = ARCH_NAMES.get(platform.machine().lower(), platform.machine().lower())
    section["release"] = platform.release()

    if name == "macos":
        section["version"] = platform.mac_ver()[0] or None
    elif name == "windows":
        version = platform.win32_ver()[1]
        section["version"] = version or None
        parts = version.split(".")
        section["build"] = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None
    else:
        # The kernel release: OpenVINO's NPU plugin, for one, names a minimum kernel.
        section["version"] = platform.release()
        try:
            section["distribution"] = platform.freedesktop_os_release().get("PRETTY_NAME")
        except OSError:
            section["distribution"] = None
    return section


def probe_cpu() -> dict[str, Any]:
    """Describe the CPU model and ISA flags with py-cpuinfo.

    NOTE: py-cpuinfo 9.0 reads x86 CPUID and /proc/cpuinfo; on macOS arm64 it may report no flags.
    """
    section = dict(PROBE_FIELDS["cpu"])
    section["count"] = os.cpu_count()
    try:
        import cpuinfo

        info = cpuinfo.get_cpu_info()
    except Exception as error:  # noqa: BLE001 - py-cpuinfo runs subprocesses and parses their output
        logger.warning("py-cpuinfo failed: %s", _error_text(error))
        section["reason"] = f"py-cpuinfo failed: {_error_text(error)}"
        section["model"] = platform.processor() or None
        return section

    flags = sorted(str(flag).lower() for flag in info.get("flags", []))
    section["model"] = info.get("brand_raw") or platform.processor() or None
    section["vendor"] = info.get("vendor_id_raw") or None
    section["flags"] = flags
    section["isa"] = {feature: any(name in flags for name in names) for feature, names in ISA_FLAGS.items()}
    return section


def _ep_device_record(device: Any) -> dict[str, Any]:
    hardware = device.device
    return {
        "ep_name": device.ep_name,
        "ep_vendor": device.ep_vendor,
        "device_type": getattr(hardware.type, "name", str(hardware.type)),
        "device_vendor": hardware.vendor,
        "vendor_id": hardware.vendor_id,
        "device_id": hardware.device_id,
    }


def _register_qnn_plugin(onnxruntime: Any) -> dict[str, Any]:
    """Register the QNN plugin EP when onnxruntime-qnn (2.x) is installed.

    A plugin EP must be registered with register_execution_provider_library and selected through
    get_ep_devices(). Naming it in InferenceSession(providers=[...]) silently runs the model on the CPU EP.
    """
    record = dict(PROBE_FIELDS["onnxruntime"]["qnn_plugin"])
    try:
        qnn = importlib.import_module("onnxruntime_qnn")
    except ImportError as error:
        record["reason"] = f"onnxruntime_qnn is not importable ({_error_text(error)}); pip install onnxruntime-qnn on Windows on Arm"
        return record

    record["installed"] = True
    record["version"] = _package_version("onnxruntime-qnn")
    record["qnn_sdk_version"] = getattr(getattr(qnn, "build_and_package_info", None), "qnn_version", None)
    try:
        onnxruntime.register_execution_provider_library("QNNExecutionProvider", qnn.get_library_path())
        record["registered"] = True
    except Exception as error:  # noqa: BLE001 - ORT raises its own Fail/RuntimeError types
        if "already registered" in str(error).lower():
            record["registered"] = True
        else:
            logger.warning("registering the QNN plugin EP failed: %s", _error_text(error))
            record["reason"] = f"register_execution_provider_library failed: {_error_text(error)}"
    if record["registered"] and hasattr(onnxruntime, "get_ep_devices"):
        record["devices"] = [
            _ep_device_record(device) for device in onnxruntime.get_ep_devices() if device.ep_name == "QNNExecutionProvider"
        ]
        # The HTP backend of the x86_64 wheels simulates the Hexagon NPU.
        record["simulator"] = platform.machine().lower() in ("x86_64", "amd64")
    return record


def probe_onnxruntime() -> dict[str, Any]:
    """Describe ONNX Runtime: version, build package, CUDA version, providers and plugin EP devices."""
    section = json.loads(json.dumps(PROBE_FIELDS["onnxruntime"]))
    try:
        import onnxruntime
    except Exception as error:  # noqa: BLE001 - a broken GPU build raises OSError or ImportError
        section["reason"] = f"onnxruntime is not importable: {_error_text(error)}"
        return section

    section["installed"] = True
    section["version"] = onnxruntime.__version__
    try:
        from onnxruntime.capi import onnxruntime_validation

        package, _, cuda_version = onnxruntime_validation.get_package_name_and_version_info()
        section["package"] = package or None
        section["cuda_version"] = cuda_version or None
        section["cuda_major"] = cuda_version.split(".")[0] if cuda_version else None
    except Exception as error:  # noqa: BLE001 - a private module; its absence only loses the package name
        logger.debug("onnxruntime_validation unavailable: %s", _error_text(error))

    section["qnn_plugin"] = _register_qnn_plugin(onnxruntime)
    section["available_providers"] = list(onnxruntime.get_available_providers())
    if hasattr(onnxruntime, "get_ep_devices"):
        section["ep_devices"] = [_ep_device_record(device) for device in onnxruntime.get_ep_devices()]
    ep_names = sorted({device["ep_name"] for device in section["ep_devices"]})
    section["plugin_providers"] = [name for name in ep_names if name not in section["available_providers"]]
    section["providers"] = section["available_providers"] + section["plugin_providers"]
    return section


def _json_ready(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    return str(value)


def probe_openvino() -> dict[str, Any]:
    """Describe OpenVINO: version, devices and their FULL_DEVICE_NAME and OPTIMIZATION_CAPABILITIES."""
    section = json.loads(json.dumps(PROBE_FIELDS["openvino"]))
    try:
        import openvino
    except Exception as error:  # noqa: BLE001 - a missing shared library raises OSError
        section["reason"] = f"openvino is not importable: {_error_text(error)}"
        return section

    section["installed"] = True
    section["version"] = openvino.get_version()
    try:
        core = openvino.Core()
        section["available_devices"] = list(core.available_devices)
    except Exception as error:  # noqa: BLE001 - plugin discovery failures surface as RuntimeError
        section["reason"] = f"openvino.Core failed: {_error_text(error)}"
        return section

    for device in section["available_devices"]:
        properties: dict[str, Any] = {}
        # NPU_DRIVER_VERSION exists on the NPU only; reading it shows which driver OpenVINO found.
        for name in ("FULL_DEVICE_NAME", "OPTIMIZATION_CAPABILITIES", "DEVICE_ARCHITECTURE", "NPU_DRIVER_VERSION"):
            try:
                properties[name] = _json_ready(core.get_property(device, name))
            except Exception:  # noqa: BLE001 - an unsupported property raises RuntimeError
                continue
        section["devices"][device] = properties
    return section


def probe_nvidia() -> dict[str, Any]:
    """Describe the NVIDIA driver and GPUs through NVML (nvidia-ml-py); absent with the NVML error otherwise."""
    section = json.loads(json.dumps(PROBE_FIELDS["nvidia"]))
    try:
        import pynvml
    except ImportError as error:
        section["reason"] = f"nvidia-ml-py is not installed: {_error_text(error)}"
        return section

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        section["reason"] = f"NVML is unavailable: {error}"
        return section

    try:
        section["driver_version"] = _text(pynvml.nvmlSystemGetDriverVersion())
        section["nvml_version"] = _text(pynvml.nvmlSystemGetNVMLVersion())
        # NVML reports the newest CUDA version the driver supports as 1000 * major + 10 * minor.
        cuda = pynvml.nvmlSystemGetCudaDriverVersion_v2()
        section["cuda_driver_version"] = f"{cuda // 1000}.{(cuda % 1000) // 10}"
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            section["gpus"].append(
                {
                    "index": index,
                    "name": _text(pynvml.nvmlDeviceGetName(handle)),
                    "compute_capability": f"{major}.{minor}",
                    "memory_mb": pynvml.nvmlDeviceGetMemoryInfo(handle).total // (1024 * 1024),
                }
            )
        section["available"] = bool(section["gpus"])
        section["compute_capability"] = section["gpus"][0]["compute_capability"] if section["gpus"] else None
        if not section["gpus"]:
            section["reason"] = "NVML found no GPU"
    except pynvml.NVMLError as error:
        logger.warning("NVML query failed: %s", error)
        section["reason"] = f"NVML query failed: {error}"
    finally:
        pynvml.nvmlShutdown()
    return section


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def probe_tensorrt() -> dict[str, Any]:
    """Describe the TensorRT Python package, if it imports."""
    section = dict(PROBE_FIELDS["tensorrt"])
    try:
        import tensorrt
    except Exception as error:  # noqa: BLE001 - without CUDA libraries the import raises OSError
        section["reason"] = f"tensorrt is not importable: {_error_text(error)}"
        return section

    section["installed"] = True
    section["version"] = getattr(tensorrt, "__version__", None)
    return section


def probe_coreml(os_name: str) -> dict[str, Any]:
    """Describe coremltools and whether it can run predictions, which needs macOS and its compiled module."""
    section = json.loads(json.dumps(PROBE_FIELDS["coreml"]))
    section["version"] = _package_version("coremltools")
    section["installed"] = section["version"] is not None
    if not section["installed"]:
        section["reason"] = "coremltools is not installed"
        return section

    # Importing coremltools takes seconds (it imports torch), so hosts that cannot predict skip it.
    if os_name != "macos":
        section["reason"] = f"Core ML prediction needs macOS; this host runs {os_name}"
        return section

    try:
        from coremltools.models.model import MLModel, _MLModelProxy
    except Exception as error:  # noqa: BLE001 - a broken install raises ImportError or OSError
        section["reason"] = f"coremltools is not importable: {_error_text(error)}"
        return section

    if _MLModelProxy is None:
        section["reason"] = "coremltools has no compiled libcoremlpython module, so it cannot predict"
        return section

    section["can_predict"] = True
    try:
        section["compute_devices"] = sorted({type(device).__name__ for device in MLModel.get_available_compute_devices()})
    except Exception as error:  # noqa: BLE001 - needs macOS 14.4 or newer; older systems raise
        logger.debug("Core ML compute devices unavailable: %s", _error_text(error))
    return section


def probe_litert() -> dict[str, Any]:
    """Describe the LiteRT interpreter package (ai-edge-litert), if it imports."""
    section = dict(PROBE_FIELDS["litert"])
    try:
        importlib.import_module("ai_edge_litert.interpreter")
    except Exception as error:  # noqa: BLE001 - a wheel for another platform raises OSError
        section["reason"] = f"ai_edge_litert is not importable: {_error_text(error)}"
        return section

    section["installed"] = True
    section["version"] = _package_version("ai-edge-litert")
    return section


def probe_litert_converter(section: dict[str, Any]) -> dict[str, Any]:
    """Add the LiteRT conversion environment (interpreter path, litert-torch version) to the litert section."""
    from sarvam_pipeline.litert_env import environment_problem, environment_versions, interpreter_path

    section = dict(section)
    section["converter_python"] = str(interpreter_path())
    section["converter_reason"] = environment_problem()
    if section["converter_reason"] is None:
        section["converter_installed"] = True
        section["converter_version"] = environment_versions()["litert-torch"]
    return section


def probe_qnn_sdk() -> dict[str, Any]:
    """Describe the Qualcomm AI Runtime SDK that native QNN builds need, from QNN_SDK_ROOT or QAIRT_SDK_ROOT."""
    section = dict(PROBE_FIELDS["qnn_sdk"])
    root = os.environ.get("QNN_SDK_ROOT") or os.environ.get("QAIRT_SDK_ROOT")
    if not root:
        section["reason"] = "neither QNN_SDK_ROOT nor QAIRT_SDK_ROOT is set"
    elif not os.path.isdir(root):
        section["reason"] = f"the QNN SDK folder {root} does not exist"
    else:
        section["installed"] = True
        section["root"] = root
    return section


def probe_host() -> dict[str, Any]:
    """Probe this machine; every field of PROBE_FIELDS is present, and absent components carry a reason."""
    probe = empty_probe()
    probe["os"] = probe_os()
    probe["cpu"] = probe_cpu()
    probe["python"] = {"version": platform.python_version(), "implementation": platform.python_implementation()}
    probe["onnxruntime"] = probe_onnxruntime()
    probe["openvino"] = probe_openvino()
    probe["nvidia"] = probe_nvidia()
    probe["tensorrt"] = probe_tensorrt()
    probe["coreml"] = probe_coreml(probe["os"]["name"])
    probe["litert"] = probe_litert_converter(probe_litert())
    probe["qnn_sdk"] = probe_qnn_sdk()
    return probe


def _state(section: dict[str, Any], present: str) -> str:
    if section.get("installed") or section.get("available"):
        return present
    return f"absent ({section['reason']})"


def summary_lines(probe: dict[str, Any]) -> list[str]:
    """Return one line per component: version and providers or devices, or why it is absent."""
    system, cpu, ort, ov, nvidia = probe["os"], probe["cpu"], probe["onnxruntime"], probe["openvino"], probe["nvidia"]
    coreml = probe["coreml"]
    isa = ", ".join(name for name, present in cpu["isa"].items() if present) or "none detected"
    ort_text = f"{ort['version']}: {', '.join(ort['providers'])}"
    ov_text = f"{ov['version']}: {', '.join(ov['available_devices'])}"
    nvidia_text = f"driver {nvidia['driver_version']}, CUDA {nvidia['cuda_driver_version']}, GPU 0 sm {nvidia['compute_capability']}"
    coreml_text = f"{coreml['version'] or 'absent'}; can predict: {coreml['can_predict']}"
    if coreml["reason"]:
        coreml_text += f" ({coreml['reason']})"

    return [
        f"os          {system['name']} {system['version']} ({system['arch']})",
        f"cpu         {cpu['model']} x{cpu['count']}; ISA: {isa}",
        f"onnxruntime {_state(ort, ort_text)}",
        f"openvino    {_state(ov, ov_text)}",
        f"nvidia      {_state(nvidia, nvidia_text)}",
        f"tensorrt    {_state(probe['tensorrt'], str(probe['tensorrt']['version']))}",
        f"coreml      {coreml_text}",
        f"litert      {_state(probe['litert'], str(probe['litert']['version']))}; converter {_litert_converter_text(probe['litert'])}",
        f"qnn         {_qnn_text(ort['qnn_plugin'])}",
    ]


def _litert_converter_text(section: dict[str, Any]) -> str:
    if not section["converter_installed"]:
        return f"absent ({section['converter_reason']})"
    return f"litert-torch {section['converter_version']} ({section['converter_python']})"


def _qnn_text(plugin: dict[str, Any]) -> str:
    if not plugin["installed"]:
        return f"absent ({plugin['reason']})"
    devices = ", ".join(f"{device['ep_name']} ({device['device_type']})" for device in plugin["devices"]) or "no devices"
    simulator = "; HTP backend is a simulator on this host" if plugin["simulator"] else ""
    return f"onnxruntime-qnn {plugin['version']} (QNN SDK {plugin['qnn_sdk_version']}): {devices}{simulator}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sarvam_pipeline.probe", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the full probe as JSON")
    args = parser.parse_args(argv)

    probe = probe_host()
    if args.json:
        print(json.dumps(probe, indent=2, sort_keys=True))
    else:
        print("\n".join(summary_lines(probe)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
