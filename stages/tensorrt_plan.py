"""Write the TensorRT build of one recipe as files that any host can produce and an NVIDIA host can run.

Copies the shared ``model.onnx`` and writes next to it ``build_settings.json`` (the settings the
``tensorrt_build`` stage applies) and ``trtexec_command.txt`` (the same build as one trtexec command line,
run from this folder). For int8 it also copies the calibration split as ``calibration.npz``, so the folder
has everything an NVIDIA host needs to produce the calibration cache.
"""

from __future__ import annotations

import json
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.base import Stage, StageInputs

METHODS = ("none", "fp16", "static")
ENGINE_FILE = "model.engine"
# Written by IInt8EntropyCalibrator2 in tensorrt_build and read by trtexec --calib, because trtexec itself
# cannot calibrate from data.
CALIBRATION_CACHE = "calibration.cache"
CALIBRATION_DATA = "calibration.npz"


@dataclass
class TensorRtPlanParams:
    model: dict[str, Any] = field(default_factory=dict)
    graph: dict[str, Any] = field(default_factory=dict)
    method: str = "none"
    # The optimization profile's batch range (1 to max_batch_size) and the batch it is tuned for.
    max_batch_size: int = 32
    opt_batch_size: int = 1
    # Builder workspace memory pool limit, in MiB.
    workspace_mb: int = 1024
    calibration: dict[str, Any] = field(default_factory=dict)


def build_settings(params: TensorRtPlanParams) -> dict[str, Any]:
    """Return the engine build settings: precision flags, shape profile, workspace and calibration."""
    if params.method not in METHODS:
        raise ValueError(f"invalid method '{params.method}' for TensorRT: expected one of {', '.join(METHODS)}")
    if not 1 <= params.opt_batch_size <= params.max_batch_size:
        raise ValueError(
            f"invalid TensorRT batch sizes: expected 1 <= opt_batch_size ({params.opt_batch_size}) <= max_batch_size ({params.max_batch_size})"
        )

    sequence = int(params.model["sequence_length"])
    names = [spec["name"] for spec in params.graph["inputs"]]
    settings: dict[str, Any] = {
        "onnx": "model.onnx",
        "engine": ENGINE_FILE,
        "fp16": params.method == "fp16",
        "int8": params.method == "static",
        "workspace_mb": params.workspace_mb,
        # The sequence length is static: inputs are padded to the model's sequence_length.
        "shapes": {
            "min": {name: [1, sequence] for name in names},
            "opt": {name: [params.opt_batch_size, sequence] for name in names},
            "max": {name: [params.max_batch_size, sequence] for name in names},
        },
    }
    if settings["int8"]:
        settings["calibration"] = {
            "calibrator": "IInt8EntropyCalibrator2",
            "data": CALIBRATION_DATA,
            "cache": CALIBRATION_CACHE,
            "samples": int(params.calibration.get("samples", 0)),
            "batch_size": params.opt_batch_size,
        }
    return settings


def _shape_list(shapes: dict[str, list[int]]) -> str:
    """Format shapes the way trtexec takes them: ``input_ids:1x32,attention_mask:1x32``."""
    return ",".join(f"{name}:{'x'.join(str(size) for size in shape)}" for name, shape in shapes.items())


def trtexec_command(settings: dict[str, Any]) -> list[str]:
    """Return the trtexec arguments that build the engine the settings describe, run from the plan folder."""
    command = [
        "trtexec",
        f"--onnx={settings['onnx']}",
        f"--saveEngine={settings['engine']}",
        f"--minShapes={_shape_list(settings['shapes']['min'])}",
        f"--optShapes={_shape_list(settings['shapes']['opt'])}",
        f"--maxShapes={_shape_list(settings['shapes']['max'])}",
        f"--memPoolSize=workspace:{settings['workspace_mb']}M",
    ]
    if settings["fp16"]:
        command.append("--fp16")
    if settings["int8"]:
        command += ["--int8", f"--calib={settings['calibration']['cache']}"]
    return command


class TensorRtPlanStage(Stage):
    kind = "tensorrt_plan"
    Params = TensorRtPlanParams
    inputs = ("model", "dataset")

    def run(self, params: TensorRtPlanParams, inputs: StageInputs, out: Path) -> dict[str, Any]:
        settings = build_settings(params)
        shutil.copyfile(inputs["model"] / "model.onnx", out / settings["onnx"])

        if settings["int8"]:
            source = inputs["dataset"] / "calibration.npz"
            if not source.is_file():
                raise FileNotFoundError(f"calibration split not found: {source}; int8 TensorRT builds need the dataset stage's output")
            shutil.copyfile(source, out / CALIBRATION_DATA)

        command = trtexec_command(settings)
        (out / "build_settings.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
        (out / "trtexec_command.txt").write_text(shlex.join(command) + "\n", encoding="utf-8")

        self.log.info("wrote the TensorRT build of %s (method %s): %s", params.model["name"], params.method, shlex.join(command))
        return {"method": params.method, "trtexec_command": shlex.join(command), "settings": settings}
