"""Expand a targets config into Targets, composing each one with Hydra as the command line would."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

from sarvam_pipeline.cli import check_group_overrides
from sarvam_pipeline.dvc.config import ALL_CHIPSETS, TargetsConfig
from sarvam_pipeline.errors import ConfigError, PipelineError
from sarvam_pipeline.paths import conf_dir, group_options
from sarvam_pipeline.schema import register_configs
from sarvam_pipeline.target import Target, load_recipe
from sarvam_pipeline.validation import validate_target

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TargetChoice:
    """The group choices and overrides that select one target."""

    chipset: str
    runtime: str
    quant: str
    overrides: tuple[str, ...] = ()


def _check_choice(group: str, value: str) -> None:
    if value not in group_options(group):
        raise ConfigError.invalid_choice(group, value, group_options(group))


def _without_quant_overrides(overrides: list[str]) -> list[str]:
    # Before a recipe is chosen the quant node is null, so overrides of its fields cannot apply yet.
    return [item for item in overrides if not item.lstrip("+~").startswith("quant")]


class TargetComposer:
    """Composition of pipeline configs, all inside one Hydra initialisation."""

    def __init__(self, config: TargetsConfig) -> None:
        self.config = config

    def compose(self, overrides: list[str]) -> DictConfig:
        from hydra import compose

        check_group_overrides(overrides)
        try:
            return compose(config_name="config", overrides=overrides)
        except PipelineError:
            raise
        except Exception as error:  # Hydra raises several error types for bad overrides
            message = str(error).strip().splitlines()[0]
            raise ConfigError(f"invalid override in {' '.join(overrides)}: {message}") from error

    def base_overrides(self, chipset: str, runtime: str | None = None) -> list[str]:
        overrides = [f"model={self.config.model}", f"chipset={chipset}"]
        if runtime is not None:
            overrides.append(f"runtime={runtime}")
        return overrides

    def chipset_runtimes(self, chipset: str) -> list[str]:
        overrides = self.base_overrides(chipset) + _without_quant_overrides(self.config.overrides)
        return list(self.compose(overrides).chipset.runtimes)

    def default_recipe(self, chipset: str, runtime: str, extra: tuple[str, ...] = ()) -> str:
        overrides = self.base_overrides(chipset, runtime) + _without_quant_overrides([*self.config.overrides, *extra])
        return str(self.compose(overrides).runtime.default_quant)

    def overrides(self, choice: TargetChoice) -> list[str]:
        """Return the command-line overrides of ``python -m sarvam_pipeline`` that select a target."""
        return [
            *self.base_overrides(choice.chipset, choice.runtime),
            f"quant={choice.quant}",
            *self.config.overrides,
            *choice.overrides,
        ]

    def target(self, choice: TargetChoice) -> Target:
        target = Target.from_config(self.compose(self.overrides(choice)))
        try:
            validate_target(target)
        except ConfigError as error:
            raise ConfigError(f"target {target.id}: {error}") from error
        return target


def recipe_runtimes(recipe: str) -> list[str]:
    return list(load_recipe(recipe)["runtimes"])


def matrix_choices(config: TargetsConfig, composer: TargetComposer) -> list[TargetChoice]:
    """List the targets a config selects: chipsets times supported runtimes times recipes, then extra targets."""
    _check_choice("model", config.model)
    chipsets = group_options("chipset") if config.chipsets == [ALL_CHIPSETS] else list(config.chipsets)
    for chipset in chipsets:
        _check_choice("chipset", chipset)
    for recipe in config.recipes:
        _check_choice("quant", recipe)

    choices: list[TargetChoice] = []
    for chipset in chipsets:
        for runtime in composer.chipset_runtimes(chipset):
            recipes = [composer.default_recipe(chipset, runtime)] if config.default_recipes else []
            recipes += [recipe for recipe in config.recipes if runtime in recipe_runtimes(recipe)]
            choices += [TargetChoice(chipset, runtime, recipe) for recipe in recipes]

    unused = [recipe for recipe in config.recipes if not any(choice.quant == recipe for choice in choices)]
    if unused:
        raise ConfigError(
            f"invalid targets recipes {unused}: no selected chipset supports a runtime that accepts them; "
            f"selected chipsets: {', '.join(chipsets)}"
        )

    for extra in config.targets:
        _check_choice("chipset", extra.chipset)
        _check_choice("runtime", extra.runtime)
        overrides = tuple(extra.overrides)
        quant = extra.quant or composer.default_recipe(extra.chipset, extra.runtime, overrides)
        _check_choice("quant", quant)
        choices.append(TargetChoice(extra.chipset, extra.runtime, quant, overrides))
    return choices


@dataclass(frozen=True)
class ExpandedTarget:
    """A composed target and the overrides that select it in a direct run."""

    target: Target
    overrides: tuple[str, ...]


def expand_targets(config: TargetsConfig) -> list[ExpandedTarget]:
    """Compose and validate every target of a targets config, sorted by target id, duplicates dropped.

    Raises ConfigError when the config selects no target, or when two entries give one target id
    different settings.
    """
    from hydra import initialize_config_dir

    register_configs()
    targets: dict[str, tuple[TargetChoice, ExpandedTarget]] = {}
    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        composer = TargetComposer(config)
        for choice in matrix_choices(config, composer):
            target = composer.target(choice)
            if target.id in targets:
                first, expanded = targets[target.id]
                if expanded.target != target:
                    raise ConfigError(
                        f"target {target.id} is listed twice with different settings "
                        f"(overrides {list(first.overrides)} and {list(choice.overrides)}); keep one entry"
                    )
                continue
            targets[target.id] = (choice, ExpandedTarget(target, tuple(composer.overrides(choice))))

    if not targets:
        raise ConfigError("the targets config selects no target; list chipsets, recipes or targets")
    log.info("targets config selects %d targets", len(targets))
    return [targets[target_id][1] for target_id in sorted(targets)]


def target_summary(target: Target) -> dict[str, Any]:
    return {
        "model": target.model["name"],
        "chipset": target.chipset["name"],
        "runtime": target.runtime["name"],
        "quant": target.quant["name"],
    }
