"""The runtime decision matrix: for each chipset, which runtime and execution provider to build, in order.

The data lives in ``conf/matrix/<chipset>.yaml`` (one ordered entry list per chipset) and
``conf/matrix/compatibility.yaml`` (minimum driver, OS and package versions, each with its source). Both
merge onto the typed schemas below, which are also registered with Hydra's ConfigStore in group ``matrix``.

Run ``python -m sarvam_pipeline.matrix`` to print the matrix, ``--markdown`` for Markdown, and
``--write docs/decision-matrix.md`` to regenerate the documentation page.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from sarvam_pipeline.backends.onnxruntime import PROVIDER_NAMES
from sarvam_pipeline.errors import ConfigError
from sarvam_pipeline.paths import conf_dir, group_options
from sarvam_pipeline.schema import PRECISIONS, ChipsetConfig, RuntimeConfig
from sarvam_pipeline.select import CHECK_OPS, probe_value
from sarvam_pipeline.target import load_recipe

logger = logging.getLogger(__name__)

RUNTIMES = ("onnxruntime", "openvino", "coreml", "tensorrt", "qnn", "litert", "torch_aoti")
COMPUTE_UNITS = ("cpu", "gpu", "npu")
COMPATIBILITY_FILE = "compatibility"

# Provider or device names each runtime accepts: ONNX Runtime execution providers (keys of PROVIDER_NAMES),
# OpenVINO devices, Core ML MLComputeUnits, QNN backends, LiteRT delegates.
PROVIDERS: dict[str, tuple[str, ...]] = {
    "onnxruntime": tuple(PROVIDER_NAMES),
    "openvino": ("CPU", "GPU", "NPU", "AUTO"),
    "coreml": ("CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL"),
    "tensorrt": ("GPU",),
    "qnn": ("HTP", "GPU", "CPU"),
    "litert": ("CPU", "GPU", "NPU"),
    "torch_aoti": ("cpu", "cuda"),
}

# The key of runtime.options that names the provider or device, as in conf/runtime/<runtime>.yaml.
PROVIDER_OPTION = {
    "onnxruntime": "provider",
    "openvino": "device",
    "coreml": "compute_units",
    "tensorrt": "device",
    "qnn": "backend",
    "litert": "delegate",
    "torch_aoti": "device",
}

# Runtimes with no CPU device: degrade mode has no CPU entry of theirs to fall back to. The qnn runtime builds
# for the HTP backend only, and onnxruntime-qnn 2.7.0 ships no QNN CPU backend.
GPU_ONLY_RUNTIMES = ("tensorrt", "qnn")


@dataclass
class MatrixEntry:
    """One runtime and provider a chipset can use, with the recipe that suits its compute unit."""

    runtime: str = MISSING
    # Execution provider (ONNX Runtime, a key of PROVIDER_NAMES), device (OpenVINO, TensorRT, LiteRT,
    # torch_aoti), compute units (Core ML) or backend (QNN); see PROVIDERS.
    provider: str = MISSING
    # ONNX Runtime provider options, or extra runtime options for the other runtimes.
    provider_options: dict[str, Any] = field(default_factory=dict)
    compute_unit: str = MISSING  # cpu | gpu | npu
    # Precisions this compute unit runs well, from schema.PRECISIONS.
    precisions: list[str] = field(default_factory=list)
    # Recommended recipe: a name from conf/quant/.
    recipe: str = MISSING
    os: list[str] = field(default_factory=list)
    # False for runtimes that are not build targets yet (no conf/runtime/<runtime>.yaml).
    buildable: bool = True
    reason: str = MISSING

    @property
    def id(self) -> str:
        """Identifier within a chipset's matrix, such as ``onnxruntime:qnn`` or ``openvino:NPU``."""
        return f"{self.runtime}:{self.provider}"

    def runtime_options(self) -> dict[str, Any]:
        """Return the runtime options that select this entry, shaped like conf/runtime/<runtime>.yaml options."""
        if self.runtime == "onnxruntime":
            return {"provider": self.provider, "provider_options": dict(self.provider_options)}
        return {PROVIDER_OPTION[self.runtime]: self.provider, **self.provider_options}


