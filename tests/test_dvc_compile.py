"""Compiling a targets config into dvc.yaml and params.yaml, without running DVC."""

from __future__ import annotations

import json

import pytest
import yaml
from dvc.stage.utils import is_valid_name

from conftest import compose, tiny_overrides
from sarvam_pipeline.compiler import compile_plan
from sarvam_pipeline.dvc.config import ExtraTarget, TargetsConfig, check_pipeline_folder, load_targets_config
from sarvam_pipeline.dvc.generate import compile_pipeline
from sarvam_pipeline.dvc.metrics import accuracy_metrics, performance_metrics
from sarvam_pipeline.dvc.naming import REPORT_STAGE
from sarvam_pipeline.dvc.targets import expand_targets
from sarvam_pipeline.errors import ConfigError
from sarvam_pipeline.paths import conf_dir, group_options
from sarvam_pipeline.target import Target
from stages import ROOT, stage_source_files

TINY_TARGETS = [
    ExtraTarget(chipset="x86_64_host", runtime="onnxruntime", quant="int8_dynamic"),
    ExtraTarget(chipset="x86_64_host", runtime="openvino", quant="int8_static"),
]


@pytest.fixture
def tiny_config(tiny_model_dir):
    def make(pipeline: str = ".", targets=TINY_TARGETS, extra_overrides: tuple[str, ...] = ()) -> TargetsConfig:
        overrides = [*tiny_overrides(tiny_model_dir), "quant.calibration.samples=16", *extra_overrides]
        return TargetsConfig(pipeline=pipeline, chipsets=[], targets=list(targets), overrides=overrides)

    return make


def parse(generated, layout_path: str) -> dict:
    return yaml.safe_load(generated.files[layout_path])


def read_conf(group: str, name: str) -> dict:
    return yaml.safe_load((conf_dir() / group / f"{name}.yaml").read_text(encoding="utf-8"))


def default_pairs(model: str, chipset: str) -> set[str]:
    """Return the ids of a chipset's targets at each supported runtime's default recipe."""
    runtimes = read_conf("chipset", chipset)["runtimes"]
    return {f"{model}/{chipset}/{runtime}/{read_conf('runtime', runtime)['default_quant']}" for runtime in runtimes}


def test_default_matrix_is_every_supported_pair():
    expected = set()
    for chipset in group_options("chipset"):
        expected |= default_pairs("minilm_l6", chipset)
    targets = expand_targets(load_targets_config("default"))
    assert {item.target.id for item in targets} == expected


def test_listed_recipes_are_added(tiny_config):
    config = tiny_config(targets=[])
    config.chipsets = ["x86_64_host"]
    config.recipes = ["fp32"]
    accepting = set(read_conf("quant", "fp32")["runtimes"]) & set(read_conf("chipset", "x86_64_host")["runtimes"])
    expected = default_pairs("tiny_bert", "x86_64_host")
    expected |= {f"tiny_bert/x86_64_host/{runtime}/fp32" for runtime in accepting}
    assert "tiny_bert/x86_64_host/onnxruntime/fp32" in expected
    assert {item.target.id for item in expand_targets(config)} == expected


def test_shared_nodes_get_one_stage(tiny_config):
    generated = compile_pipeline(tiny_config(), "tiny")
    stages = parse(generated, "dvc.yaml")["stages"]
    kinds = [name.split("-")[0] for name in stages]
    assert kinds.count("export_onnx") == 1
    assert kinds.count("dataset") == 1
    assert kinds.count("reference") == 1
    assert kinds.count("validate") == 2
    assert generated.stages == len(stages) - 1
    assert generated.nodes == generated.stages
    assert generated.nodes < generated.nodes_without_sharing


def test_stage_names_valid_for_dvc(tiny_config):
    stages = parse(compile_pipeline(tiny_config(), "tiny"), "dvc.yaml")["stages"]
    for name in stages:
        assert is_valid_name(name), name
    assert "export_onnx-tiny_bert-encoder" in stages
    assert "ort_quantize-tiny_bert-int8_dynamic" in stages
    assert "validate-tiny_bert-openvino-int8_static" in stages


