"""Build-time runtime choice and graceful fallback, driven by the decision matrix and a host probe.

* ``auto_runtime`` picks the most preferred matrix entry that this host can build and run, the choice when the
  build host is the device itself. When no entry runs here it picks the most preferred buildable one and
  reports that validation and benchmark cannot run. The pipeline's ``runtime=auto`` instead takes the most
  preferred buildable entry (``sarvam_pipeline.resolve``), so a build for another device gets that device's
  preferred artifact.
* ``check_entry`` returns why this host cannot run an entry (missing runtime or provider, old driver or OS).
* ``fallback_chain`` lists the entries of one runtime that this host can run, for degrade mode: a QDQ model
  built for the QNN EP is still validated, on the CPU EP, when the host has no Hexagon NPU.

Run ``python -m sarvam_pipeline.fallback CHIPSET [--request RUNTIME]`` to see the decision for this host.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, field
from typing import Any

from sarvam_pipeline.errors import ConfigError
from sarvam_pipeline.matrix import DecisionMatrix, MatrixEntry, load_matrix
from sarvam_pipeline.paths import group_options
from sarvam_pipeline.requirements import host_requirements
from sarvam_pipeline.select import unmet_requirements

logger = logging.getLogger(__name__)

AUTO = "auto"


def default_buildable() -> set[str]:
    """Return the runtimes that are build targets: the files in conf/runtime/."""
    return set(group_options("runtime"))


@dataclass
class Decision:
    """The matrix entry a build uses, and why each more preferred entry was passed over."""

    chipset: str
    # "auto", a runtime name such as "coreml", or an entry id such as "onnxruntime:cuda".
    requested: str
    chosen: MatrixEntry | None
    # True when this host can also run the chosen entry (validation and benchmark); False means build only.
    runs_here: bool = False
    # Why this host cannot run the chosen entry; None when it can, or when nothing was chosen.
    run_problem: str | None = None
    passed_over: list[tuple[MatrixEntry, str]] = field(default_factory=list)

    def explanation(self) -> str:
        """Describe the decision in plain lines: the choice first, then one line per entry passed over."""
        head = f"chipset {self.chipset}, request {self.requested}: "
        if self.chosen is None:
            lines = [head + "no matrix entry can be built; see the reasons below"]
        elif self.runs_here:
            lines = [head + f"chose {self.chosen.id} ({self.chosen.compute_unit}, recipe {self.chosen.recipe}); it builds and runs on this host"]
        else:
            lines = [
                head + f"chose {self.chosen.id} ({self.chosen.compute_unit}, recipe {self.chosen.recipe}) to build only; "
                f"validation and benchmark cannot run on this host: {self.run_problem}"
            ]
        lines.extend(f"  passed over {entry.id}: {reason}" for entry, reason in self.passed_over)
        return "\n".join(lines)


def check_entry(entry: MatrixEntry, probe: dict[str, Any], matrix: DecisionMatrix | None = None) -> str | None:
    """Return why this host cannot run the entry (every failed check, joined), or None when it can."""
    matrix = matrix or load_matrix()
    failures = unmet_requirements(host_requirements(entry, matrix), probe)
    return "; ".join(failures) if failures else None


def _build_problem(entry: MatrixEntry, matrix: DecisionMatrix) -> str | None:
    """Return why this host, not the probed one, cannot build the entry's artifact (a TensorRT engine needs a GPU)."""
    from sarvam_pipeline.runtimes import get_planner

    return get_planner(entry.runtime).build_problem(matrix.effective_options(entry))


def _requested_entries(chipset: str, requested: str, entries: list[MatrixEntry]) -> list[MatrixEntry]:
    if requested == AUTO:
        return list(entries)

    request_name = requested.lower()
    selected = [entry for entry in entries if request_name in (entry.runtime.lower(), entry.id.lower())]
    if not selected:
        choices = [AUTO] + sorted({entry.runtime for entry in entries}) + [entry.id for entry in entries]
        raise ConfigError.invalid_choice(f"runtime request for chipset {chipset}", requested, choices)
    return selected


