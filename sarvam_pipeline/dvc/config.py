"""The targets config: which (chipset, runtime, recipe) targets one generated DVC pipeline builds.

A file ``conf/targets/<name>.yaml`` is merged onto ``TargetsConfig``, so a misspelled key or a wrong type
fails before any target is composed.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from sarvam_pipeline.errors import ConfigError
from sarvam_pipeline.paths import conf_dir, group_options

GROUP = "targets"
# The value of ``chipsets`` that selects every file in conf/chipset/.
ALL_CHIPSETS = "all"


@dataclass
class ExtraTarget:
    """One target added as listed, on top of the chipset and recipe expansion."""

    chipset: str = MISSING
    runtime: str = MISSING
    # Recipe name from conf/quant/; None means the runtime's default recipe.
    quant: Optional[str] = None
    # Hydra overrides of the pipeline config for this target only, e.g. quant.calibration.samples=32.
    overrides: list[str] = field(default_factory=list)


@dataclass
class TargetsConfig:
    """A build matrix: every selected chipset with each runtime it supports, plus listed recipes and targets."""

    description: str = ""
    # Folder of the generated dvc.yaml and params.yaml, relative to the repository root.
    pipeline: str = "."
    # Model config name from conf/model/.
    model: str = "minilm_l6"
    # Chipset names from conf/chipset/, or [all].
    chipsets: list[str] = field(default_factory=lambda: [ALL_CHIPSETS])
    # Whether each chipset and runtime pair gets the runtime's default recipe (runtime.default_quant).
    default_recipes: bool = True
    # Extra recipes, built for each selected chipset and runtime pair whose runtime accepts them.
    recipes: list[str] = field(default_factory=list)
    targets: list[ExtraTarget] = field(default_factory=list)
    # Hydra overrides of the pipeline config applied to every target, e.g. benchmark.iterations=20.
    overrides: list[str] = field(default_factory=list)


def register_targets_schema() -> None:
    """Register the schema that files in conf/targets/ name as their base."""
    ConfigStore.instance().store(group=GROUP, name="targets_schema", node=TargetsConfig)


def targets_config_path(choice: str) -> Path:
    """Return the file of a targets config given by name (``conf/targets/<name>.yaml``) or by path."""
    if choice.endswith((".yaml", ".yml")):
        path = Path(choice)
        if not path.is_file():
            raise ConfigError(f"targets config file '{choice}' not found")
        return path
    path = conf_dir() / GROUP / f"{choice}.yaml"
    if not path.is_file():
        raise ConfigError.invalid_choice(GROUP, choice, [name for name in group_options(GROUP)])
    return path


def check_pipeline_folder(folder: str) -> str:
    """Return the pipeline folder normalised; it must be a relative path inside the repository."""
    normalised = posixpath.normpath(folder.replace("\\", "/"))
    if posixpath.isabs(normalised) or normalised == ".." or normalised.startswith("../"):
        raise ConfigError(
            f"invalid targets pipeline folder '{folder}': expected a path relative to the repository root, "
            "inside it, such as . or pipelines/ci"
        )
    return normalised


def load_targets_config(choice: str, overrides: list[str] | tuple[str, ...] = ()) -> TargetsConfig:
    """Load a targets config onto its schema, then apply ``key=value`` overrides from the command line."""
    path = targets_config_path(choice)
    loaded = OmegaConf.load(path)
    loaded.pop("defaults", None)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(TargetsConfig), loaded, OmegaConf.from_dotlist(list(overrides)))
    except Exception as error:  # OmegaConf raises several error types for unknown keys and bad values
        message = str(error).splitlines()[0]
        raise ConfigError(
            f"invalid targets config {path}: {message}; valid keys: {', '.join(TargetsConfig.__dataclass_fields__)}"
        ) from error
    config = OmegaConf.to_object(merged)
    config.pipeline = check_pipeline_folder(config.pipeline)
    return config
