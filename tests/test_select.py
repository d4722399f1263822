"""Deploy-time selection from a deploy manifest, on hand-written probes of target devices and on this host."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from host_probes import m3_mac, nvidia_desktop, snapdragon_laptop
from sarvam_pipeline.errors import ConfigError
from sarvam_pipeline.matrix import load_matrix
from sarvam_pipeline.paths import REPO_ROOT
from sarvam_pipeline.probe import probe_host
from sarvam_pipeline.select import (
    MANIFEST_SCHEMA_VERSION,
    build_manifest,
    choose,
    load_manifest,
    manifest_entry,
    unmet_requirements,
    version_at_least,
)
from sarvam_pipeline.target import load_recipe


def manifest_for(chipset: str) -> dict:
    """Build the manifest a build of every buildable matrix entry of the chipset would write."""
    matrix = load_matrix()
    artifacts = []
    for entry in matrix.chipset(chipset).entries:
        if not entry.buildable:
            continue
        recipe = load_recipe(entry.recipe)
        target_id = f"minilm_l6/{chipset}/{entry.runtime}/{entry.recipe}"
        path = f"{entry.runtime}-{entry.provider}/model"
        options = matrix.effective_options(entry)
        artifacts.append(manifest_entry(target_id, entry.runtime, options, recipe["precision"], path, chipset))
    return build_manifest(chipset, artifacts)


@pytest.fixture(scope="module")
def host():
    return probe_host()


@pytest.fixture(scope="module")
def manifests():
    return {chipset: manifest_for(chipset) for chipset in ("snapdragon_x_elite", "nvidia_rtx_4090", "m3", "x86_64_host")}


def chosen_provider(selection) -> str | None:
    return f"{selection.artifact['runtime']}:{selection.artifact['provider']}" if selection.artifact else None


def skipped_reasons(selection) -> dict[str, str]:
    return {f"{artifact['runtime']}:{artifact['provider']}": reason for artifact, reason in selection.skipped}


def test_snapdragon_with_qnn_picks_npu(manifests):
    selection = choose(manifests["snapdragon_x_elite"], snapdragon_laptop(qnn=True))

    assert chosen_provider(selection) == "onnxruntime:qnn"
    assert selection.artifact["compute_unit"] == "npu"
    assert selection.skipped == []


def test_snapdragon_without_qnn_picks_directml(manifests):
    selection = choose(manifests["snapdragon_x_elite"], snapdragon_laptop(qnn=False))

    assert chosen_provider(selection) == "onnxruntime:directml"
    assert "ONNX Runtime must offer QNNExecutionProvider" in skipped_reasons(selection)["onnxruntime:qnn"]


def test_old_nvidia_driver_skips_gpu_providers(manifests):
    selection = choose(manifests["nvidia_rtx_4090"], nvidia_desktop(driver="470.82.01", cuda="11.4"))
    reasons = skipped_reasons(selection)

    assert chosen_provider(selection) == "onnxruntime:cpu"
    assert "nvidia.driver_version >= 525.60.13, found 470.82.01" in reasons["onnxruntime:cuda"]
    assert "nvidia.cuda_driver_version >= 12.0, found 11.4" in reasons["onnxruntime:cuda"]
    assert "nvidia.driver_version >= 535, found 470.82.01" in reasons["onnxruntime:tensorrt"]
    assert "the artifact targets windows" in reasons["onnxruntime:directml"]


def test_current_nvidia_driver_picks_tensorrt_ep(manifests):
    selection = choose(manifests["nvidia_rtx_4090"], nvidia_desktop(driver="570.86.15", cuda="12.8"))

    assert chosen_provider(selection) == "onnxruntime:tensorrt"


def test_m3_mac_picks_neural_engine(manifests):
    selection = choose(manifests["m3"], m3_mac(macos="15.1"))

    assert chosen_provider(selection) == "coreml:CPU_AND_NE"
    assert selection.artifact["precision"] == "int8"


def test_old_macos_skips_coreml(manifests):
    selection = choose(manifests["m3"], m3_mac(macos="14.6"))
    reasons = skipped_reasons(selection)

    assert chosen_provider(selection) == "onnxruntime:coreml"
    assert "deployment target macOS15" in reasons["coreml:CPU_AND_NE"]
    assert "os.version >= 15.0, found 14.6" in reasons["coreml:CPU_ONLY"]


def test_this_host_runs_host_manifest(manifests, host):
    selection = choose(manifests["x86_64_host"], host)

    if host["os"]["name"] == "linux" and host["os"]["arch"] == "x86_64":
        assert chosen_provider(selection) == "onnxruntime:cpu"
        assert selection.skipped == []
    else:
        assert selection.artifact is None
        assert "the artifact targets linux" in selection.skipped[0][1]


def test_this_host_rejects_snapdragon_manifest(manifests, host):
    if host["os"]["name"] == "windows" and host["os"]["arch"] == "arm64":
        pytest.skip("this host is Windows on Arm")

    selection = choose(manifests["snapdragon_x_elite"], host)

    assert selection.artifact is None
    assert len(selection.skipped) == len(manifests["snapdragon_x_elite"]["artifacts"])
    assert "no artifact of chipset snapdragon_x_elite can run" in selection.explanation()


def test_manifest_orders_by_preference(manifests):
    manifest = manifests["nvidia_rtx_4090"]
    shuffled = dict(manifest, artifacts=list(reversed(manifest["artifacts"])))

    ranks = [artifact["preference"] for artifact in manifest["artifacts"]]
    assert ranks == sorted(ranks)
    assert chosen_provider(choose(shuffled, nvidia_desktop(driver="570.86.15", cuda="12.8"))) == "onnxruntime:tensorrt"


def test_manifest_survives_json(manifests, tmp_path):
    path = tmp_path / "deploy_manifest.json"
    path.write_text(json.dumps(manifests["m3"]), encoding="utf-8")

    selection = choose(load_manifest(path), m3_mac(macos="15.1"))

    assert chosen_provider(selection) == "coreml:CPU_AND_NE"


def test_manifest_entry_fields(manifests):
    artifact = manifests["snapdragon_x_elite"]["artifacts"][0]

    assert manifests["snapdragon_x_elite"]["schema_version"] == MANIFEST_SCHEMA_VERSION
    assert artifact["target_id"] == "minilm_l6/snapdragon_x_elite/onnxruntime/w8a16"
    assert artifact["options"] == {"provider": "qnn", "provider_options": {"backend_type": "htp"}}
    assert artifact["preference"] == 0
    rules = {check["rule"] for check in artifact["requirements"]}
    assert {"runtime:onnxruntime:qnn", "ort_qnn_windows_arm64", "target:onnxruntime:qnn"} <= rules


def test_manifest_entry_rejects_unknown_provider():
    with pytest.raises(ConfigError, match="valid choices"):
        manifest_entry("t", "onnxruntime", {"provider": "cuda"}, "fp16", "model.onnx", "m3")


def test_choose_rejects_other_schema_version(manifests):
    manifest = dict(manifests["m3"], schema_version=2)

    with pytest.raises(ValueError, match="schema_version 2"):
        choose(manifest, m3_mac(macos="15.1"))


def test_choose_rejects_incomplete_artifact():
    manifest = {"schema_version": 1, "chipset": "m3", "artifacts": [{"target_id": "t", "runtime": "coreml"}]}

    with pytest.raises(ValueError, match=r"artifacts\[0\] is missing provider"):
        choose(manifest, m3_mac(macos="15.1"))


@pytest.mark.parametrize(
    ("actual", "minimum", "expected"),
    [
        ("525.60.13", "525.60.13", True),
        ("525.105.17", "525.60.13", True),
        ("470.82.01", "525.60.13", False),
        ("12", "12.0", True),
        ("6.18.44-fc-v1252", "6.6", True),
        ("10.0.18363", "10.0.22621", False),
        ("unknown", "1.0", False),
    ],
)
def test_version_comparison(actual, minimum, expected):
    assert version_at_least(actual, minimum) is expected


def test_when_limits_check_to_os():
    checks = [
        {"rule": "r", "description": "linux needs 6.6", "field": "os.version", "op": "min_version", "value": "6.6", "when": {"os.name": "linux"}}
    ]

    assert unmet_requirements(checks, {"os": {"name": "windows", "version": "10.0.26100"}}) == []
    assert unmet_requirements(checks, {"os": {"name": "linux", "version": "5.15.0"}}) == [
        "linux needs 6.6 (needs os.version >= 6.6, found 5.15.0)"
    ]


def test_has_item_matches_ep_device():
    checks = [{"description": "QNN on the NPU", "field": "onnxruntime.ep_devices", "op": "has_item", "value": {"ep_name": "QNNExecutionProvider", "device_type": "NPU"}}]

    assert unmet_requirements(checks, snapdragon_laptop(qnn=True)) == []
    assert unmet_requirements(checks, snapdragon_laptop(qnn=False))


def test_absent_field_names_probe_reason():
    checks = [{"description": "a CUDA 12 driver", "field": "nvidia.driver_version", "op": "min_version", "value": "525"}]

    message = unmet_requirements(checks, snapdragon_laptop(qnn=True))[0]

    assert "nvidia.driver_version is unknown (NVML is unavailable: NVML Shared Library Not Found)" in message


def test_select_imports_only_stdlib():
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('sarvam_select', {str(REPO_ROOT / 'sarvam_pipeline' / 'select.py')!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "sys.modules['sarvam_select'] = module\n"
        "spec.loader.exec_module(module)\n"
        "heavy = [name for name in ('torch', 'hydra', 'omegaconf', 'numpy', 'onnxruntime', 'sarvam_pipeline') if name in sys.modules]\n"
        "print(','.join(heavy))\n"
    )

    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
