"""Apply a quantization recipe to the float32 OpenVINO IR and write ``model.xml`` and ``model.bin``.

Methods: ``none`` copies the IR, ``fp16`` stores FP16 weights, ``static`` runs NNCF post-training
quantization calibrated on the calibration split, and ``weight_only`` runs NNCF weight compression.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from stages.base import Stage, StageInputs
from stages.keep_float import AccuracyTargetParams, check_target
from stages.dataset import load_split

# Keys of the recipe's ``options.openvino`` section that each method reads.
STATIC_OPTIONS = frozenset(
    {"model_type", "target_device", "fast_bias_correction", "smooth_quant_alpha", "overflow_fix"}
)
WEIGHT_ONLY_OPTIONS = frozenset({"ratio", "all_layers", "backup_mode"})
METHOD_OPTIONS = {"none": frozenset(), "fp16": frozenset(), "static": STATIC_OPTIONS, "weight_only": WEIGHT_ONLY_OPTIONS}

# Valid values of the options that name an NNCF enum member (nncf 3.4.0), compared in lower case.
OPTION_CHOICES = {
    "model_type": ("transformer",),
    "target_device": ("any", "cpu", "gpu", "npu", "cpu_spr"),
    "overflow_fix": ("enable", "first_layer_only", "disable"),
    "backup_mode": ("none", "int8_sym", "int8_asym"),
}

# Recipe calibration methods, in ONNX Runtime's names. activation_range_estimator maps each onto NNCF.
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")


@dataclass
class CalibrationParams:
    method: str = "minmax"
    samples: int = 64
    percentile: float = 99.999


@dataclass
class OpenVinoCompressParams:
    method: str = "none"
    weight_bits: int = 32
    activation_bits: int | None = None
    block_size: int | None = None
    per_channel: bool = True
    symmetric_weights: bool = True
    symmetric_activations: bool = False
    exclude_nodes: list[str] = field(default_factory=list)
    exclude_op_types: list[str] = field(default_factory=list)
    # The recipe's options.openvino section. STATIC_OPTIONS and WEIGHT_ONLY_OPTIONS list the valid keys.
    options: dict[str, Any] = field(default_factory=dict)
    calibration: CalibrationParams = field(default_factory=CalibrationParams)
    # Keep the nodes that lose most accuracy in float until this target is met (off when no bound is set).
    accuracy_target: AccuracyTargetParams = field(default_factory=AccuracyTargetParams)


def recipe_problem(recipe: Mapping[str, Any]) -> str | None:
    """Return why NNCF and OpenVINO cannot apply a recipe, or None when they can.

    ``recipe`` has the fields of OpenVinoCompressParams, and its ``options`` is the openvino section only.
    """
    method = recipe["method"]
    if method not in METHOD_OPTIONS:
        return f"method '{method}' is not one of {sorted(METHOD_OPTIONS)}"

    unknown = sorted(set(recipe.get("options") or {}) - METHOD_OPTIONS[method])
    if unknown:
        valid = ", ".join(sorted(METHOD_OPTIONS[method])) or "none"
        return f"unknown options.openvino keys {unknown} for method '{method}'; valid keys: {valid}"

    problem = _option_problem(recipe.get("options") or {})
    if problem is not None:
        return problem
    target = recipe.get("accuracy_target") or {}
    if any(target.get(name) is not None for name in ("cosine_mean", "cosine_worst", "nn_agreement")) and method not in ("static", "weight_only"):
        return f"accuracy_target applies to methods static and weight_only, not '{method}'"
    if method == "static":
        return _static_problem(recipe)
    if method == "weight_only":
        return _weight_only_problem(recipe)
    return None


def _option_problem(options: Mapping[str, Any]) -> str | None:
    for name, choices in OPTION_CHOICES.items():
        if name in options and str(options[name]).lower() not in choices:
            return f"options.openvino.{name} '{options[name]}' is invalid; valid values: {', '.join(choices)}"

    for name in ("fast_bias_correction", "all_layers"):
        if name in options and not isinstance(options[name], bool):
            return f"options.openvino.{name} must be true or false, not {options[name]!r}"

    ranges = {"ratio": (0.0, 1.0), "smooth_quant_alpha": (float("-inf"), 1.0)}
    for name, (low, high) in ranges.items():
        if name not in options:
            continue
        value = options[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            return f"options.openvino.{name} must be a number in [{low}, {high}], not {value!r}"
    return None


def _static_problem(recipe: Mapping[str, Any]) -> str | None:
    if recipe["weight_bits"] != 8 or recipe.get("activation_bits") not in (None, 8):
        return (
            "static quantization in OpenVINO takes 8-bit weights and activations, not "
            f"weight_bits {recipe['weight_bits']} and activation_bits {recipe.get('activation_bits')}"
        )
    calibration = recipe.get("calibration") or {}
    if calibration.get("method", "minmax") not in CALIBRATION_METHODS:
        return f"calibration method '{calibration['method']}' is not one of {list(CALIBRATION_METHODS)}"
    return None


def _weight_only_problem(recipe: Mapping[str, Any]) -> str | None:
    bits = recipe["weight_bits"]
    if bits not in (4, 8):
        return f"weight-only compression in OpenVINO takes weight_bits 4 or 8, not {bits}"

    options = recipe.get("options") or {}
    if bits == 8:
        if recipe.get("block_size") is not None or not recipe["per_channel"]:
            return "NNCF compresses 8-bit weights per output channel only; set per_channel: true and block_size: null"
        if options.get("ratio", 1.0) != 1.0 or "all_layers" in options or "backup_mode" in options:
            return "NNCF's 8-bit weight compression takes no ratio, all_layers or backup_mode option"
        return None

    if recipe.get("block_size") is None and not recipe["per_channel"]:
        return "NNCF compresses 4-bit weights per channel or per block; set block_size or per_channel: true"
    return None


def count_fake_quantize(model) -> int:
    return sum(1 for op in model.get_ops() if op.get_type_name() == "FakeQuantize")


def count_compressed_weights(model) -> dict[str, int]:
    """Count compressed weight tensors by element type (i8, u8, i4, u4).

    NNCF stores a compressed weight as a low-bit Constant, then Convert, then Subtract (zero point) or
    Multiply (scale), with the weight as input 0. Zero points are low-bit Constants too but enter
    Subtract as input 1, so they are not counted.
    """
    counts: Counter[str] = Counter()
    for op in model.get_ops():
        element_type = op.get_element_type().get_type_name() if op.get_type_name() == "Constant" else ""
        if element_type not in ("i8", "u8", "i4", "u4"):
            continue
        for convert_input in op.output(0).get_target_inputs():
            convert = convert_input.get_node()
            if convert.get_type_name() != "Convert":
                continue
            consumers = convert.output(0).get_target_inputs()
            if any(port.get_node().get_type_name() in ("Subtract", "Multiply") and port.get_index() == 0 for port in consumers):
                counts[element_type] += 1
                break
    return dict(sorted(counts.items()))


class OpenVinoCompressStage(Stage):
    kind = "openvino_compress"
    Params = OpenVinoCompressParams
    inputs = ("model", "dataset")
    tools = ("openvino", "nncf")

    def tools_for(self, params: dict[str, Any]) -> tuple[str, ...]:
        # Copying or storing FP16 weights does not run NNCF, so an NNCF upgrade must not rebuild them.
        if params.get("method") in ("none", "fp16"):
            return ("openvino",)
        return tuple(self.tools)

    def run(self, params: OpenVinoCompressParams, inputs: StageInputs, out: Path) -> dict[str, Any]:
        problem = recipe_problem(asdict(params))
        if problem is not None:
            raise ValueError(f"invalid recipe for OpenVINO: {problem}")

        source = inputs["model"] / "model.xml"
        if params.method == "none":
            shutil.copyfile(source, out / "model.xml")
            shutil.copyfile(source.with_suffix(".bin"), out / "model.bin")
            self.log.info("kept the float32 IR")
            return {"mode": "fp32"}

        import openvino as ov

        model = ov.Core().read_model(str(source))
        if params.method == "fp16":
            ov.save_model(model, str(out / "model.xml"), compress_to_fp16=True)
            self.log.info("stored FP16 weights")
            return {"mode": "fp16"}

        if params.accuracy_target.enabled():
            check_target(params.accuracy_target)
            if "dataset" not in inputs.folders:
                raise ValueError("accuracy_target needs the 'dataset' input with calibration.npz")
            with tempfile.TemporaryDirectory(prefix="openvino_compress.") as scratch:
                record = self.search_float_nodes(params, source, inputs["dataset"], Path(scratch))
            params = replace(params, exclude_nodes=list(params.exclude_nodes) + record["kept_nodes"])
            self.log.info(
                "kept %d nodes in float (%s): %s",
                len(record["kept_nodes"]), record["stopped_because"], ", ".join(entry["layer"] for entry in record["kept_float"]) or "none",
            )
        else:
            record = None

        compressed, result = self.compress(model, params, inputs.folders.get("dataset"))
        # compress_to_fp16=False keeps scales and unquantized weights in fp32. Low-bit weights stay as
        # NNCF wrote them.
        ov.save_model(compressed, str(out / "model.xml"), compress_to_fp16=False)
        if record is not None:
            result["keep_float"] = record
        return result

    def compress(self, model, params: OpenVinoCompressParams, dataset_folder: Path | None) -> tuple[Any, dict[str, Any]]:
        if params.method == "static":
            return self.quantize(model, params, dataset_folder)
        return self.compress_weights(model, params)

    def search_float_nodes(self, params: OpenVinoCompressParams, source: Path, dataset_folder: Path, scratch: Path) -> dict[str, Any]:
        """Run the keep-float search with NNCF: quantize with a growing ignored scope until the target is met."""
        import openvino as ov

        from stages.gap_analysis import openvino_gaps
        from stages.keep_float import search_on_calibration

        core = ov.Core()

        def load(path: Path):
            # f32 inference, so the search measures the quantized model rather than the CPU plugin's bf16.
            compiled = core.compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
            names = [port.get_any_name() for port in compiled.inputs]
            return lambda feed: np.asarray(compiled({name: feed[name] for name in names}, share_inputs=False)[compiled.outputs[0]])

        def write(excluded: list[str], folder: Path) -> Path:
            candidate = replace(params, exclude_nodes=list(params.exclude_nodes) + excluded)
            compressed, _ = self.compress(core.read_model(str(source)), candidate, dataset_folder)
            ov.save_model(compressed, str(folder / "model.xml"), compress_to_fp16=False)
            return folder / "model.xml"

        _, record = search_on_calibration(params.accuracy_target, source, dataset_folder, scratch, write=write, load=load, gaps=openvino_gaps)
        return record

    def quantize(self, model, params: OpenVinoCompressParams, dataset_folder: Path) -> tuple[Any, dict[str, Any]]:
        """Run NNCF post-training quantization with activation ranges from the calibration split."""
        import nncf

        split = load_split(dataset_folder, "calibration")
        calibration = nncf.Dataset(calibration_items(split, [port.get_any_name() for port in model.inputs]))
        available = len(next(iter(split.values())))
        subset_size = min(params.calibration.samples, available)
        if subset_size < params.calibration.samples:
            self.log.warning("calibration.samples is %d but the calibration split has %d samples; using %d",
                             params.calibration.samples, available, subset_size)

        options = params.options
        preset = nncf.QuantizationPreset.PERFORMANCE if params.symmetric_activations else nncf.QuantizationPreset.MIXED
        model_type = nncf.ModelType.TRANSFORMER if str(options.get("model_type")).lower() == "transformer" else None
        target_device = nncf.TargetDevice[str(options.get("target_device", "ANY")).upper()]
        quantized = nncf.quantize(
            model,
            calibration,
            preset=preset,
            target_device=target_device,
            subset_size=subset_size,
            fast_bias_correction=options.get("fast_bias_correction", True),
            model_type=model_type,
            ignored_scope=ignored_scope(params),
            advanced_parameters=advanced_quantization_parameters(params),
        )

        fake_quantize = count_fake_quantize(quantized)
        self.log.info("NNCF inserted %d FakeQuantize ops (%s preset, %d calibration samples)",
                      fake_quantize, preset.value, subset_size)
        return quantized, {
            "mode": "int8_static",
            "preset": preset.value,
            "model_type": options.get("model_type"),
            "target_device": target_device.value,
            "calibration_method": params.calibration.method,
            "calibration_samples": subset_size,
            "fake_quantize_ops": fake_quantize,
        }

    def compress_weights(self, model, params: OpenVinoCompressParams) -> tuple[Any, dict[str, Any]]:
        """Run NNCF data-free weight compression to 8 or 4 bits."""
        import nncf

        symmetry = "SYM" if params.symmetric_weights else "ASYM"
        mode = nncf.CompressWeightsMode[f"INT{params.weight_bits}_{symmetry}"]
        options = params.options
        arguments: dict[str, Any] = {"mode": mode, "ignored_scope": ignored_scope(params)}
        if params.weight_bits == 4:
            # group_size -1 is one scale per output channel.
            arguments["group_size"] = params.block_size if params.block_size is not None else -1
            arguments["ratio"] = float(options.get("ratio", 1.0))
            if "all_layers" in options:
                arguments["all_layers"] = options["all_layers"]
            if "backup_mode" in options:
                arguments["backup_mode"] = nncf.BackupMode[str(options["backup_mode"]).upper()]
        compressed = nncf.compress_weights(model, **arguments)

        counts = count_compressed_weights(compressed)
        self.log.info("NNCF compressed weights with %s: %s", mode.value, counts)
        result = {"mode": mode.value, "compressed_weights": counts}
        for name in ("group_size", "ratio", "all_layers"):
            if name in arguments:
                result[name] = arguments[name]
        if "backup_mode" in arguments:
            result["backup_mode"] = arguments["backup_mode"].value
        return compressed, result


def calibration_items(split: dict[str, np.ndarray], input_names: list[str]) -> list[dict[str, np.ndarray]]:
    """Split the calibration arrays into one-sample batches, so NNCF's subset_size counts samples."""
    missing = [name for name in input_names if name not in split]
    if missing:
        raise KeyError(f"calibration split has no arrays for model inputs {missing}; it has {sorted(split)}")
    count = len(split[input_names[0]])
    return [{name: split[name][index: index + 1] for name in input_names} for index in range(count)]


