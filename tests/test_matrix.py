"""The decision matrix in conf/matrix/: it loads, agrees with conf/chipset, conf/runtime and conf/quant, and
docs/decision-matrix.md is its current rendering."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sarvam_pipeline.backends.onnxruntime import PROVIDER_NAMES
from sarvam_pipeline.errors import ConfigError
from sarvam_pipeline.matrix import (
    GPU_ONLY_RUNTIMES,
    ChipsetMatrix,
    CompatibilityRules,
    PROVIDERS,
    find_entry,
    load_matrix,
    main,
    matrix_problems,
)
from sarvam_pipeline.matrix_docs import REGENERATE_COMMAND, render_markdown
from sarvam_pipeline.paths import REPO_ROOT, conf_dir, group_options
from sarvam_pipeline.target import load_recipe

DOCS_PAGE = REPO_ROOT / "docs" / "decision-matrix.md"

# Runtime and provider pairs the matrix must cover somewhere, whatever the chipset.
REQUIRED_ENTRIES = [
    "onnxruntime:cpu",
    "onnxruntime:cuda",
    "onnxruntime:tensorrt",
    "onnxruntime:openvino",
    "onnxruntime:qnn",
    "onnxruntime:coreml",
    "onnxruntime:directml",
    "onnxruntime:vitisai",
    "openvino:CPU",
    "openvino:GPU",
    "openvino:NPU",
    "coreml:CPU_ONLY",
    "coreml:CPU_AND_GPU",
    "coreml:CPU_AND_NE",
    "tensorrt:GPU",
    "qnn:HTP",
    "litert:CPU",
]


@pytest.fixture(scope="module")
def matrix():
    return load_matrix()


def all_entries(matrix):
    return [(name, entry) for name, chipset in matrix.chipsets.items() for entry in chipset.entries]


def test_matrix_has_no_problems(matrix):
    assert matrix_problems(matrix) == []


def test_every_chipset_has_matrix(matrix):
    assert sorted(matrix.chipsets) == group_options("chipset")


def test_chipset_runtimes_in_preference_order(matrix):
    for name, chipset_matrix in matrix.chipsets.items():
        preferred = matrix.chipset_configs[name].runtimes
        first_seen = []
        for entry in chipset_matrix.entries:
            if entry.runtime in preferred and entry.runtime not in first_seen:
                first_seen.append(entry.runtime)
        assert first_seen == list(preferred), name


def test_recipes_accept_their_runtime(matrix):
    recipes = {name: load_recipe(name) for name in group_options("quant")}
    for name, entry in all_entries(matrix):
        recipe = recipes[entry.recipe]
        assert recipe["precision"] in entry.precisions, f"{name} {entry.id}"
        if entry.buildable:
            assert entry.runtime in recipe["runtimes"], f"{name} {entry.id}"


def test_providers_are_known(matrix):
    for name, entry in all_entries(matrix):
        assert entry.provider in PROVIDERS[entry.runtime], f"{name} {entry.id}"
        if entry.runtime == "onnxruntime":
            assert entry.provider in PROVIDER_NAMES, f"{name} {entry.id}"


def test_required_entries_covered(matrix):
    present = {entry.id for _, entry in all_entries(matrix)}
    missing = [entry_id for entry_id in REQUIRED_ENTRIES if entry_id not in present]
    assert missing == []


def test_unimplemented_runtimes_not_buildable(matrix):
    implemented = set(group_options("runtime"))
    for name, entry in all_entries(matrix):
        assert entry.buildable == (entry.runtime in implemented), f"{name} {entry.id}"


def test_every_buildable_runtime_has_cpu_entry(matrix):
    for name, chipset_matrix in matrix.chipsets.items():
        for runtime in {entry.runtime for entry in chipset_matrix.entries if entry.buildable} - set(GPU_ONLY_RUNTIMES):
            units = [entry.compute_unit for entry in chipset_matrix.entries if entry.runtime == runtime]
            assert "cpu" in units, f"{name} {runtime}"


def test_rules_name_their_source(matrix):
    assert matrix.rules
    for rule in matrix.rules:
        assert rule.source.strip(), rule.id
        assert rule.checks, rule.id


def test_rules_apply_by_options(matrix):
    entry = matrix.chipset("m3").entries[0]

    assert [rule.id for rule in matrix.rules_for(entry)] == ["coreml_target_macos15"]
    options = dict(matrix.effective_options(entry), minimum_deployment_target="macOS14")
    assert [rule.id for rule in matrix.rules_for(entry, options)] == ["coreml_target_macos14"]


def test_find_entry_matches_runtime_options(matrix):
    chipset_matrix = matrix.chipset("snapdragon_x_elite")

    rank, entry = find_entry(chipset_matrix, "onnxruntime", {"provider": "qnn", "provider_options": {}})
    assert (rank, entry.id) == (0, "onnxruntime:qnn")
    with pytest.raises(ConfigError, match="valid choices"):
        find_entry(chipset_matrix, "openvino", {"device": "NPU"})


def test_unknown_chipset_rejected(matrix):
    with pytest.raises(ConfigError, match="did you mean 'nvidia_rtx_4090'"):
        matrix.chipset("nvidia_rtx_4080")


def test_hydra_composes_matrix_group():
    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        chipset_cfg = compose(config_name=None, overrides=["+matrix=snapdragon_x_elite"])
        rules_cfg = compose(config_name=None, overrides=["+matrix=compatibility"])

    assert OmegaConf.get_type(chipset_cfg.matrix) is ChipsetMatrix
    assert chipset_cfg.matrix.entries[0].provider == "qnn"
    assert OmegaConf.get_type(rules_cfg.matrix) is CompatibilityRules


@pytest.fixture(scope="module")
def broken_conf(tmp_path_factory) -> Path:
    """A copy of conf/ with one of each kind of mistake the validator must report."""
    copy = tmp_path_factory.mktemp("broken") / "conf"
    shutil.copytree(conf_dir(), copy)

    (copy / "matrix" / "amd_ryzen_ai_9_hx370.yaml").unlink()
    m3 = copy / "matrix" / "m3.yaml"
    m3.write_text(
        m3.read_text()
        .replace("recipe: int8_weight_only", "recipe: int8_wieght_only", 1)
        .replace("provider: CPU_AND_GPU", "provider: GPU_ONLY")
        .replace("recipe: int8_dynamic", "recipe: palettize_4bit")
    )
    x86 = copy / "matrix" / "x86_64_host.yaml"
    text = x86.read_text()
    cut = text[: text.index("  - runtime: openvino")] + text[text.index("  - runtime: litert") :]
    x86.write_text(cut)
    # Without its runtime file, litert is no build target, yet x86_64_host's entry stays buildable.
    (copy / "runtime" / "litert.yaml").unlink()
    return copy


@pytest.fixture(scope="module")
def broken_problems(broken_conf) -> str:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SARVAM_PIPELINE_CONF", str(broken_conf))
        return "\n".join(matrix_problems(load_matrix(validate=False)))


def test_validator_reports_missing_file(broken_problems):
    assert "missing conf/matrix/amd_ryzen_ai_9_hx370.yaml" in broken_problems


def test_validator_reports_unknown_recipe(broken_problems):
    assert "invalid recipe of conf/matrix/m3.yaml entry coreml:CPU_AND_NE 'int8_wieght_only'" in broken_problems
    assert "did you mean 'int8_weight_only'" in broken_problems


def test_validator_reports_unknown_provider(broken_problems):
    assert "invalid provider of conf/matrix/m3.yaml entry coreml:GPU_ONLY 'GPU_ONLY'" in broken_problems


def test_validator_reports_recipe_runtime_mismatch(broken_problems):
    assert "the recipe accepts runtimes ['coreml'], not onnxruntime" in broken_problems


def test_validator_requires_chipset_runtimes(broken_problems):
    assert "missing runtime openvino in conf/matrix/x86_64_host.yaml" in broken_problems


def test_validator_tracks_buildable_flag(broken_problems):
    assert "runtime litert has no conf/runtime/litert.yaml, so set buildable: false" in broken_problems


def test_load_rejects_broken_data(broken_conf, monkeypatch):
    monkeypatch.setenv("SARVAM_PIPELINE_CONF", str(broken_conf))

    with pytest.raises(ConfigError, match="more problems"):
        load_matrix()


def test_docs_page_is_current(matrix):
    expected = render_markdown(matrix)
    actual = DOCS_PAGE.read_text(encoding="utf-8") if DOCS_PAGE.is_file() else ""
    assert actual == expected, f"docs/decision-matrix.md is out of date with conf/matrix/; regenerate it with: {REGENERATE_COMMAND}"


def test_cli_writes_markdown_page(matrix, tmp_path, capsys):
    page = tmp_path / "docs" / "decision-matrix.md"

    assert main(["--write", str(page)]) == 0
    assert page.read_text(encoding="utf-8") == render_markdown(matrix)
    assert main(["--markdown"]) == 0
    assert capsys.readouterr().out.endswith(render_markdown(matrix))


def test_cli_prints_tables(capsys):
    assert main([]) == 0
    output = capsys.readouterr().out

    assert "snapdragon_x_elite" in output
    assert "compatibility rules" in output


def test_cli_check_fails_on_problem(broken_conf, monkeypatch, capsys):
    monkeypatch.setenv("SARVAM_PIPELINE_CONF", str(broken_conf))

    assert main(["--check"]) == 1
    assert "missing conf/matrix/amd_ryzen_ai_9_hx370.yaml" in capsys.readouterr().err
