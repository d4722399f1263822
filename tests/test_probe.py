"""The host probe on this machine: every field present, installed packages reported, absent ones explained."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from importlib import metadata

import onnxruntime
import pytest

from sarvam_pipeline.paths import REPO_ROOT
from sarvam_pipeline.probe import OS_NAMES, PROBE_FIELDS, empty_probe, probe_host, summary_lines

# Sections whose component may be missing, with the flag that is true when the component is present.
PRESENCE_FLAGS = {
    "onnxruntime": "installed",
    "openvino": "installed",
    "nvidia": "available",
    "tensorrt": "installed",
    "coreml": "can_predict",
    "litert": "installed",
    "qnn_sdk": "installed",
}


@pytest.fixture(scope="module")
def probe():
    return probe_host()


def missing_fields(probe: dict) -> list[str]:
    missing = []
    for section, fields in PROBE_FIELDS.items():
        if section not in probe:
            missing.append(section)
            continue
        missing.extend(f"{section}.{name}" for name in fields if name not in probe[section])
    return missing


def test_probe_has_every_field(probe):
    assert missing_fields(probe) == []
    assert probe["schema_version"] == 1


def test_empty_probe_has_every_field():
    assert missing_fields(empty_probe()) == []


def test_probe_is_json(probe):
    assert json.loads(json.dumps(probe)) == probe


def test_probe_describes_os(probe):
    assert probe["os"]["name"] == OS_NAMES.get(platform.system().lower(), platform.system().lower())
    assert probe["os"]["arch"] in ("x86_64", "arm64")
    assert probe["os"]["version"]


def test_probe_describes_cpu(probe):
    assert probe["cpu"]["count"] >= 1
    assert probe["cpu"]["model"]
    assert set(probe["cpu"]["isa"]) >= {"avx2", "avx512_vnni", "amx_int8", "neon", "i8mm"}


def test_probe_reports_onnxruntime(probe):
    ort = probe["onnxruntime"]

    assert ort["installed"] is True
    assert ort["version"] == onnxruntime.__version__
    assert "CPUExecutionProvider" in ort["providers"]
    assert set(ort["available_providers"]) <= set(ort["providers"])
    assert any(device["ep_name"] == "CPUExecutionProvider" for device in ort["ep_devices"])


def test_probe_reports_openvino(probe):
    openvino = probe["openvino"]

    assert openvino["installed"] is True
    assert "CPU" in openvino["available_devices"]
    assert openvino["devices"]["CPU"]["FULL_DEVICE_NAME"]
    assert "FP32" in openvino["devices"]["CPU"]["OPTIMIZATION_CAPABILITIES"]


def test_absent_components_have_reason(probe):
    for section, flag in PRESENCE_FLAGS.items():
        if not probe[section][flag]:
            assert probe[section]["reason"], section
    if not probe["onnxruntime"]["qnn_plugin"]["installed"]:
        assert probe["onnxruntime"]["qnn_plugin"]["reason"]


def test_probe_reports_litert(probe, monkeypatch):
    from sarvam_pipeline.litert_env import PYTHON_VARIABLE, interpreter_path
    from sarvam_pipeline.probe import probe_litert, probe_litert_converter

    litert = probe["litert"]
    # ai-edge-litert is a dependency of the project's environment; litert-torch lives in its own one.
    assert litert["installed"] is True
    assert litert["version"] == metadata.version("ai-edge-litert")
    assert litert["converter_python"] == str(interpreter_path())
    assert litert["converter_installed"] is (litert["converter_reason"] is None)

    monkeypatch.setenv(PYTHON_VARIABLE, "/nonexistent/python")
    missing = probe_litert_converter(probe_litert())
    assert missing["converter_installed"] is False
    assert "make setup-litert" in missing["converter_reason"]


def test_coreml_prediction_needs_macos(probe):
    if probe["os"]["name"] == "macos":
        pytest.skip("this host runs macOS, where prediction may work")

    assert probe["coreml"]["can_predict"] is False
    assert "macOS" in probe["coreml"]["reason"]


def test_cli_json_exits_zero():
    result = subprocess.run(
        [sys.executable, "-m", "sarvam_pipeline.probe", "--json"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert missing_fields(json.loads(result.stdout)) == []


def test_summary_names_components(probe):
    summary = "\n".join(summary_lines(probe))

    for name in ("onnxruntime", "openvino", "nvidia", "tensorrt", "coreml", "litert"):
        assert name in summary
    if not probe["nvidia"]["available"]:
        assert probe["nvidia"]["reason"] in summary


def test_probe_reports_qnn_plugin(probe):
    plugin = probe["onnxruntime"]["qnn_plugin"]
    if not plugin["installed"]:
        pytest.skip(f"onnxruntime-qnn is not installed: {plugin['reason']}")
    assert plugin["registered"] is True
    assert plugin["qnn_sdk_version"]
    assert [device["ep_name"] for device in plugin["devices"]] == ["QNNExecutionProvider"]
    assert "QNNExecutionProvider" in probe["onnxruntime"]["providers"]
