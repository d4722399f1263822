"""The main job: resolve one target from Hydra config, build it, validate, benchmark and report."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from omegaconf import DictConfig
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sarvam_pipeline.compiler import Plan, compile_plan
from sarvam_pipeline.errors import ConfigError, MissingExtraError
from sarvam_pipeline.executor import LocalExecutor
from sarvam_pipeline.host_lock import HostLock
from sarvam_pipeline.paths import group_options
from sarvam_pipeline.report import build_report, print_summary, write_report
from sarvam_pipeline.runtimes import get_planner
from sarvam_pipeline.store import ArtifactStore
from sarvam_pipeline.target import Target
from sarvam_pipeline.validation import check_rebuild_kinds, validate_target

log = logging.getLogger(__name__)

# Config groups whose command-line choices are checked before Hydra composes the config.
CHECKED_GROUPS = ("model", "quant", "chipset", "runtime", "data")
# Exit code of a build whose figures violate a budget while budgets.enforce is true.
BUDGET_EXIT_CODE = 3
# Exit code when this host could not build the target's artifact (fallback=degrade went on without it).
NOT_BUILT_EXIT_CODE = 5
# Exit code of a multirun in which at least one job exited non-zero, with any of the codes above or 1 for
# a failed stage. The sweep report lists each job's code.
SWEEP_FAILED_EXIT_CODE = 6


def _split_choices(value: str) -> list[str] | None:
    """Return the options named by an override value, or None for sweep syntax this check cannot read."""
    if any(token in value for token in ("(", "[", "$", "*")):
        return None
    return [choice.strip() for choice in value.split(",") if choice.strip()]


def check_group_overrides(arguments: list[str]) -> None:
    """Reject ``group=value`` overrides that name no file in ``conf/<group>/``, in one line.

    Hydra reports the same problem over several lines; checking first gives the one-line error and the
    nearest valid name.
    """
    for argument in arguments:
        if argument.startswith("-") or "=" not in argument:
            continue
        key, _, value = argument.partition("=")
        key = key.lstrip("+~")
        if key not in CHECKED_GROUPS:
            continue
        choices = _split_choices(value)
        if choices is None:
            continue
        valid = group_options(key)
        for choice in choices:
            if key == "quant" and choice == "null":
                continue
            if choice not in valid:
                raise ConfigError.invalid_choice(key, choice, valid)


def describe_plan(plan: Plan, store: ArtifactStore, console: Console) -> None:
    """Print every node of the plan, whether it is built, and whether this host can run it."""
    from stages import get_stage

    from sarvam_pipeline.executor import typed_params

    table = Table(title="build plan (dry run)")
    for column in ("stage", "key", "state"):
        table.add_column(column)
    for node in plan.order():
        if store.path_for(node).is_dir() and store.read_manifest(node) is not None:
            state = "built"
        else:
            reason = get_stage(node.kind).unavailable_reason(typed_params(node))
            state = f"cannot run here: {reason}" if reason else "will run"
        table.add_row(escape(node.label), node.key, escape(state))
    console.print(table)


def is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def report_folder(cfg: DictConfig) -> Path:
    if cfg.report_dir:
        return Path(cfg.report_dir)
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def resolve_target(cfg: DictConfig) -> tuple[Target, dict]:
    """Resolve the target, apply runtime=auto and the fallback mode, and validate it before any stage runs."""
    from sarvam_pipeline.resolve import resolve_auto, resolve_execution

    check_rebuild_kinds(list(cfg.rebuild))
    target = Target.from_config(cfg)
    extra: dict = {}
    probe_cache: dict = {}

    def probe() -> dict:
        if "probe" not in probe_cache:
            from sarvam_pipeline.probe import probe_host

            probe_cache["probe"] = probe_host()
        return probe_cache["probe"]

    if target.runtime["name"] == "auto":
        target, extra["runtime_decision"] = resolve_auto(target, cfg.quant is not None, probe())
    try:
        validate_target(target)
    except ConfigError as error:
        decision = extra.get("runtime_decision")
        if decision and cfg.quant is None:
            raise ConfigError(
                f"{error} (runtime=auto chose {decision['chosen']} with its recommended recipe "
                f"{target.quant['name']}; set quant= to choose another)"
            ) from error
        raise
    problem = get_planner(target.runtime["name"]).environment_problem()
    if problem:
        raise MissingExtraError(problem)
    target, extra["fallback"] = resolve_execution(target, cfg.fallback, probe)
    return target, extra


def write_deploy_manifest(target: Target, report: dict, folder: Path) -> Path | None:
    """Write ``deploy_manifest.json`` for ``sarvam_pipeline.select.choose`` when the artifact was built."""
    import json
    import os

    from sarvam_pipeline.select import build_manifest, manifest_entry

    if not report["built"] or not report["deployable_artifact"]:
        return None
    artifact = Path(report["deployable_artifact"])
    try:
        entry = manifest_entry(
            target.id,
            target.runtime["name"],
            target.runtime.get("options", {}),
            target.quant["precision"],
            os.path.relpath(artifact, folder),
            target.chipset["name"],
        )
    except ConfigError as error:
        log.warning("no deploy manifest written: %s", error)
        return None
    path = folder / "deploy_manifest.json"
    path.write_text(json.dumps(build_manifest(target.chipset["name"], [entry]), indent=2) + "\n", encoding="utf-8")
    return path


def run_target(cfg: DictConfig) -> int:
    """Build one target and return the process exit code (0, BUDGET_EXIT_CODE or NOT_BUILT_EXIT_CODE)."""
    target, extra = resolve_target(cfg)
    plan = compile_plan([target])
    store = ArtifactStore(cfg.store.root)
    console = Console(stderr=True)
    remote = None
    if cfg.store.remote:
        from sarvam_pipeline.store_remote import StoreRemote

        remote = StoreRemote(cfg.store.remote)

    if cfg.dry_run:
        describe_plan(plan, store, console)
        return 0

    log.info("target %s: %d stages", target.id, plan.graph.number_of_nodes())
    # Parallel sweep jobs share the terminal, where their live progress bars would overwrite each other, so
    # a sweep shows progress through its log lines only.
    show_progress = sys.stderr.isatty() and not is_multirun()
    host_lock = HostLock() if cfg.benchmark.exclusive_host else None
    executor = LocalExecutor(store, show_progress=show_progress, remote=remote, host_lock=host_lock, rebuild=cfg.rebuild)
    outcomes = executor.run(plan)
    _, nodes = plan.targets[0]
    keys = [node.key for node in plan.order()]
    report = build_report(target, nodes, keys, outcomes, extra)
    folder = report_folder(cfg)
    json_path, markdown_path = write_report(report, folder)
    write_deploy_manifest(target, report, folder)
    print_summary([report], Console())
    log.info("report written to %s and %s", json_path, markdown_path)

    if not report["built"]:
        reason = next((row["reason"] for row in report["stages"] if row["status"] == "skipped"), "")
        log.error("target %s was not built on this host: %s", target.id, reason)
        return NOT_BUILT_EXIT_CODE
    if report["budgets_violated"]:
        log.error("budgets violated: %s", ", ".join(report["budgets_violated"]))
        if cfg.budgets.enforce:
            return BUDGET_EXIT_CODE
    return 0
