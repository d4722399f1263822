"""Command-line entry point: ``python -m sarvam_pipeline chipset=m3 runtime=coreml``."""

from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path

# Set before any tool is imported: no hub access, no telemetry.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("OPENVINO_TELEMETRY_ENABLED", "0")
# rich wraps at 80 columns when output is not a terminal (CI logs, pipes); stage labels need more.
if not sys.stdout.isatty():
    os.environ.setdefault("COLUMNS", "160")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from sarvam_pipeline import sweep_callback  # noqa: E402
from sarvam_pipeline.cli import SWEEP_FAILED_EXIT_CODE, check_group_overrides, is_multirun, run_target  # noqa: E402
from sarvam_pipeline.errors import PipelineError  # noqa: E402
from sarvam_pipeline.paths import conf_dir  # noqa: E402
from sarvam_pipeline.schema import register_configs  # noqa: E402
from sarvam_pipeline.sweep_jobs import exit_text, write_job_status  # noqa: E402
from sarvam_pipeline.sweep_objective import job_objective, requested_objective  # noqa: E402

log = logging.getLogger("sarvam_pipeline")

# 128 + SIGINT, as shells report a process stopped by Ctrl-C.
INTERRUPTED_EXIT_CODE = 130

register_configs()


def _record_job_status(exit_code: int, error: str = "") -> None:
    """Write the exit code of a sweep job into its folder, where the sweep report and exit code read it."""
    from hydra.core.hydra_config import HydraConfig

    write_job_status(Path(HydraConfig.get().runtime.output_dir), exit_code, error)


@hydra.main(version_base=None, config_path=str(conf_dir()), config_name="config")
def _hydra_main(cfg: DictConfig) -> int | float:
    objective = None
    try:
        objective = requested_objective(cfg)
        code = run_target(cfg)
    except KeyboardInterrupt:
        # The store publishes a node only when it is complete, so every node built so far is kept.
        print("error: interrupted; completed stages stay in the artifact store and are reused by the next run", file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT_CODE)
    except PipelineError as error:
        if is_multirun():
            # One failing job must not end the sweep; its error is logged and the next job runs.
            log.error("%s", error)
            _record_job_status(error.exit_code, str(error))
            # A search sweeper minimizes the return value, so a failed job returns infinity to rank last.
            return math.inf if objective else error.exit_code
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    if not is_multirun():
        if code:
            sys.exit(code)
        return code
    _record_job_status(code)
    if objective:
        return job_objective(cfg, objective)
    return code


def check_composition(arguments: list[str]) -> None:
    """Compose the config once with Hydra's compose API, so a wrong type or unknown key is a one-line error.

    Hydra reports these over several lines after starting the job; sweeps (``-m``) are left to Hydra, since
    their values are lists of choices.
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from sarvam_pipeline.errors import ConfigError

    if any(argument in ("-m", "--multirun") for argument in arguments):
        return
    overrides = [a for a in arguments if not a.startswith("-") and not a.lstrip("+~").startswith("hydra")]
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
            compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as error:
        texts = [str(error)] + ([str(error.__cause__)] if error.__cause__ else [])
        lines = [line.strip() for text in texts for line in text.splitlines() if line.strip()]
        skipped = ("full_key", "object_type", "reference_type", "value_type", "key:")
        detail = "; ".join(line for line in lines if not line.startswith(skipped))
        raise ConfigError(f"invalid configuration: {detail}") from error


def main() -> None:
    try:
        check_group_overrides(sys.argv[1:])
        check_composition(sys.argv[1:])
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    try:
        _hydra_main()
    except KeyboardInterrupt:
        exit_interrupted()
    exit_if_sweep_failed()


def exit_interrupted() -> None:
    """Exit with INTERRUPTED_EXIT_CODE after Ctrl-C reached the process that launched a sweep, in one line."""
    interrupted = sweep_callback.write_interrupted_report()
    if interrupted is None:
        print("error: interrupted; completed stages stay in the artifact store", file=sys.stderr)
    else:
        sweep_dir, report = interrupted
        where = f"report of the finished jobs: {report}" if report else f"jobs' logs in {sweep_dir}"
        print(
            f"error: sweep interrupted; rerun the same command to resume, reusing every completed stage ({where})",
            file=sys.stderr,
        )
    sys.exit(INTERRUPTED_EXIT_CODE)


def exit_if_sweep_failed() -> None:
    """Exit with SWEEP_FAILED_EXIT_CODE when a multirun just ended with failed jobs, after one summary line."""
    summary = sweep_callback.last_sweep
    if summary is None or not summary.failed:
        return
    codes = ", ".join(f"#{job} {exit_text(code)}" for job, code in summary.failed)
    where = f"see {summary.report}" if summary.report else f"the sweep report was not written, see the log in {summary.sweep_dir}"
    print(f"error: {len(summary.failed)} of {summary.jobs} sweep jobs failed ({codes}); {where}", file=sys.stderr)
    sys.exit(SWEEP_FAILED_EXIT_CODE)


if __name__ == "__main__":
    main()