@dataclass
class ChipsetMatrix:
    """A chipset's entries in order of preference (first is most preferred)."""

    chipset: str = MISSING
    entries: list[MatrixEntry] = field(default_factory=list)


@dataclass
class RequirementCheck:
    """One check of a probe field; see sarvam_pipeline.select for the operators."""

    field: str = MISSING
    op: str = MISSING
    value: Any = None
    # Dotted probe field -> value or list of values; the check applies only where they match.
    # (dataclasses.field, because the attribute ``field`` above shadows the name in this class body.)
    when: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclass
class RuleScope:
    """Selector of the matrix entries that a compatibility rule applies to."""

    runtime: str = MISSING
    # Empty means every provider of the runtime.
    providers: list[str] = field(default_factory=list)
    # Dotted runtime option -> required value, for example minimum_deployment_target: macOS15.
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class CompatibilityRule:
    """A minimum driver, OS or package version that an entry needs where it runs."""

    id: str = MISSING
    applies_to: list[RuleScope] = field(default_factory=list)
    # The requirement as a sentence; failure messages start with it.
    description: str = MISSING
    checks: list[RequirementCheck] = field(default_factory=list)
    # Where the numbers come from (vendor page title and URL), or "unverified" with what is missing.
    source: str = MISSING

    def applies(self, entry: MatrixEntry, options: dict[str, Any]) -> bool:
        """Return whether the rule covers this entry built with these runtime options."""
        for scope in self.applies_to:
            if scope.runtime != entry.runtime:
                continue
            if scope.providers and entry.provider not in scope.providers:
                continue
            if all(probe_value(options, path) == value for path, value in scope.options.items()):
                return True
        return False


@dataclass
class CompatibilityRules:
    rules: list[CompatibilityRule] = field(default_factory=list)


@dataclass
class DecisionMatrix:
    """Every chipset's matrix, the compatibility rules and the default options of each buildable runtime."""

    chipsets: dict[str, ChipsetMatrix]
    # conf/chipset/<name>.yaml of every chipset that has a matrix file and a chipset file.
    chipset_configs: dict[str, ChipsetConfig]
    rules: list[CompatibilityRule]
    # Options of conf/runtime/<runtime>.yaml, keyed by runtime; only buildable runtimes have one.
    runtime_defaults: dict[str, dict[str, Any]]

    def chipset(self, name: str) -> ChipsetMatrix:
        if name not in self.chipsets:
            raise ConfigError.invalid_choice("chipset", name, self.chipsets, reason="it has no conf/matrix file")
        return self.chipsets[name]

    def arch(self, chipset: str) -> str:
        """Return the chipset's CPU architecture (x86_64 | arm64) from conf/chipset/."""
        return self.chipset_configs[chipset].arch

    def effective_options(self, entry: MatrixEntry) -> dict[str, Any]:
        """Return the runtime's default options overlaid with the entry's, as a build would compose them."""
        options = dict(self.runtime_defaults.get(entry.runtime, {}))
        options.update(entry.runtime_options())
        return options

    def rules_for(self, entry: MatrixEntry, options: dict[str, Any] | None = None) -> list[CompatibilityRule]:
        options = self.effective_options(entry) if options is None else options
        return [rule for rule in self.rules if rule.applies(entry, options)]


def register_configs() -> None:
    """Register the matrix schemas so conf/matrix/*.yaml can name them in their defaults lists."""
    store = ConfigStore.instance()
    store.store(group="matrix", name="matrix_schema", node=ChipsetMatrix)
    store.store(group="matrix", name="compatibility_schema", node=CompatibilityRules)


register_configs()