def test_stage_lists_deps_params_outs(tiny_config):
    generated = compile_pipeline(tiny_config(), "tiny")
    stages = parse(generated, "dvc.yaml")["stages"]
    nodes = parse(generated, "params.yaml")["nodes"]
    for name, entry in nodes.items():
        stage = stages[name]
        assert stage["params"] == [{"params.yaml": [f"nodes.{name}"]}]
        assert stage["outs"] == [f"artifacts/{entry['kind']}/{entry['key']}"]
        for reference in entry["inputs"].values():
            upstream = nodes[reference["stage"]]
            assert f"artifacts/{upstream['kind']}/{upstream['key']}" in stage["deps"]
        for path in stage_source_files(entry["kind"]):
            assert path.relative_to(ROOT).as_posix() in stage["deps"]
        assert stage["cmd"] == f"python -m sarvam_pipeline.dvc run --pipeline . {name}"


def test_validation_and_benchmark_write_metrics(tiny_config):
    stages = parse(compile_pipeline(tiny_config(), "tiny"), "dvc.yaml")["stages"]
    expected = {
        "validate-tiny_bert-onnxruntime-int8_dynamic": "metrics/tiny_bert/x86_64_host/onnxruntime/int8_dynamic/"
        "accuracy.json",
        "benchmark-tiny_bert-openvino-int8_static": "metrics/tiny_bert/x86_64_host/openvino/int8_static/"
        "performance.json",
    }
    for name, path in expected.items():
        assert stages[name]["metrics"] == [{path: {"cache": False}}]
    assert "metrics" not in stages["export_onnx-tiny_bert-encoder"]


def test_report_stage_declares_plots(tiny_config):
    report = parse(compile_pipeline(tiny_config(), "tiny"), "dvc.yaml")["stages"][REPORT_STAGE]
    plots = [next(iter(entry)) for entry in report["plots"]]
    assert plots == ["report/accuracy.csv", "report/latency.csv", "report/size.csv"]
    assert report["params"] == [{"params.yaml": ["targets"]}]
    assert "metrics/tiny_bert/x86_64_host/openvino/int8_static/accuracy.json" in report["deps"]


def test_compile_is_deterministic(tiny_config):
    first = compile_pipeline(tiny_config(), "tiny")
    second = compile_pipeline(tiny_config(), "tiny")
    assert first.files == second.files
    for text in first.files.values():
        assert text.startswith("# Generated by `python -m sarvam_pipeline.dvc compile --targets tiny`")


def test_subfolder_pipeline_runs_from_root(tiny_config):
    generated = compile_pipeline(tiny_config(pipeline="pipelines/small"), "tiny")
    assert set(generated.files) == {"pipelines/small/dvc.yaml", "pipelines/small/params.yaml"}
    stage = parse(generated, "pipelines/small/dvc.yaml")["stages"]["export_onnx-tiny_bert-encoder"]
    assert stage["wdir"] == "../.."
    assert stage["outs"][0].startswith("pipelines/small/artifacts/export_onnx/")
    assert stage["params"] == [{"pipelines/small/params.yaml": ["nodes.export_onnx-tiny_bert-encoder"]}]


def test_keys_match_direct_run(tiny_model_dir):
    # The generator names the default recipe; the direct run leaves quant unset and gets the same recipe.
    config = TargetsConfig(
        chipsets=[],
        targets=[ExtraTarget(chipset="x86_64_host", runtime="onnxruntime")],
        overrides=tiny_overrides(tiny_model_dir),
    )
    generated = compile_pipeline(config, "tiny")
    keys = {entry["key"] for entry in parse(generated, "params.yaml")["nodes"].values()}
    direct = Target.from_config(compose([*tiny_overrides(tiny_model_dir), "runtime=onnxruntime"]))
    assert direct.quant["name"] == "int8_dynamic"
    assert set(compile_plan([direct]).graph.nodes) == keys


def test_recipe_change_changes_downstream_keys_only(tiny_config):
    changed_config = tiny_config(extra_overrides=("quant.calibration.samples=8",))
    before = parse(compile_pipeline(tiny_config(), "tiny"), "params.yaml")["nodes"]
    after = parse(compile_pipeline(changed_config, "tiny"), "params.yaml")["nodes"]
    changed = {name for name in before if before[name]["key"] != after[name]["key"]}
    assert changed == {
        "openvino_compress-tiny_bert-int8_static",
        "validate-tiny_bert-openvino-int8_static",
        "benchmark-tiny_bert-openvino-int8_static",
        "numeric_gap-tiny_bert-openvino-int8_static",
    }


