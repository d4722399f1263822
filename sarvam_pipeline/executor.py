"""Run a plan on this machine: nodes in topological order, each built once into the artifact store.

A node whose key is already built and whose files verify is reused (status ``cached``). A node this host
cannot run is ``skipped`` with the reason, and so is everything downstream of it. A failing stage stops the
run with a StageError; its temporary folder is removed, and every node built before it stays in the store.
With a store remote (``store.remote``), a node missing locally is fetched from the remote before it is built
or skipped, and a node built here is pushed to it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from omegaconf import OmegaConf
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sarvam_pipeline.compiler import Plan
from sarvam_pipeline.errors import StageError
from sarvam_pipeline.host_lock import HostLock
from sarvam_pipeline.node import Node
from sarvam_pipeline.store import ArtifactStore
from stages import get_stage
from stages.base import StageInputs

if TYPE_CHECKING:
    from sarvam_pipeline.store_remote import StoreRemote

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """Result of one node in this run: its status, time, reason and manifest."""

    node: Node
    # ran | cached | skipped
    status: str
    seconds: float = 0.0
    reason: str = ""
    path: Path | None = None
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def result(self) -> dict[str, Any]:
        return self.manifest.get("result", {})


def typed_params(node: Node) -> Any:
    """Validate a node's params against its stage's dataclass and return an instance of it."""
    stage = get_stage(node.kind)
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(stage.Params), node.params))


class LocalExecutor:
    """Builds the nodes of a plan in this process."""

    def __init__(
        self,
        store: ArtifactStore,
        show_progress: bool = True,
        remote: StoreRemote | None = None,
        host_lock: HostLock | None = None,
        rebuild: Iterable[str] = (),
    ) -> None:
        self.store = store
        self.show_progress = show_progress
        self.remote = remote
        # Keeps stages of other processes off the cores while a stage measures latency; None runs unguarded.
        self.host_lock = host_lock
        # Stage kinds built again although the store has them (the new folder replaces the old one).
        self.rebuild = frozenset(rebuild)

    def run(self, plan: Plan, keys: Iterable[str] | None = None) -> dict[str, Outcome]:
        nodes = plan.order(keys)
        for node in nodes:
            typed_params(node)
        self.store.clean_temporary()

        outcomes: dict[str, Outcome] = {}
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            disable=not self.show_progress,
            transient=True,
        )
        with progress:
            task = progress.add_task("building", total=len(nodes))
            for number, node in enumerate(nodes, start=1):
                progress.update(task, description=node.label or node.name)
                outcomes[node.key] = self._run_node(node, outcomes, f"stage {number} of {len(nodes)}")
                progress.advance(task)
        return outcomes

    def _run_node(self, node: Node, outcomes: dict[str, Outcome], position: str) -> Outcome:
        blocked = [outcomes[up.key] for _, up in node.inputs if outcomes[up.key].status == "skipped"]
        if blocked:
            reason = f"upstream {blocked[0].node.label or blocked[0].node.name} was skipped: {blocked[0].reason}"
            log.warning("skipped %s: %s", node.label, reason)
            return Outcome(node, "skipped", reason=reason)

        # NOTE: every job of a sweep rebuilds a forced node, so forcing a node that jobs share (dataset, export)
        # builds it once per job and may replace its folder while another job reads it.
        forced = node.kind in self.rebuild
        manifest = None if forced else self.store.read_manifest(node)
        if manifest is not None:
            log.info("cached  %-60s %s", node.label, node.key)
            return Outcome(node, "cached", path=self.store.path_for(node), manifest=manifest)

        stage = get_stage(node.kind)
        params = typed_params(node)
        reason = stage.unavailable_reason(params)
        # A node this host cannot build may still be on the store remote, built by a worker that could.
        if reason and self.remote is None:
            log.warning("skipped %s: %s", node.label, reason)
            return Outcome(node, "skipped", reason=reason)

        with self.store.lock_for(node):
            # Another process may have built the node while this one waited for the lock.
            manifest = None if forced else self.store.read_manifest(node)
            if manifest is not None:
                log.info("cached  %-60s %s (built by another process)", node.label, node.key)
                return Outcome(node, "cached", path=self.store.path_for(node), manifest=manifest)
            if self.remote is not None and not forced and self.remote.fetch(node, self.store):
                manifest = self.store.read_manifest(node)
                if manifest is not None:
                    note = f"fetched from store remote {self.remote.spec}"
                    return Outcome(node, "cached", reason=note, path=self.store.path_for(node), manifest=manifest)
            if reason:
                log.warning("skipped %s: %s", node.label, reason)
                return Outcome(node, "skipped", reason=reason)
            outcome = self._build(node, stage, params, outcomes, position)
            if self.remote is not None:
                self.remote.push(node, self.store)
            return outcome

    def _build(self, node: Node, stage: Any, params: Any, outcomes: dict[str, Outcome], position: str) -> Outcome:
        inputs = StageInputs(
            folders={name: outcomes[up.key].path for name, up in node.inputs},
            results={name: outcomes[up.key].result for name, up in node.inputs},
        )
        log.info("running %-60s %s (%s)", node.label, node.key, position)
        started = time.perf_counter()
        try:
            with self.store.build(node) as folder, self._hold_host(node, stage):
                result = stage.run(params, inputs, folder)
                seconds = time.perf_counter() - started
                manifest = self.store.write_manifest(folder, node, result or {}, seconds)
        except Exception as error:
            message = f"stage {node.label or node.name} failed: {type(error).__name__}: {error}".splitlines()[0]
            raise StageError(message) from error
        log.info("ran     %-60s %.1f s", node.label, seconds)
        return Outcome(node, "ran", seconds=seconds, path=self.store.path_for(node), manifest=manifest)

    def _hold_host(self, node: Node, stage: Any) -> contextlib.AbstractContextManager:
        if self.host_lock is None:
            return contextlib.nullcontext()
        return self.host_lock.hold(exclusive=stage.measures_time, label=node.label or node.name)