def _load_yaml(path: Path, schema: type) -> Any:
    """Load one YAML file onto a structured schema, as Hydra would for a group option."""
    # libyaml parses in milliseconds where OmegaConf.load's pure-Python loader takes about 0.1 s a file.
    with path.open(encoding="utf-8") as handle:
        loaded = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    loaded.pop("defaults", None)
    merged = OmegaConf.merge(OmegaConf.structured(schema), loaded)
    return OmegaConf.to_object(merged)


def matrix_names() -> list[str]:
    """Return the chipset names that have a file in conf/matrix/."""
    return [name for name in group_options("matrix") if name != COMPATIBILITY_FILE]


def load_matrix(validate: bool = True) -> DecisionMatrix:
    """Load conf/matrix/, the chipsets and the runtime defaults; raise ConfigError on the first problem.

    With ``validate=False`` the data loads without the consistency checks of ``matrix_problems``. The result
    and its problems are cached per conf/ folder, because the OmegaConf merges take over a second (2-core host), so
    callers must not modify it, and edits to conf/ show only in a new process.
    """
    matrix = _load_cached(str(conf_dir()))
    if validate:
        problems = _problems_cached(str(conf_dir()))
        if problems:
            more = f" ({len(problems) - 1} more problems; run python -m sarvam_pipeline.matrix --check)" if len(problems) > 1 else ""
            raise ConfigError(problems[0] + more)
    return matrix


@functools.lru_cache(maxsize=4)
def _load_cached(conf_path: str) -> DecisionMatrix:
    folder = Path(conf_path)
    chipsets: dict[str, ChipsetMatrix] = {}
    configs: dict[str, ChipsetConfig] = {}
    for name in matrix_names():
        chipsets[name] = _load_yaml(folder / "matrix" / f"{name}.yaml", ChipsetMatrix)
        chipset_file = folder / "chipset" / f"{name}.yaml"
        if chipset_file.is_file():
            configs[name] = _load_yaml(chipset_file, ChipsetConfig)

    compatibility = folder / "matrix" / f"{COMPATIBILITY_FILE}.yaml"
    rules = _load_yaml(compatibility, CompatibilityRules).rules if compatibility.is_file() else []
    defaults = {
        name: dict(_load_yaml(folder / "runtime" / f"{name}.yaml", RuntimeConfig).options) for name in group_options("runtime")
    }
    logger.debug("loaded the decision matrix of %d chipsets and %d compatibility rules", len(chipsets), len(rules))
    return DecisionMatrix(chipsets, configs, rules, defaults)


@functools.lru_cache(maxsize=4)
def _problems_cached(conf_path: str) -> tuple[str, ...]:
    return tuple(matrix_problems(_load_cached(conf_path)))


def find_entry(chipset_matrix: ChipsetMatrix, runtime: str, options: dict[str, Any]) -> tuple[int, MatrixEntry]:
    """Return the rank and entry of the chipset's matrix that these runtime options select."""
    provider = options.get(PROVIDER_OPTION.get(runtime, ""), "")
    for rank, entry in enumerate(chipset_matrix.entries):
        if entry.runtime == runtime and str(entry.provider).lower() == str(provider).lower():
            return rank, entry

    choices = [entry.id for entry in chipset_matrix.entries]
    raise ConfigError.invalid_choice(
        f"runtime and provider for chipset {chipset_matrix.chipset}", f"{runtime}:{provider}", choices,
        reason="conf/matrix has no such entry",
    )


