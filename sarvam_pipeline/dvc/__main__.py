"""Command line of the DVC pipelines.

    python -m sarvam_pipeline.dvc compile [--targets NAME|FILE] [--check] [KEY=VALUE ...]
    python -m sarvam_pipeline.dvc run --pipeline FOLDER STAGE      (the command of each generated stage)
    python -m sarvam_pipeline.dvc report --pipeline FOLDER         (the command of the report stage)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

# Set before any tool is imported: no hub access, no telemetry.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("OPENVINO_TELEMETRY_ENABLED", "0")

from sarvam_pipeline.errors import PipelineError  # noqa: E402

log = logging.getLogger("sarvam_pipeline.dvc")

DEFAULT_TARGETS = "default"


def parse_arguments(arguments: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sarvam_pipeline.dvc", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    compile_parser = commands.add_parser("compile", help="write dvc.yaml and params.yaml for a targets config")
    compile_parser.add_argument(
        "--targets",
        default=DEFAULT_TARGETS,
        help="targets config: a name from conf/targets/ or a YAML file (default: %(default)s)",
    )
    compile_parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when the files on disk differ from a fresh compile"
    )
    compile_parser.add_argument("overrides", nargs="*", help="targets config overrides, e.g. recipes=[int8_static]")

    run_parser = commands.add_parser("run", help="build the node of one generated stage")
    run_parser.add_argument("--pipeline", default=".", help="folder of the pipeline's dvc.yaml (default: %(default)s)")
    run_parser.add_argument("stage", help="stage name from the pipeline's dvc.yaml")

    report_parser = commands.add_parser("report", help="write the matrix report from the metrics files")
    report_parser.add_argument(
        "--pipeline", default=".", help="folder of the pipeline's dvc.yaml (default: %(default)s)"
    )
    return parser.parse_args(arguments)


def compile_command(arguments: argparse.Namespace) -> int:
    from sarvam_pipeline.dvc.config import load_targets_config
    from sarvam_pipeline.dvc.generate import compile_pipeline, regenerate_command, stale_files, write_pipeline

    config = load_targets_config(arguments.targets, arguments.overrides)
    generated = compile_pipeline(config, arguments.targets, arguments.overrides)
    summary = (
        f"{generated.targets} targets, {generated.nodes} nodes ({generated.nodes_without_sharing} if no target "
        f"shared any), {generated.stages} of them built here as node stages, plus the report"
    )
    if arguments.check:
        stale = stale_files(generated)
        if stale:
            command = regenerate_command(arguments.targets, arguments.overrides)
            print(f"out of date: {', '.join(stale)}; regenerate with `{command}`", file=sys.stderr)
            return 1
        print(f"up to date: {', '.join(generated.files)} ({summary})")
        return 0
    for path in write_pipeline(generated):
        print(f"wrote {path}")
    print(summary)
    return 0


def run_command(arguments: argparse.Namespace) -> int:
    from sarvam_pipeline.dvc.layout import PipelineLayout
    from sarvam_pipeline.dvc.run_node import run_stage

    run_stage(PipelineLayout(arguments.pipeline), arguments.stage)
    return 0


def report_command(arguments: argparse.Namespace) -> int:
    from sarvam_pipeline.dvc.layout import PipelineLayout
    from sarvam_pipeline.dvc.report import write_report

    write_report(PipelineLayout(arguments.pipeline))
    return 0


COMMANDS = {"compile": compile_command, "run": run_command, "report": report_command}


def main(arguments: list[str] | None = None) -> int:
    parsed = parse_arguments(sys.argv[1:] if arguments is None else arguments)
    # INFO for the pipeline's own loggers only: the exporters log hundreds of INFO lines per graph.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for name in ("sarvam_pipeline", "stages"):
        logging.getLogger(name).setLevel(logging.INFO)
    try:
        return COMMANDS[parsed.command](parsed)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
