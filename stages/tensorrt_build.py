"""Build a TensorRT engine from the shared ONNX export with the settings of the ``tensorrt_plan`` node.

Runs only where ``tensorrt`` imports and an NVIDIA GPU is present, because an engine is compiled for the
GPU that builds it. Elsewhere the node is skipped, and the plan node's ``trtexec_command.txt`` is the build
to run on the target machine.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stages.base import Stage, StageInputs


@dataclass
class TensorRtBuildParams:
    # Device the engine is built for. TensorRT builds for the GPU it runs on.
    device: str = "GPU"


def _calibrator(trt, calibration_file: Path, cache_file: Path, batch_size: int, samples: int):
    """Return an IInt8EntropyCalibrator2 that feeds the calibration split in batches from CUDA memory."""
    import torch

    with np.load(calibration_file) as data:
        arrays = {name: data[name][:samples] for name in data.files}
    count = len(next(iter(arrays.values())))

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self._start = 0
            # Device tensors of the current batch, kept referenced while TensorRT reads them.
            self._batch: dict[str, Any] = {}

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names):
            if self._start + batch_size > count:
                return None
            stop = self._start + batch_size
            self._batch = {name: torch.from_numpy(arrays[name][self._start: stop].astype(np.int64)).cuda() for name in names}
            self._start = stop
            return [int(self._batch[name].data_ptr()) for name in names]

        def read_calibration_cache(self):
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache) -> None:
            cache_file.write_bytes(bytes(cache))

    return EntropyCalibrator()


class TensorRtBuildStage(Stage):
    kind = "tensorrt_build"
    Params = TensorRtBuildParams
    inputs = ("model", "plan", "dataset")
    tools = ("tensorrt",)

    def unavailable_reason(self, params: TensorRtBuildParams) -> str | None:
        from sarvam_pipeline.backends.tensorrt import tensorrt_reason

        return tensorrt_reason()

    def run(self, params: TensorRtBuildParams, inputs: StageInputs, out: Path) -> dict[str, Any]:
        # NOTE: untested here: no NVIDIA GPU with TensorRT on the development hosts.
        import tensorrt as trt

        settings = json.loads((inputs["plan"] / "build_settings.json").read_text(encoding="utf-8"))
        for name in ("build_settings.json", "trtexec_command.txt"):
            shutil.copyfile(inputs["plan"] / name, out / name)

        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        # TensorRT 10 networks are always explicit-batch and deprecate the flag, but TensorRT 8 needs it.
        major = int(trt.__version__.split(".")[0])
        flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(inputs["model"] / "model.onnx")):
            errors = "; ".join(str(parser.get_error(index)) for index in range(parser.num_errors))
            raise RuntimeError(f"TensorRT could not parse model.onnx: {errors}")

        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(settings["workspace_mb"]) << 20)
        profile = builder.create_optimization_profile()
        for name in settings["shapes"]["min"]:
            profile.set_shape(name, *(tuple(settings["shapes"][which][name]) for which in ("min", "opt", "max")))
        config.add_optimization_profile(profile)

        if settings["fp16"]:
            config.set_flag(trt.BuilderFlag.FP16)
        if settings["int8"]:
            calibration = settings["calibration"]
            config.set_flag(trt.BuilderFlag.INT8)
            config.int8_calibrator = _calibrator(
                trt, inputs["dataset"] / "calibration.npz", out / calibration["cache"], calibration["batch_size"], calibration["samples"]
            )
            config.set_calibration_profile(profile)

        self.log.info("building TensorRT %s engine (fp16 %s, int8 %s)", trt.__version__, settings["fp16"], settings["int8"])
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise RuntimeError("TensorRT build_serialized_network failed. The TensorRT log above has the cause.")
        (out / settings["engine"]).write_bytes(bytes(serialized))
        return {"tensorrt": trt.__version__, "engine": settings["engine"], "fp16": settings["fp16"], "int8": settings["int8"]}