def _chipset_problems(
    name: str, chipset_matrix: ChipsetMatrix, chipset: ChipsetConfig, implemented: list[str], recipes: dict[str, dict[str, Any]]
) -> list[str]:
    problems: list[str] = []
    unit_kinds = [unit.kind for unit in chipset.compute_units]
    where = f"conf/matrix/{name}.yaml"

    seen: set[str] = set()
    for entry in chipset_matrix.entries:
        label = f"{where} entry {entry.id}"
        if entry.id in seen:
            problems.append(f"duplicate entry {entry.id} in {where}: each runtime and provider may appear once")
        seen.add(entry.id)

        if entry.runtime not in RUNTIMES:
            problems.append(str(ConfigError.invalid_choice(f"runtime in {where}", entry.runtime, RUNTIMES)))
            continue
        if entry.provider not in PROVIDERS[entry.runtime]:
            problems.append(str(ConfigError.invalid_choice(f"provider of {label}", entry.provider, PROVIDERS[entry.runtime])))
        if entry.compute_unit not in unit_kinds:
            problems.append(str(ConfigError.invalid_choice(f"compute_unit of {label}", entry.compute_unit, unit_kinds)))
        for precision in entry.precisions:
            if precision not in PRECISIONS:
                problems.append(str(ConfigError.invalid_choice(f"precision of {label}", precision, PRECISIONS)))
        if not entry.precisions:
            problems.append(f"invalid {label}: precisions is empty; list the precisions its compute unit runs well")
        for os_name in entry.os:
            if os_name not in chipset.os:
                problems.append(str(ConfigError.invalid_choice(f"os of {label}", os_name, chipset.os, reason=f"chipset {name} does not list it")))
        if not entry.os:
            problems.append(f"invalid {label}: os is empty; list where this entry runs")
        if not entry.reason.strip() or "\n" in entry.reason.strip():
            problems.append(f"invalid {label}: reason must be one sentence on one line")

        if entry.buildable and entry.runtime not in implemented:
            problems.append(f"invalid {label}: runtime {entry.runtime} has no conf/runtime/{entry.runtime}.yaml, so set buildable: false")
        if not entry.buildable and entry.runtime in implemented:
            problems.append(f"invalid {label}: runtime {entry.runtime} is now a build target (conf/runtime/{entry.runtime}.yaml), so set buildable: true")
        if entry.buildable and entry.runtime not in chipset.runtimes:
            problems.append(str(ConfigError.invalid_choice(f"runtime of {label}", entry.runtime, chipset.runtimes, reason=f"conf/chipset/{name}.yaml does not list it")))

        problems.extend(_recipe_problems(label, entry, recipes))

    listed = [entry.runtime for entry in chipset_matrix.entries]
    for runtime in chipset.runtimes:
        if runtime not in listed:
            problems.append(f"missing runtime {runtime} in {where}: conf/chipset/{name}.yaml lists it, so add at least one entry")
    first_seen = [runtime for index, runtime in enumerate(listed) if runtime in chipset.runtimes and runtime not in listed[:index]]
    if not problems and first_seen != list(chipset.runtimes):
        problems.append(f"invalid order in {where}: runtimes first appear as {first_seen}, but conf/chipset/{name}.yaml prefers {list(chipset.runtimes)}")

    # Degrade mode falls back to a CPU entry of the same runtime, so every buildable runtime that has a CPU
    # device needs one.
    for runtime in sorted({entry.runtime for entry in chipset_matrix.entries if entry.buildable} - set(GPU_ONLY_RUNTIMES)):
        if not any(entry.runtime == runtime and entry.compute_unit == "cpu" for entry in chipset_matrix.entries):
            problems.append(f"missing cpu entry for runtime {runtime} in {where}: degrade mode needs one to fall back to")
    return problems


def _recipe_problems(label: str, entry: MatrixEntry, recipes: dict[str, dict[str, Any]]) -> list[str]:
    if entry.recipe not in recipes:
        return [str(ConfigError.invalid_choice(f"recipe of {label}", entry.recipe, recipes))]

    recipe = recipes[entry.recipe]
    problems = []
    # NOTE: a runtime that is not a build target yet has no recipe that lists it, so for buildable: false
    # entries the recipe is a plan and only its precision is checked.
    if entry.buildable and entry.runtime not in recipe["runtimes"]:
        problems.append(
            f"invalid recipe '{entry.recipe}' of {label}: the recipe accepts runtimes {recipe['runtimes']}, not {entry.runtime}"
        )
    if recipe["precision"] not in entry.precisions:
        problems.append(
            f"invalid recipe '{entry.recipe}' of {label}: its precision {recipe['precision']} is not in the entry's precisions {entry.precisions}"
        )
    return problems