def ignored_scope(params: OpenVinoCompressParams):
    """Build the NNCF ignored scope from the recipe's excluded node names and OpenVINO op types."""
    import nncf

    if not params.exclude_nodes and not params.exclude_op_types:
        return None
    # NNCF raises when a name or type matches nothing, so a misspelled exclusion fails loudly.
    return nncf.IgnoredScope(names=list(params.exclude_nodes), types=list(params.exclude_op_types))


def advanced_quantization_parameters(params: OpenVinoCompressParams):
    """Map the recipe's weight granularity, weight symmetry, calibration method and SmoothQuant alpha."""
    import nncf
    from nncf.common.quantization.structs import QuantizationScheme
    from nncf.quantization.advanced_parameters import (
        AdvancedSmoothQuantParameters,
        OverflowFix,
        QuantizationParameters,
    )

    weights = QuantizationParameters(
        per_channel=params.per_channel,
        mode=QuantizationScheme.SYMMETRIC if params.symmetric_weights else QuantizationScheme.ASYMMETRIC,
    )
    arguments: dict[str, Any] = {
        "weights_quantization_params": weights,
        "activations_range_estimator_params": activation_range_estimator(params.calibration),
    }
    if "overflow_fix" in params.options:
        # Half-range weights that avoid int16 saturation in the u8 x i8 instructions of CPUs without VNNI.
        arguments["overflow_fix"] = OverflowFix(str(params.options["overflow_fix"]).lower())

    alpha = params.options.get("smooth_quant_alpha")
    if alpha is not None:
        # A negative alpha turns SmoothQuant off. NNCF runs SmoothQuant only with model_type transformer.
        arguments["smooth_quant_alphas"] = AdvancedSmoothQuantParameters(matmul=float(alpha))
    return nncf.AdvancedQuantizationParameters(**arguments)


def activation_range_estimator(calibration: CalibrationParams):
    """Map a calibration method onto NNCF's activation range estimator.

    minmax is the global minimum and maximum over the calibration samples, as ONNX Runtime's MinMax
    calibrator computes it. percentile averages the per-sample percentiles, where ONNX Runtime takes one
    percentile over all samples. entropy (ONNX Runtime's KL-divergence calibrator) has no NNCF
    equivalent, so it maps to NNCF's histogram estimator, which picks the range that minimises the
    quantization error on a histogram of the activations.
    """
    from nncf.quantization.range_estimator import (
        AggregatorType,
        RangeEstimatorParameters,
        RangeEstimatorParametersSet,
        StatisticsCollectorParameters,
        StatisticsType,
    )

    if calibration.method == "minmax":
        return RangeEstimatorParametersSet.MINMAX
    if calibration.method == "entropy":
        return RangeEstimatorParametersSet.HISTOGRAM
    outlier_probability = 1.0 - calibration.percentile / 100.0
    bound = StatisticsCollectorParameters(
        statistics_type=StatisticsType.QUANTILE,
        aggregator_type=AggregatorType.MEAN,
        quantile_outlier_prob=outlier_probability,
    )
    return RangeEstimatorParameters(min=bound, max=bound)
