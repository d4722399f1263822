"""Command-line entry point: ``python -m sarvam_pipeline chipset=m3 runtime=coreml``."""

from __future__ import annotations

import logging
import math
import os
import sys

# Set before any tool is imported: no hub access, no telemetry.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("OPENVINO_TELEMETRY_ENABLED", "0")
# rich wraps at 80 columns when output is not a terminal (CI logs, pipes); stage labels need more.
if not sys.stdout.isatty():
    os.environ.setdefault("COLUMNS", "160")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from sarvam_pipeline.cli import check_group_overrides, run_target  # noqa: E402
from sarvam_pipeline.errors import PipelineError  # noqa: E402
from sarvam_pipeline.paths import conf_dir  # noqa: E402
from sarvam_pipeline.schema import register_configs  # noqa: E402
from sarvam_pipeline.sweep_objective import job_objective, requested_objective  # noqa: E402

log = logging.getLogger("sarvam_pipeline")

register_configs()


def _is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.get().mode == RunMode.MULTIRUN


@hydra.main(version_base=None, config_path=str(conf_dir()), config_name="config")
def _hydra_main(cfg: DictConfig) -> int | float:
    objective = None
    try:
        objective = requested_objective(cfg)
        code = run_target(cfg)
    except PipelineError as error:
        if _is_multirun():
            # One failing job must not end the sweep; its error is logged and the next job runs.
            log.error("%s", error)
            # A search sweeper minimizes the return value, so a failed job returns infinity to rank last.
            return math.inf if objective else error.exit_code
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    if code and not _is_multirun():
        sys.exit(code)
    if objective:
        return job_objective(cfg, objective)
    return code


def main() -> None:
    try:
        check_group_overrides(sys.argv[1:])
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    _hydra_main()


if __name__ == "__main__":
    main()