def _rule_problems(rules: list[CompatibilityRule]) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    for rule in rules:
        where = f"rule {rule.id} in conf/matrix/{COMPATIBILITY_FILE}.yaml"
        if rule.id in seen:
            problems.append(f"duplicate {where}: rule ids must be unique")
        seen.add(rule.id)

        if not rule.applies_to:
            problems.append(f"invalid {where}: applies_to is empty")
        for scope in rule.applies_to:
            if scope.runtime not in RUNTIMES:
                problems.append(str(ConfigError.invalid_choice(f"runtime of {where}", scope.runtime, RUNTIMES)))
                continue
            for provider in scope.providers:
                if provider not in PROVIDERS[scope.runtime]:
                    problems.append(str(ConfigError.invalid_choice(f"provider of {where}", provider, PROVIDERS[scope.runtime])))

        if not rule.checks:
            problems.append(f"invalid {where}: checks is empty")
        for check in rule.checks:
            if check.op not in CHECK_OPS:
                problems.append(str(ConfigError.invalid_choice(f"op of {where}", check.op, CHECK_OPS)))
        if not rule.source.strip():
            problems.append(f"invalid {where}: source is empty; name the vendor page, or write unverified")
    return problems


def matrix_problems(matrix: DecisionMatrix) -> list[str]:
    """Return every inconsistency between conf/matrix, conf/chipset, conf/runtime and conf/quant."""
    problems: list[str] = []
    chipset_names = group_options("chipset")
    implemented = group_options("runtime")
    recipes = {name: load_recipe(name) for name in group_options("quant")}

    for name in chipset_names:
        if name not in matrix.chipsets:
            problems.append(f"missing conf/matrix/{name}.yaml: every chipset in conf/chipset/ needs a matrix file")

    for name, chipset_matrix in matrix.chipsets.items():
        if name not in chipset_names:
            problems.append(str(ConfigError.invalid_choice("matrix file", name, chipset_names, reason="no conf/chipset file has this name")))
            continue
        if chipset_matrix.chipset != name:
            problems.append(f"invalid chipset '{chipset_matrix.chipset}' in conf/matrix/{name}.yaml: it must match the file name")
        problems.extend(_chipset_problems(name, chipset_matrix, matrix.chipset_configs[name], implemented, recipes))

    problems.extend(_rule_problems(matrix.rules))
    return problems


def main(argv: list[str] | None = None) -> int:
    """Print the decision matrix as a table or Markdown, write the docs page, or check the data."""
    from sarvam_pipeline.matrix_docs import print_tables, render_markdown

    parser = argparse.ArgumentParser(prog="python -m sarvam_pipeline.matrix", description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the matrix as Markdown instead of tables")
    parser.add_argument("--write", metavar="PATH", help="write the generated Markdown page to PATH (docs/decision-matrix.md)")
    parser.add_argument("--check", action="store_true", help="list every inconsistency and exit 1 if there is one")
    args = parser.parse_args(argv)

    matrix = load_matrix(validate=False)
    problems = matrix_problems(matrix)
    if args.check or problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            return 1
        print("conf/matrix is consistent")
        return 0

    if args.write:
        Path(args.write).parent.mkdir(parents=True, exist_ok=True)
        Path(args.write).write_text(render_markdown(matrix), encoding="utf-8")
        print(f"wrote {args.write}")
    elif args.markdown:
        sys.stdout.write(render_markdown(matrix))
    else:
        print_tables(matrix)
    return 0


if __name__ == "__main__":
    sys.exit(main())