def auto_runtime(chipset: str, probe: dict[str, Any], buildable: set[str], requested: str = AUTO) -> Decision:
    """Choose the matrix entry to build for a chipset on this host.

    ``buildable`` contains the runtimes this host can build (``default_buildable()`` for every build target).
    ``requested`` narrows the choice to one runtime ("coreml") or one entry ("onnxruntime:cuda"). The first
    entry, in the chipset's preference order, that builds and runs here wins; when none runs here, the first
    that builds is chosen with ``runs_here`` False. Raises ConfigError for a request the matrix does not have.
    """
    matrix = load_matrix()
    candidates = _requested_entries(chipset, requested, matrix.chipset(chipset).entries)

    passed_over: list[tuple[MatrixEntry, str]] = []
    build_only: tuple[MatrixEntry, str, int] | None = None
    for entry in candidates:
        if not entry.buildable:
            passed_over.append((entry, f"runtime {entry.runtime} is not a build target yet (buildable: false in conf/matrix/{chipset}.yaml)"))
            continue
        if entry.runtime not in buildable:
            passed_over.append((entry, f"runtime {entry.runtime} cannot be built on this host (buildable here: {', '.join(sorted(buildable)) or 'none'})"))
            continue
        build_problem = _build_problem(entry, matrix)
        if build_problem is not None:
            passed_over.append((entry, f"its artifact cannot be built on this host: {build_problem}"))
            continue

        problem = check_entry(entry, probe, matrix)
        if problem is None:
            decision = Decision(chipset, requested, entry, runs_here=True, passed_over=passed_over)
            logger.info("%s", decision.explanation())
            return decision

        if build_only is None:
            build_only = (entry, problem, len(passed_over))
        passed_over.append((entry, problem))

    if build_only is None:
        decision = Decision(chipset, requested, None, passed_over=passed_over)
        logger.info("%s", decision.explanation())
        return decision

    # Nothing runs here: keep the most preferred buildable entry, listing only the entries ahead of it.
    entry, problem, position = build_only
    decision = Decision(chipset, requested, entry, runs_here=False, run_problem=problem, passed_over=passed_over[:position])
    logger.info("%s", decision.explanation())
    return decision


def fallback_chain(chipset: str, runtime: str, probe: dict[str, Any]) -> list[MatrixEntry]:
    """Return the entries this host can run for an artifact of ``runtime``, most preferred first.

    ``runtime`` is a runtime name ("openvino") or the entry the artifact was built for ("openvino:NPU"). Only
    entries of the same runtime can load the artifact, so the chain never crosses runtimes. It starts with
    the built entry itself when that entry runs here. An empty list means degrade mode has nothing to run.
    """
    matrix = load_matrix()
    entries = matrix.chipset(chipset).entries
    runtime_name = runtime.split(":", 1)[0]
    if runtime_name not in {entry.runtime for entry in entries}:
        raise ConfigError.invalid_choice(f"runtime for chipset {chipset}", runtime, sorted({entry.runtime for entry in entries}))

    chain = []
    for entry in entries:
        if entry.runtime != runtime_name:
            continue
        problem = check_entry(entry, probe, matrix)
        if problem is None:
            chain.append(entry)
        else:
            logger.debug("degrade mode skips %s: %s", entry.id, problem)

    # The built entry goes first when it runs here; the others keep their preference order.
    chain.sort(key=lambda entry: entry.id.lower() != runtime.lower())
    return chain


def main(argv: list[str] | None = None) -> int:
    """Print the runtime decision for a chipset on this host."""
    from sarvam_pipeline.probe import probe_host

    parser = argparse.ArgumentParser(prog="python -m sarvam_pipeline.fallback", description=__doc__.splitlines()[0])
    parser.add_argument("chipset", help="a chipset name from conf/chipset/")
    parser.add_argument("--request", default=AUTO, help="auto (default), a runtime name, or an entry id such as onnxruntime:cuda")
    args = parser.parse_args(argv)

    try:
        # An unknown chipset is reported before the probe, which takes seconds.
        load_matrix().chipset(args.chipset)
        decision = auto_runtime(args.chipset, probe_host(), default_buildable(), requested=args.request)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return error.exit_code
    print(decision.explanation())
    return 0 if decision.chosen is not None else 1


if __name__ == "__main__":
    sys.exit(main())
