"""Decide what a build uses on this host: ``runtime=auto`` and the ``fallback`` mode.

``runtime=auto`` takes the chipset's most preferred decision-matrix entry that this host can build, and logs
why each one before it was passed over. When the requested runtime or provider cannot run here,
``fallback=strict`` stops with the reason, and ``fallback=degrade`` builds the artifact anyway and runs
validation and benchmark on the next usable provider of the same runtime, recording both in the report.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from sarvam_pipeline.backends import get_backend
from sarvam_pipeline.errors import ConfigError, PipelineError
from sarvam_pipeline.paths import group_options
from sarvam_pipeline.runtimes import get_planner
from sarvam_pipeline.schema import RuntimeConfig
from sarvam_pipeline.target import Target, load_group_option, load_recipe

log = logging.getLogger(__name__)

FALLBACK_MODES = ("strict", "degrade")


class UnavailableRuntimeError(PipelineError):
    """The requested runtime or provider cannot run on this host and fallback=strict forbids degrading."""

    exit_code = 4


def load_runtime(name: str) -> dict[str, Any]:
    """Load ``conf/runtime/<name>.yaml`` onto the RuntimeConfig schema, as Hydra would for ``runtime=<name>``."""
    return load_group_option("runtime", name, RuntimeConfig)


def resolve_auto(target: Target, quant_given: bool, probe: dict[str, Any]) -> tuple[Target, dict[str, Any]]:
    """Replace ``runtime=auto`` by the chipset's most preferred decision-matrix entry this host can build.

    Building is the criterion, not running: an M3 target gets its Core ML artifact on a Linux host too, and
    the fallback mode then decides how it is validated. An entry whose artifact itself needs hardware this host
    lacks (a TensorRT engine) is passed over. The record states whether the entry also runs here.
    """
    from sarvam_pipeline.fallback import check_entry
    from sarvam_pipeline.matrix import load_matrix

    matrix = load_matrix()
    buildable = set(group_options("runtime")) - {"auto"}
    chosen = None
    passed_over: list[dict[str, str]] = []
    for entry in matrix.chipset(target.chipset["name"]).entries:
        if not entry.buildable or entry.runtime not in buildable:
            reason = f"runtime {entry.runtime} is not a build target yet (build targets: {', '.join(sorted(buildable))})"
            passed_over.append({"entry": entry.id, "reason": reason})
            continue
        problem = get_planner(entry.runtime).build_problem(matrix.effective_options(entry))
        if problem is not None:
            passed_over.append({"entry": entry.id, "reason": f"its artifact cannot be built on this host: {problem}"})
            continue
        chosen = entry
        break
    if chosen is None:
        reasons = "; ".join(f"{row['entry']}: {row['reason']}" for row in passed_over)
        raise ConfigError(f"runtime=auto found no buildable runtime for chipset {target.chipset['name']}: {reasons}")

    run_problem = check_entry(chosen, probe, matrix)
    log.info("runtime=auto chose %s for chipset %s: %s", chosen.id, target.chipset["name"], chosen.reason)
    for row in passed_over:
        log.info("runtime=auto passed over %s: %s", row["entry"], row["reason"])
    if run_problem:
        log.info("%s builds here but does not run here: %s", chosen.id, run_problem)

    runtime = load_runtime(chosen.runtime)
    runtime["options"] = {**runtime.get("options", {}), **matrix.effective_options(chosen)}
    quant = target.quant if quant_given else load_recipe(chosen.recipe)
    record = {
        "requested": "auto",
        "chosen": chosen.id,
        "reason": chosen.reason,
        "runs_here": run_problem is None,
        "run_problem": run_problem or "",
        "passed_over": passed_over,
    }
    return dataclasses.replace(target, runtime=runtime, quant=quant), record


def _provider_label(options: dict[str, Any]) -> str:
    for key in ("provider", "device", "compute_units"):
        if key in options:
            return f"{key} {options[key]}"
    return "default options"


def resolve_execution(target: Target, mode: str, probe_factory) -> tuple[Target, dict[str, Any]]:
    """Choose the options validation and benchmark run with, following the fallback mode.

    ``probe_factory`` is called only when the requested options cannot run here, because probing the host
    imports every runtime and takes seconds.
    """
    if mode not in FALLBACK_MODES:
        raise ConfigError.invalid_choice("fallback", mode, FALLBACK_MODES)

    runtime = target.runtime["name"]
    requested = get_planner(runtime).backend_options(target)
    reason = get_backend(runtime).unavailable_reason(requested)
    record: dict[str, Any] = {"mode": mode, "requested": requested, "ran_on": requested, "reason": ""}
    if reason is None:
        return target, record

    label = f"{runtime} ({_provider_label(requested)})"
    if mode == "strict":
        raise UnavailableRuntimeError(
            f"{label} cannot run on this host: {reason}; fallback=degrade builds what this host can build and "
            "validates it on the next usable provider, if any"
        )

    execution = next_usable_options(target, requested, probe_factory())
    record.update({"ran_on": execution, "reason": reason})
    if execution is None:
        log.warning("%s cannot run on this host (%s); validation and benchmark are skipped", label, reason)
    else:
        log.warning(
            "%s cannot run on this host (%s); running the artifact on %s instead (fallback=degrade), and the report "
            "labels what that measures",
            label, reason, _provider_label(execution),
        )
    return dataclasses.replace(target, execution_options=execution), record


def next_usable_options(target: Target, requested: dict[str, Any], probe: dict[str, Any]) -> dict[str, Any] | None:
    """Return the options of the first decision-matrix entry of the same runtime that runs here, or None."""
    from sarvam_pipeline.fallback import fallback_chain
    from sarvam_pipeline.matrix import load_matrix

    runtime = target.runtime["name"]
    backend = get_backend(runtime)
    matrix = load_matrix()
    try:
        chain = fallback_chain(target.chipset["name"], runtime, probe)
    except ConfigError:
        chain = []
    for entry in chain:
        options = {**requested, **matrix.effective_options(entry)}
        if backend.unavailable_reason(options) is None:
            return options

    # ONNX Runtime's CPU provider ships in every build, so an ONNX graph can always be checked on it.
    if runtime == "onnxruntime":
        options = {**requested, "provider": "cpu", "provider_options": {}}
        if backend.unavailable_reason(options) is None:
            return options
    return None
