"""A target: one (model, recipe, chipset, runtime) choice resolved from the composed config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sarvam_pipeline.errors import ConfigError
from sarvam_pipeline.paths import conf_dir, group_options
from sarvam_pipeline.schema import BudgetConfig, QuantConfig


def load_group_option(group: str, name: str, schema: type) -> dict[str, Any]:
    """Load ``conf/<group>/<name>.yaml`` onto its schema, as Hydra would for ``<group>=<name>``."""
    path = conf_dir() / group / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError.invalid_choice(group, name, group_options(group))
    loaded = OmegaConf.load(path)
    loaded.pop("defaults", None)
    merged = OmegaConf.merge(OmegaConf.structured(schema), loaded)
    return OmegaConf.to_container(merged, resolve=True)


def load_recipe(name: str) -> dict[str, Any]:
    """Load a quantization recipe from ``conf/quant/``, for targets that name none (the runtime default)."""
    return load_group_option("quant", name, QuantConfig)


@dataclass(frozen=True)
class Target:
    """Plain-data sections of the config that one build reads."""

    model: dict[str, Any]
    quant: dict[str, Any]
    chipset: dict[str, Any]
    runtime: dict[str, Any]
    data: dict[str, Any]
    benchmark: dict[str, Any]
    validation: dict[str, Any]
    # Options validation and benchmark run with when they differ from the runtime's (fallback=degrade);
    # None means the runtime's own options.
    execution_options: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        return f"{self.model['name']}/{self.chipset['name']}/{self.runtime['name']}/{self.quant['name']}"

    @property
    def budgets(self) -> dict[str, Any] | None:
        """Return the chipset's budgets for this model, checked against BudgetConfig, or None when unset."""
        budgets = self.chipset.get("budgets", {}).get(self.model["name"])
        if budgets is None:
            return None
        try:
            merged = OmegaConf.merge(OmegaConf.structured(BudgetConfig), budgets)
        except Exception as error:  # OmegaConf raises several error types for unknown keys and bad values
            message = str(error).splitlines()[0]
            raise ConfigError(
                f"invalid chipset.budgets.{self.model['name']} of chipset {self.chipset['name']}: {message}; "
                f"valid keys: {', '.join(BudgetConfig.__dataclass_fields__)}"
            ) from error
        return OmegaConf.to_container(merged)

    @classmethod
    def from_config(cls, cfg: DictConfig) -> "Target":
        container = OmegaConf.to_container(cfg, resolve=True)
        quant = container.get("quant")
        # runtime=auto has no default recipe of its own: the decision matrix entry it resolves to gives one.
        if quant is None and container["runtime"]["default_quant"]:
            quant = load_recipe(container["runtime"]["default_quant"])
        return cls(
            model=container["model"],
            quant=quant,
            chipset=container["chipset"],
            runtime=container["runtime"],
            data=container["data"],
            benchmark=container["benchmark"],
            validation=container["validation"],
        )
