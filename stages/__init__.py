"""Stage kinds, one module each. The registry maps a kind to its class path so imports stay lazy."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Library code that stages run besides their own module, as paths relative to the repository root.
_MODELS = ("sarvam_pipeline/models",)
_BACKENDS = ("sarvam_pipeline/backends",)


@dataclass(frozen=True)
class StageSpec:
    class_path: str
    # Source files and folders besides the stage module whose content changes the stage's result.
    code: tuple[str, ...] = ()


REGISTRY: dict[str, StageSpec] = {
    "dataset": StageSpec("stages.dataset:DatasetStage", _MODELS),
    "export_onnx": StageSpec("stages.export_onnx:ExportOnnxStage", _MODELS),
    "export_torchscript": StageSpec("stages.export_torchscript:ExportTorchScriptStage", _MODELS),
    "reference": StageSpec("stages.reference:ReferenceStage", _MODELS),
    "ort_quantize": StageSpec(
        "stages.ort_quantize:OrtQuantizeStage", ("stages/onnx_inputs.py", "stages/keep_float.py", "stages/gap_analysis.py", "stages/metrics.py")
    ),
    "ort_calibrate": StageSpec("stages.ort_calibrate:OrtCalibrateStage", ("stages/ort_quantize.py",)),
    "openvino_convert": StageSpec("stages.openvino_convert:OpenVinoConvertStage", ("stages/onnx_inputs.py",)),
    "openvino_compress": StageSpec(
        "stages.openvino_compress:OpenVinoCompressStage", ("stages/keep_float.py", "stages/gap_analysis.py", "stages/metrics.py")
    ),
    "coreml_convert": StageSpec("stages.coreml_convert:CoreMLConvertStage"),
    "coreml_compress": StageSpec("stages.coreml_compress:CoreMLCompressStage"),
    "aoti_compile": StageSpec("stages.aoti_compile:AotiCompileStage", _MODELS),
    "tensorrt_plan": StageSpec("stages.tensorrt_plan:TensorRtPlanStage"),
    "tensorrt_build": StageSpec("stages.tensorrt_build:TensorRtBuildStage", ("sarvam_pipeline/backends/tensorrt.py",)),
    # The worker runs the model adapter and litert-torch in the LiteRT environment.
    "litert_convert": StageSpec("stages.litert_convert:LiteRtConvertStage", _MODELS + ("stages/litert_worker.py", "sarvam_pipeline/litert_env.py")),
    "qnn_quantize": StageSpec("stages.qnn_quantize:QnnQuantizeStage", ("stages/ort_quantize.py",)),
    "qnn_context": StageSpec("stages.qnn_context:QnnContextStage", ("sarvam_pipeline/backends/qnn.py", "sarvam_pipeline/backends/onnxruntime.py")),
    "coreml_estimate": StageSpec(
        "stages.coreml_estimate:CoreMLEstimateStage", _MODELS + ("stages/coreml_emulation.py", "stages/coreml_compress.py", "stages/metrics.py")
    ),
    "numeric_gap": StageSpec("stages.numeric_gap:NumericGapStage", ("stages/gap_analysis.py", "stages/dataset.py")),
    "validate": StageSpec("stages.validate:ValidateStage", _BACKENDS + ("stages/metrics.py",)),
    "benchmark": StageSpec("stages.benchmark:BenchmarkStage", _BACKENDS),
}


def stage_source_files(kind: str) -> list[Path]:
    """Return the source files whose content enters a stage kind's cache key, without importing it."""
    spec = REGISTRY[kind]
    module_name = spec.class_path.split(":")[0]
    files = [ROOT / (module_name.replace(".", "/") + ".py"), ROOT / "stages" / "base.py"]
    for entry in spec.code:
        path = ROOT / entry
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return files


@lru_cache(maxsize=None)
def get_stage(kind: str):
    """Import and instantiate a stage kind."""
    module_name, class_name = REGISTRY[kind].class_path.split(":")
    return getattr(importlib.import_module(module_name), class_name)()
