"""The interface a runtime implements to add its stages to the plan."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sarvam_pipeline.compiler import SharedNodes
    from sarvam_pipeline.node import Node
    from sarvam_pipeline.target import Target


@dataclass(frozen=True)
class TargetNodes:
    """The nodes that finish one target: the deployable artifact, its accuracy check and its benchmark."""

    artifact: "Node"
    validation: "Node"
    benchmark: "Node"
    # Layer-wise numeric gap against the float model, for quantized artifacts the host can run layer by layer.
    gap: "Node | None" = None

    def all(self) -> tuple["Node", ...]:
        return tuple(node for node in (self.artifact, self.validation, self.benchmark, self.gap) if node is not None)


class RuntimePlanner(ABC):
    """Adds one runtime's stages to the plan, on top of the shared export, data and reference nodes."""

    name: str
    # Quantization methods (QuantConfig.method) this runtime can apply.
    methods: frozenset[str]

    def check_recipe(self, quant: dict[str, Any], options: dict[str, Any] | None = None) -> str | None:
        """Return why this runtime cannot apply the recipe, or None when it can."""
        if quant["method"] not in self.methods:
            return f"method '{quant['method']}' is not one of {sorted(self.methods)}"
        return None

    def build_problem(self, options: dict[str, Any]) -> str | None:
        """Return why this host cannot build the artifact with these runtime options, or None when it can."""
        return None

    def environment_problem(self) -> str | None:
        """Return what to set up before this runtime can build on this host, such as an environment of its own, or None.

        The main job stops with it (exit code 2) before any stage runs. A DVC compile goes on and marks the
        runtime's nodes unavailable, since a pipeline may be built on another host than the one compiling it.
        """
        return None

    @abstractmethod
    def plan_artifact(self, target: "Target", shared: "SharedNodes") -> "Node":
        """Return the node that writes the deployable artifact (upstream nodes come with it)."""

    def backend_options(self, target: "Target") -> dict[str, Any]:
        """Return the options the backend loads the artifact with (provider, device, precision hints)."""
        return dict(target.runtime.get("options", {}))

    def run_options(self, target: "Target") -> dict[str, Any]:
        """Return the options validation and benchmark run with: the fallback's when one was chosen."""
        if target.execution_options is not None:
            return dict(target.execution_options)
        return self.backend_options(target)

    def plan_gap(self, target: "Target", artifact: "Node", shared: "SharedNodes") -> "Node | None":
        """Return the layer-wise numeric gap node, or None where the host cannot run both graphs or nothing was quantized."""
        return None

    def plan_validation(self, target: "Target", artifact: "Node", shared: "SharedNodes") -> "Node":
        """Return the accuracy node; runtimes that cannot run here override this with an estimate."""
        return shared.validation(target, artifact, self.name, self.run_options(target))

    def plan_benchmark(self, target: "Target", artifact: "Node", shared: "SharedNodes") -> "Node":
        """Return the latency node; runtimes override this to change iterations or the options it runs with."""
        return shared.benchmark(target, artifact, self.name, self.run_options(target))


def accuracy_target_enabled(quant: dict[str, Any]) -> bool:
    """Return whether the recipe sets any bound of its accuracy_target, which turns the keep-float search on."""
    target = quant.get("accuracy_target") or {}
    return any(target.get(name) is not None for name in ("cosine_mean", "cosine_worst", "nn_agreement"))


def recipe_params(quant: dict[str, Any], runtime: str, fields: tuple[str, ...]) -> dict[str, Any]:
    """Select the recipe fields a runtime's quantizer reads, plus its runtime-specific options.

    Only these enter the node's key, so editing a field another runtime reads rebuilds nothing here. An
    accuracy_target without bounds is left out, since its other settings change nothing while it is off.
    """
    params = {name: quant[name] for name in fields}
    if "accuracy_target" in params and not accuracy_target_enabled(quant):
        del params["accuracy_target"]
    params["options"] = dict(quant.get("options", {}).get(runtime, {}) or {})
    return params