def test_unknown_chipset_one_line_error(tiny_config):
    config = tiny_config(targets=[])
    config.chipsets = ["m4"]
    with pytest.raises(ConfigError) as error:
        expand_targets(config)
    assert "invalid chipset 'm4'" in str(error.value)
    assert "valid choices" in str(error.value)


def test_recipe_no_runtime_accepts(tiny_config):
    config = tiny_config(targets=[])
    config.chipsets = ["x86_64_host"]
    config.recipes = ["palettize_4bit"]
    with pytest.raises(ConfigError, match="palettize_4bit"):
        expand_targets(config)


def test_unsupported_runtime_names_target(tiny_config):
    config = tiny_config(targets=[ExtraTarget(chipset="m3", runtime="openvino")])
    with pytest.raises(ConfigError, match="chipset m3 does not support it"):
        expand_targets(config)


def test_unknown_targets_config_name():
    with pytest.raises(ConfigError, match="invalid targets 'nightly'; valid choices: ci, default"):
        load_targets_config("nightly")


def test_unknown_targets_key():
    with pytest.raises(ConfigError, match="invalid targets config"):
        load_targets_config("ci", ["chipset=[m3]"])


@pytest.mark.parametrize("folder", ["../elsewhere", "/tmp/pipeline", ".."])
def test_pipeline_folder_outside_repository(folder):
    with pytest.raises(ConfigError, match="invalid targets pipeline folder"):
        check_pipeline_folder(folder)


def test_accuracy_metrics_keep_method():
    result = {"method": "estimated", "cosine_mean": 0.9912345678, "cosine_worst": 0.95, "nn_agreement": 1.0}
    metrics = accuracy_metrics({**result, "samples": 200, "worst_text": "dropped"})
    assert metrics == {**result, "cosine_mean": 0.991235, "samples": 200}


def test_performance_metrics_needs_device():
    result = {"status": "needs_device", "reason": "Core ML runs only on macOS", "artifact_bytes": 23_000_000}
    metrics = performance_metrics(result)
    assert metrics["status"] == "needs_device"
    assert metrics["artifact_mb"] == 23.0
    assert "p95_ms" not in metrics


def test_project_dvc_config_disables_analytics():
    config = (ROOT / ".dvc" / "config").read_text(encoding="utf-8")
    assert "analytics = false" in config
    assert "check_update = false" in config


def test_metrics_json_is_sorted(tmp_path):
    from sarvam_pipeline.dvc.metrics import write_json

    write_json(tmp_path / "a" / "accuracy.json", {"b": 1, "a": 2})
    assert list(json.loads((tmp_path / "a" / "accuracy.json").read_text())) == ["a", "b"]


@pytest.mark.parametrize("name", ["default", "ci"])
def test_targets_file_composes_with_hydra(name):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from sarvam_pipeline.dvc.config import register_targets_schema

    register_targets_schema()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        composed = hydra_compose(config_name=f"targets/{name}")
    assert composed.targets.model == load_targets_config(name).model


def test_unavailable_nodes_get_no_stage(tiny_config, monkeypatch):
    from stages import get_stage

    stage_class = type(get_stage("openvino_compress"))
    monkeypatch.setattr(stage_class, "unavailable_reason", lambda self, params: "needs an NPU")
    generated = compile_pipeline(tiny_config(), "tiny")
    stages = parse(generated, "dvc.yaml")["stages"]
    params = parse(generated, "params.yaml")

    assert "openvino_convert-tiny_bert-encoder" in stages
    for name in ("openvino_compress-tiny_bert-int8_static", "validate-tiny_bert-openvino-int8_static"):
        assert name not in stages
        assert "cannot run on this host: needs an NPU" in params["pipeline"]["unavailable"][name]
    target = params["targets"]["tiny_bert/x86_64_host/openvino/int8_static"]
    assert set(target["unavailable"]) == {"accuracy", "performance"}
    assert target["validation"] is None
    report_metrics = [next(iter(entry)) for entry in stages[REPORT_STAGE]["metrics"]]
    assert report_metrics == [target["accuracy"], target["performance"]]
