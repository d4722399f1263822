"""Cross-field checks of a resolved target, run before any stage.

Hydra's schemas already reject unknown keys and wrong types. These checks cover what a type cannot express:
a runtime the chipset does not support, a recipe the runtime rejects, out-of-range recipe values.
"""

from __future__ import annotations

from typing import Any

from sarvam_pipeline.errors import ConfigError
from sarvam_pipeline.paths import group_options
from sarvam_pipeline.runtimes import PLANNERS, get_planner
from sarvam_pipeline.schema import PRECISIONS
from sarvam_pipeline.target import Target, load_recipe

METHODS = ("none", "fp16", "dynamic", "static", "weight_only", "palettize")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
WEIGHT_BITS = (2, 3, 4, 6, 8, 16, 32)


def recipes_for_runtime(runtime: str) -> list[str]:
    """Return the recipe names whose ``runtimes`` list accepts a runtime."""
    names = []
    for name in group_options("quant"):
        try:
            if runtime in load_recipe(name)["runtimes"]:
                names.append(name)
        except Exception:  # noqa: BLE001 - a broken recipe file is reported when it is selected
            continue
    return names


def validate_quant(quant: dict[str, Any]) -> None:
    name = quant["name"]
    if quant["precision"] not in PRECISIONS:
        raise ConfigError.invalid_choice("quant.precision", quant["precision"], PRECISIONS, reason=f"in recipe {name}")
    if quant["method"] not in METHODS:
        raise ConfigError.invalid_choice("quant.method", quant["method"], METHODS, reason=f"in recipe {name}")
    if quant["weight_bits"] not in WEIGHT_BITS:
        raise ConfigError.invalid_choice(
            "quant.weight_bits", quant["weight_bits"], [str(b) for b in WEIGHT_BITS], reason=f"in recipe {name}", ordered=True
        )
    block = quant.get("block_size")
    if block is not None and (block < 8 or block & (block - 1)):
        raise ConfigError(f"invalid quant.block_size {block} in recipe '{name}': expected a power of two >= 8, or null")
    calibration = quant["calibration"]
    if calibration["method"] not in CALIBRATION_METHODS:
        raise ConfigError.invalid_choice(
            "quant.calibration.method", calibration["method"], CALIBRATION_METHODS, reason=f"in recipe {name}"
        )
    if calibration["samples"] < 1:
        raise ConfigError(f"invalid quant.calibration.samples {calibration['samples']}: expected at least 1")

    # The stage's own rules, applied here so that a bad setting stops before any stage runs. They apply while
    # the search is off too, so a misspelt ranking shows up before a bound is set.
    from stages.keep_float import AccuracyTargetParams, check_target

    try:
        check_target(AccuracyTargetParams(**(quant.get("accuracy_target") or {})))
    except ValueError as error:
        raise ConfigError(f"invalid recipe '{name}': quant.{error}") from None


def validate_data(data: dict[str, Any]) -> None:
    """Check the data source and languages against what the installed corpus package contains."""
    from stages.dataset import corpus_languages

    if data["source"] != "chatterbot_corpus":
        raise ConfigError.invalid_choice("data.source", data["source"], ["chatterbot_corpus"])
    available = corpus_languages()
    for language in data["languages"]:
        if language not in available:
            raise ConfigError.invalid_choice("data.languages entry", language, available)


def validate_target(target: Target) -> None:
    """Raise ConfigError, naming the value and the valid choices, when the target cannot be built."""
    chipset, runtime, quant = target.chipset, target.runtime["name"], target.quant

    if runtime not in PLANNERS:
        raise ConfigError.invalid_choice("runtime", runtime, PLANNERS)
    if runtime not in chipset["runtimes"]:
        raise ConfigError.invalid_choice(
            "runtime", runtime, chipset["runtimes"], reason=f"chipset {chipset['name']} does not support it"
        )

    budgets = target.budgets
    for name, limit in (budgets or {}).items():
        if limit is not None and limit < 0:
            raise ConfigError(f"invalid budget {name}={limit} for chipset {chipset['name']}: expected a value >= 0")

    validate_quant(quant)
    if runtime not in quant["runtimes"]:
        raise ConfigError.invalid_choice(
            "quant", quant["name"], recipes_for_runtime(runtime), reason=f"runtime {runtime} does not accept this recipe"
        )
    problem = get_planner(runtime).check_recipe(quant, target.runtime.get("options", {}))
    if problem:
        raise ConfigError(f"invalid quant '{quant['name']}' for runtime {runtime}: {problem}")

    if quant["method"] == "static" and quant["calibration"]["samples"] > target.data["calibration_samples"]:
        raise ConfigError(
            f"invalid quant.calibration.samples {quant['calibration']['samples']}: the data set has only "
            f"{target.data['calibration_samples']} calibration samples (data.calibration_samples)"
        )
    bench = target.benchmark
    for name, minimum in (("batch_size", 1), ("warmup", 0), ("iterations", 1), ("threads", 1)):
        if bench[name] < minimum:
            raise ConfigError(f"invalid benchmark.{name} {bench[name]}: expected an integer >= {minimum}")
    if bench["timeout_s"] <= 0:
        raise ConfigError(f"invalid benchmark.timeout_s {bench['timeout_s']}: expected seconds > 0")
    if target.validation["batch_size"] < 1:
        raise ConfigError(f"invalid validation.batch_size {target.validation['batch_size']}: expected an integer >= 1")
    validate_data(target.data)

    for name in ("calibration_samples", "evaluation_samples"):
        if target.data[name] < 2:
            raise ConfigError(f"invalid data.{name} {target.data[name]}: expected at least 2")
    if target.model["sequence_length"] < 2:
        raise ConfigError(f"invalid model.sequence_length {target.model['sequence_length']}: expected at least 2")
    if not target.model["graphs"]:
        raise ConfigError(f"model '{target.model['name']}' declares no graphs; add at least one under graphs:")


def check_rebuild_kinds(kinds: list[str]) -> None:
    """Raise ConfigError for an entry of ``rebuild`` that names no stage kind."""
    from stages import REGISTRY

    for kind in kinds:
        if kind not in REGISTRY:
            raise ConfigError.invalid_choice("rebuild entry", kind, sorted(REGISTRY))
