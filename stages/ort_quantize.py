"""Quantize the shared ONNX export with ONNX Runtime's own tools.

Methods: ``none`` copies the float model, ``fp16`` runs ``onnxruntime.transformers.float16`` with float32
inputs and outputs, ``dynamic`` runs ``quantize_dynamic``, ``static`` runs ``quant_pre_process`` and then
``quantize_static`` (QDQ format, ranges calibrated on the calibration split), and ``weight_only`` runs
``MatMulNBitsQuantizer``. The stage writes ``model.onnx``, reloads it on ONNX Runtime and runs one batch
through it before publishing it.
"""

from __future__ import annotations

import fnmatch
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from stages.base import Stage, StageInputs
from stages.keep_float import AccuracyTargetParams, check_target
from stages.onnx_inputs import concrete_shape, numpy_dtype

METHODS = ("none", "fp16", "dynamic", "static", "weight_only")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
DEFAULT_CALIBRATION = {"method": "minmax", "samples": 64, "percentile": 99.999}


@dataclass
class OrtQuantizeParams:
    precision: str = "fp32"
    method: str = "none"
    weight_bits: int = 32
    # None means 8. Static quantization also reads options["activation_bits"], which overrides this field.
    activation_bits: Optional[int] = None
    # Weights per block for weight_only. None uses DEFAULT_BLOCK_SIZE.
    block_size: Optional[int] = None
    per_channel: bool = True
    symmetric_weights: bool = True
    symmetric_activations: bool = False
    # Node names or fnmatch patterns ("node_softmax*") kept in float.
    exclude_nodes: list[str] = field(default_factory=list)
    exclude_op_types: list[str] = field(default_factory=list)
    # Settings passed to the quantizer: extra_options for dynamic and static, keyword arguments of
    # convert_float_to_float16 for fp16, accuracy_level and op_types_to_quantize for weight_only.
    options: dict[str, Any] = field(default_factory=dict)
    # Static only: method (minmax | entropy | percentile), samples (rows of the calibration split),
    # percentile (used by the percentile method).
    calibration: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_CALIBRATION))
    # Execution provider the graph is prepared for (runtime.options.provider) and the provider options it is
    # deployed with. The stage records them in its result; the planner has already adapted the fields above.
    provider: str = "cpu"
    provider_options: dict[str, Any] = field(default_factory=dict)
    # Static only: QuantType name of the activations, replacing the one derived from activation_bits and
    # symmetric_activations (signed when symmetric). VitisAI takes QUInt8 with symmetric ranges.
    activation_type: Optional[str] = None
    # Keep the nodes that lose most accuracy in float until this target is met (off when no bound is set).
    accuracy_target: AccuracyTargetParams = field(default_factory=AccuracyTargetParams)


# Block size of MatMulNBits when the recipe sets none. MatMulNBitsQuantizer in ONNX Runtime 1.32 has no
# per-channel mode for 8-bit weights, because channel_wised_quantize needs the QDQ format, which takes only 4 bits.
# NOTE: QuantConfig documents block_size None as per channel, which weight_only here does not honour.
DEFAULT_BLOCK_SIZE = 32

# Calibration rows per session run. MinMax ranges do not depend on it. The entropy and percentile
# calibrators merge one histogram per batch, so their ranges may shift slightly with it.
CALIBRATION_BATCH_SIZE = 8

# Size given to dynamic dimensions of the smoke batch when no dataset is an input.
SMOKE_BATCH = 2
SMOKE_LENGTH = 16

# Protobuf cannot serialise a message of 2 GiB or more, so larger models keep weights in model.onnx.data.
PROTOBUF_LIMIT_BYTES = 2**31 - 1

# Op types that the quantizers add to a graph, counted in the result.
QUANTIZED_OP_TYPES = (
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "MatMulInteger",
    "DynamicQuantizeMatMul",
    "ConvInteger",
    "QLinearMatMul",
    "MatMulNBits",
    "GatherBlockQuantized",
)

# extra_options keys the stage sets from typed recipe fields. A recipe that also sets them in options is rejected.
RESERVED_EXTRA_OPTIONS = {
    "ActivationSymmetric": "symmetric_activations",
    "WeightSymmetric": "symmetric_weights",
    "CalibPercentile": "calibration.percentile",
}
WEIGHT_ONLY_OPTIONS = ("accuracy_level", "op_types_to_quantize")


class CalibrationReader:
    """Feeds the first rows of the calibration split in batches (ONNX Runtime's CalibrationDataReader protocol)."""

    def __init__(self, arrays: dict[str, np.ndarray], batch_size: int) -> None:
        count = len(next(iter(arrays.values())))
        self._batches = [
            {name: np.ascontiguousarray(array[start: start + batch_size]) for name, array in arrays.items()}
            for start in range(0, count, batch_size)
        ]
        self.set_range(0, len(self._batches))

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._position >= self._end:
            return None
        self._position += 1
        return self._batches[self._position - 1]

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        batch = self.get_next()
        if batch is None:
            raise StopIteration
        return batch

    def __len__(self) -> int:
        return len(self._batches)

    # quantize_static calls this for the CalibStridedMinMax option, with indices in batches.
    def set_range(self, start_index: int, end_index: int) -> None:
        self._position = start_index
        self._end = min(end_index, len(self._batches))


def check_params(params: OrtQuantizeParams) -> None:
    """Raise ValueError for a recipe the chosen ONNX Runtime method cannot apply."""
    if params.method not in METHODS:
        raise ValueError(f"invalid method '{params.method}'; valid choices: {', '.join(METHODS)}")

    if params.method in ("dynamic", "static") and params.weight_bits != 8:
        raise ValueError(f"{params.method} quantization in ONNX Runtime takes weight_bits 8, not {params.weight_bits}")
    if params.method == "weight_only" and params.weight_bits not in (4, 8):
        raise ValueError(f"weight-only quantization in ONNX Runtime takes weight_bits 4 or 8, not {params.weight_bits}")

    bits = activation_bits(params)
    if params.method == "dynamic" and bits != 8:
        raise ValueError(f"dynamic quantization in ONNX Runtime computes 8-bit activations, not {bits}-bit; use method static")

    if params.method in ("dynamic", "static"):
        for key, field_name in RESERVED_EXTRA_OPTIONS.items():
            if key in params.options:
                raise ValueError(f"option '{key}' is set from the recipe field {field_name}; remove it from options")
    if params.method == "none" and params.options:
        raise ValueError(f"method none takes no options, got {sorted(params.options)}")
    if params.method == "weight_only":
        unknown = sorted(set(params.options) - set(WEIGHT_ONLY_OPTIONS))
        if unknown:
            raise ValueError(f"unknown weight_only options {unknown}; valid keys: {', '.join(WEIGHT_ONLY_OPTIONS)}")

    if params.accuracy_target.enabled():
        check_target(params.accuracy_target)
        if params.method not in ("dynamic", "static"):
            raise ValueError(f"accuracy_target applies to methods dynamic and static, not '{params.method}'")

    if params.method == "static":
        calibration = calibration_settings(params)
        if calibration["method"] not in CALIBRATION_METHODS:
            raise ValueError(
                f"invalid calibration method '{calibration['method']}'; valid choices: {', '.join(CALIBRATION_METHODS)}"
            )
        if int(calibration["samples"]) < 1:
            raise ValueError(f"calibration.samples must be at least 1, got {calibration['samples']}")


def activation_bits(params: OrtQuantizeParams) -> int:
    bits = params.options.get("activation_bits", params.activation_bits)
    if bits is None:
        return 8
    if bits not in (8, 16):
        raise ValueError(f"invalid activation_bits {bits}; ONNX Runtime quantizes activations to 8 or 16 bits")
    return int(bits)


def calibration_settings(params: OrtQuantizeParams) -> dict[str, Any]:
    return {**DEFAULT_CALIBRATION, **(params.calibration or {})}


def quantizer_extra_options(params: OrtQuantizeParams) -> dict[str, Any]:
    """Return the options passed on as extra_options, without the ones this stage reads itself."""
    return {key: value for key, value in params.options.items() if key != "activation_bits"}


def parse_tensor_overrides(overrides: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Replace quant_type names ("QUInt8") in a TensorQuantOverrides option by QuantType members.

    quantize_static expects QuantType members there, which a YAML recipe cannot express.
    """
    from onnxruntime.quantization import QuantType

    def to_quant_type(value: Any) -> Any:
        if isinstance(value, QuantType):
            return value
        try:
            return QuantType[str(value)]
        except KeyError:
            raise ValueError(
                f"invalid quant_type '{value}' in TensorQuantOverrides; valid choices: {', '.join(QuantType.__members__)}"
            ) from None

    parsed: dict[str, list[dict[str, Any]]] = {}
    for tensor, entries in overrides.items():
        parsed[tensor] = []
        for entry in entries:
            entry = dict(entry)
            if "quant_type" in entry:
                entry["quant_type"] = to_quant_type(entry["quant_type"])
            if "convert" in entry and "quant_type" in entry["convert"]:
                entry["convert"] = {**entry["convert"], "quant_type": to_quant_type(entry["convert"]["quant_type"])}
            parsed[tensor].append(entry)
    return parsed


def uses_external_data(path: Path) -> bool:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return any(tensor.data_location == onnx.TensorProto.EXTERNAL for tensor in model.graph.initializer)


def save_onnx(model, path: Path, external: bool) -> None:
    """Save a ModelProto as one file, or with its weights in ``<name>.data`` when asked or when too big."""
    import onnx

    if external or model.ByteSize() >= PROTOBUF_LIMIT_BYTES:
        onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=path.name + ".data")
    else:
        onnx.save(model, str(path))


def resolve_excluded_nodes(path: Path, patterns: list[str]) -> list[str]:
    """Return the names of the nodes in the model at ``path`` that match any name or fnmatch pattern.

    Raises ValueError for a pattern that matches no node, since a misspelt name would silently quantize it.
    """
    import onnx

    names = [node.name for node in onnx.load(str(path), load_external_data=False).graph.node]
    selected: list[str] = []
    for pattern in patterns:
        # An exact name first, since exported names may contain fnmatch's special characters ("[", "?").
        matches = [name for name in names if name == pattern or fnmatch.fnmatchcase(name, pattern)]
        if not matches:
            raise ValueError(
                f"exclude_nodes entry '{pattern}' matches no node of {path.name}; "
                f"node names look like {', '.join(names[:3])}"
            )
        selected.extend(name for name in matches if name not in selected)
    return selected


def graph_op_types(path: Path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node}


def op_types_to_quantize(path: Path, registry: set[str], excluded: list[str]) -> list[str]:
    """Return the op types of the graph that the quantizer supports, minus the excluded ones."""
    return sorted((graph_op_types(path) & registry) - set(excluded))


def copy_model(source: Path, target: Path, external: bool) -> None:
    """Copy the float model byte for byte, or re-save it with its weights in ``model.onnx.data``."""
    import onnx

    if external:
        save_onnx(onnx.load(str(source)), target, external=True)
    else:
        shutil.copyfile(source, target)


def quantize_fp16(params: OrtQuantizeParams, source: Path, target: Path, excluded_nodes: list[str], external: bool) -> None:
    import inspect

    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    set_by_stage = {"model", "keep_io_types", "op_block_list", "node_block_list"}
    accepted = set(inspect.signature(convert_float_to_float16).parameters) - set_by_stage
    unknown = sorted(set(params.options) - accepted)
    if unknown:
        raise ValueError(f"unknown fp16 options {unknown}; valid keys: {', '.join(sorted(accepted))}")

    model = convert_float_to_float16(
        onnx.load(str(source)),
        keep_io_types=True,
        # A given op_block_list replaces the default list, which keeps ops without float16 kernels in float32.
        op_block_list=list(DEFAULT_OP_BLOCK_LIST) + list(params.exclude_op_types),
        node_block_list=excluded_nodes or None,
        **params.options,
    )
    save_onnx(model, target, external)


def quantize_dynamic(params: OrtQuantizeParams, source: Path, target: Path, excluded_nodes: list[str], external: bool) -> list[str]:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    op_types = op_types_to_quantize(source, set(IntegerOpsRegistry), params.exclude_op_types)
    quantize_dynamic(
        str(source),
        str(target),
        op_types_to_quantize=op_types,
        per_channel=params.per_channel,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=excluded_nodes,
        use_external_data_format=external,
        extra_options={"WeightSymmetric": params.symmetric_weights, **quantizer_extra_options(params)},
    )
    return op_types


def prepare_static(source: Path, prepared: Path, external: bool) -> None:
    """Run shape inference and graph optimization, as ONNX Runtime's quantization guide recommends.

    ONNX's own shape inference covers the standard ops of a torch.onnx export. ONNX Runtime 1.32's symbolic
    shape inference fails on the BERT export ("Incomplete symbolic shape inference"), so it is skipped.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(
        str(source),
        str(prepared),
        skip_symbolic_shape=True,
        save_as_external_data=external,
        all_tensors_to_one_file=True,
    )


def calibration_method(name: str):
    """Return ONNX Runtime's CalibrationMethod for a recipe's calibration method name."""
    from onnxruntime.quantization import CalibrationMethod

    # NOTE: ONNX Runtime 1.32 runs the entropy calibrator with 128 histogram bins and 128 quantized bins,
    # which leaves one candidate threshold: the full range, as minmax gives.
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}
    return methods[name]


def quantize_static(
    params: OrtQuantizeParams,
    prepared: Path,
    target: Path,
    dataset: Path | None,
    patterns: list[str],
    external: bool,
    calibration_cache: Path | None = None,
) -> tuple[list[str], list[str]]:
    """Calibrate and quantize a prepared model to QDQ. Returns the quantized op types and the excluded node names.

    With ``calibration_cache`` (an ``ort_calibrate`` output made from the same prepared model), the ranges
    come from that file and no calibration runs.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    from stages.dataset import load_calibration_rows

    calibration = calibration_settings(params)
    reader = None
    if calibration_cache is None:
        reader = CalibrationReader(load_calibration_rows(dataset, int(calibration["samples"])), CALIBRATION_BATCH_SIZE)

    bits = activation_bits(params)
    if params.activation_type is not None:
        if params.activation_type not in ("QInt8", "QUInt8", "QInt16", "QUInt16"):
            raise ValueError(f"invalid activation_type '{params.activation_type}'; valid choices: QInt8, QUInt8, QInt16, QUInt16")
        activation_type = QuantType[params.activation_type]
    elif params.symmetric_activations:
        activation_type = QuantType.QInt16 if bits == 16 else QuantType.QInt8
    else:
        activation_type = QuantType.QUInt16 if bits == 16 else QuantType.QUInt8

    extra_options = quantizer_extra_options(params)
    if "TensorQuantOverrides" in extra_options:
        extra_options["TensorQuantOverrides"] = parse_tensor_overrides(extra_options["TensorQuantOverrides"])
    extra_options["ActivationSymmetric"] = params.symmetric_activations
    extra_options["WeightSymmetric"] = params.symmetric_weights
    if calibration["method"] == "percentile":
        extra_options["CalibPercentile"] = float(calibration["percentile"])

    # Patterns are matched after pre-processing, because the optimizer may remove or fold nodes.
    excluded_nodes = resolve_excluded_nodes(prepared, patterns)
    op_types = op_types_to_quantize(prepared, set(QLinearOpsRegistry) | set(QDQRegistry), params.exclude_op_types)
    cache_arguments = {}
    if calibration_cache is not None:
        # quantize_static writes the cache when the file is missing, so it gets a copy, never the stored node file.
        cache_copy = target.parent / f".{target.name}.calibration.json"
        shutil.copyfile(calibration_cache, cache_copy)
        cache_arguments["calibration_cache_path"] = str(cache_copy)
    quantize_static(
        str(prepared),
        str(target),
        reader,
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=op_types,
        per_channel=params.per_channel,
        activation_type=activation_type,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=excluded_nodes,
        use_external_data_format=external,
        calibrate_method=calibration_method(calibration["method"]),
        extra_options=extra_options,
        **cache_arguments,
    )
    if calibration_cache is not None:
        Path(cache_arguments["calibration_cache_path"]).unlink(missing_ok=True)
    return op_types, excluded_nodes


def quantize_weight_only(params: OrtQuantizeParams, source: Path, target: Path, excluded_nodes: list[str], external: bool) -> list[str]:
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    requested = params.options.get("op_types_to_quantize", ["MatMul"])
    op_types = sorted(set(requested) - set(params.exclude_op_types))
    if not op_types:
        raise ValueError(f"weight_only quantizes no op type: op_types_to_quantize {requested} are all in exclude_op_types")
    if "Gather" in op_types and params.weight_bits != 4:
        raise ValueError("MatMulNBitsQuantizer quantizes Gather only to 4 bits; remove Gather from op_types_to_quantize")

    block_size = params.block_size or DEFAULT_BLOCK_SIZE
    config = DefaultWeightOnlyQuantConfig(
        block_size=block_size,
        is_symmetric=params.symmetric_weights,
        accuracy_level=params.options.get("accuracy_level"),
        op_types_to_quantize=tuple(op_types),
        bits=params.weight_bits,
    )
    quantizer = MatMulNBitsQuantizer(str(source), nodes_to_exclude=excluded_nodes, algo_config=config)
    quantizer.process()
    quantizer.model.save_model_to_file(str(target), use_external_data_format=external)
    return op_types


def smoke_feeds(session, dataset: Path | None) -> dict[str, np.ndarray]:
    """Return two calibration rows when a dataset is an input, else a batch of ones (a valid token id and mask)."""
    from stages.dataset import load_split

    if dataset is not None:
        arrays = load_split(dataset, "calibration")
        return {spec.name: np.ascontiguousarray(arrays[spec.name][:SMOKE_BATCH]) for spec in session.get_inputs()}

    return {
        spec.name: np.ones(concrete_shape(spec, SMOKE_BATCH, SMOKE_LENGTH), dtype=numpy_dtype(spec.type))
        for spec in session.get_inputs()
    }


def smoke_check(source: Path, target: Path, dataset: Path | None, feeds: dict[str, np.ndarray] | None = None) -> float:
    """Run one batch through the quantized and the float model on ONNX Runtime's CPU provider.

    The batch is ``feeds`` when given, else ``smoke_feeds``. Returns the lowest per-row cosine between the two
    outputs. Raises ValueError when the quantized model returns another shape or non-finite values.
    """
    import onnxruntime

    session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    reference = onnxruntime.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    if feeds is None:
        feeds = smoke_feeds(session, dataset)
    actual = np.asarray(session.run(None, feeds)[0], dtype=np.float32)
    expected = np.asarray(reference.run(None, feeds)[0], dtype=np.float32)
    if actual.shape != expected.shape:
        raise ValueError(f"quantized model returns shape {actual.shape}, the float model {expected.shape}")
    if not np.isfinite(actual).all():
        raise ValueError(f"quantized model {target} returns NaN or infinite values on the smoke batch")

    actual = actual.reshape(len(actual), -1)
    expected = expected.reshape(len(expected), -1)
    norms = np.linalg.norm(actual, axis=1) * np.linalg.norm(expected, axis=1)
    cosine = (actual * expected).sum(axis=1) / np.clip(norms, 1e-12, None)
    return float(cosine.min())


def count_op_types(path: Path) -> dict[str, int]:
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def file_bytes(path: Path) -> int:
    data = path.with_name(path.name + ".data")
    return path.stat().st_size + (data.stat().st_size if data.is_file() else 0)


class OrtQuantizeStage(Stage):
    kind = "ort_quantize"
    Params = OrtQuantizeParams
    # "dataset" is an input of static recipes and accuracy targets, "calibration" (an ort_calibrate output) of
    # static recipes whose ranges are shared.
    inputs = ("model", "dataset", "calibration")
    tools = ("onnx", "onnxruntime")

    def run(self, params: OrtQuantizeParams, inputs: StageInputs, out: Path) -> dict[str, Any]:
        check_params(params)
        source = inputs["model"] / "model.onnx"
        target = out / "model.onnx"
        dataset = inputs.folders.get("dataset")
        if params.method == "static" and dataset is None and "calibration" not in inputs.folders:
            raise ValueError("static quantization needs the 'dataset' input with calibration.npz or a 'calibration' input")
        if params.accuracy_target.enabled() and dataset is None:
            raise ValueError("accuracy_target needs the 'dataset' input with calibration.npz")
        external = uses_external_data(source)
        self.log.info("%s: method %s, source %s", params.precision, params.method, source)

        result: dict[str, Any] = {"method": params.method, "precision": params.precision, "provider": params.provider}
        if params.provider != "cpu":
            result["provider_options"] = dict(params.provider_options)
        excluded_nodes: list[str] = []
        if params.method != "static":
            excluded_nodes = resolve_excluded_nodes(source, params.exclude_nodes)

        if params.method == "none":
            copy_model(source, target, external)
        elif params.method == "fp16":
            quantize_fp16(params, source, target, excluded_nodes, external)
        elif params.method in ("dynamic", "static"):
            with tempfile.TemporaryDirectory(prefix="ort_quantize.") as scratch:
                op_types, excluded_nodes, search = self.quantize_integer(
                    params, source, target, dataset, excluded_nodes, external, Path(scratch), inputs.folders.get("calibration")
                )
            result["op_types_to_quantize"] = op_types
            if search is not None:
                result["keep_float"] = search
            if params.method == "static":
                result["activation_bits"] = activation_bits(params)
                result["calibration"] = calibration_settings(params)
        else:
            result["op_types_to_quantize"] = quantize_weight_only(params, source, target, excluded_nodes, external)
            result["block_size"] = params.block_size or DEFAULT_BLOCK_SIZE
        result["excluded_nodes"] = excluded_nodes

        # Reload from disk and run one batch, so a model ONNX Runtime cannot load or run is not published.
        result["smoke_cosine_min"] = smoke_check(source, target, dataset)

        counts = count_op_types(target)
        result["quantized_ops"] = {op: counts[op] for op in QUANTIZED_OP_TYPES if op in counts}
        result["file_bytes"] = file_bytes(target)
        result["source_bytes"] = file_bytes(source)
        result["external_data"] = target.with_name(target.name + ".data").is_file()
        if result["external_data"]:
            self.log.warning("weights stored beside the graph in %s.data", target.name)
        self.log.info(
            "%s: %d -> %d bytes, quantized ops %s, smoke-batch cosine vs float %.5f",
            params.method, result["source_bytes"], result["file_bytes"], result["quantized_ops"], result["smoke_cosine_min"],
        )
        return result

    def quantize_integer(
        self,
        params: OrtQuantizeParams,
        source: Path,
        target: Path,
        dataset: Path | None,
        excluded_nodes: list[str],
        external: bool,
        scratch: Path,
        calibration: Path | None = None,
    ) -> tuple[list[str], list[str], dict[str, Any] | None]:
        """Quantize with quantize_dynamic or quantize_static, searching for float nodes when a target is set.

        Returns the quantized op types, the excluded node names and the search record (None without a target).
        """
        float_model = source
        cache = None
        if params.method == "static" and calibration is not None:
            # The calibration node pre-processed the model; its node names are the ones the ranges refer to.
            # quantize_static writes a shape-inferred copy beside its input and deletes it, so it gets a private
            # copy: concurrent jobs on the stored file would race on that copy.
            float_model = scratch / "prepared.onnx"
            for name in ("prepared.onnx", "prepared.onnx.data"):
                if (calibration / name).is_file():
                    shutil.copyfile(calibration / name, scratch / name)
            cache = calibration / "tensors_range.json"
        elif params.method == "static":
            float_model = scratch / "prepared.onnx"
            prepare_static(source, float_model, external)

        def quantize(extra: list[str], destination: Path) -> tuple[list[str], list[str]]:
            if params.method == "dynamic":
                return quantize_dynamic(params, float_model, destination, excluded_nodes + extra, external), excluded_nodes + extra
            return quantize_static(params, float_model, destination, dataset, params.exclude_nodes + extra, external, cache)

        if not params.accuracy_target.enabled():
            op_types, excluded = quantize([], target)
            return op_types, excluded, None

        _, record = search_float_nodes(params.accuracy_target, float_model, dataset, quantize, scratch)
        op_types, excluded = quantize(record["kept_nodes"], target)
        self.log.info(
            "kept %d nodes in float (%s): %s",
            len(record["kept_nodes"]), record["stopped_because"], ", ".join(entry["layer"] for entry in record["kept_float"]) or "none",
        )
        return op_types, excluded, record


def search_float_nodes(
    target: AccuracyTargetParams, float_model: Path, dataset: Path, quantize, scratch: Path
) -> tuple[Path, dict[str, Any]]:
    """Run the keep-float search with ONNX Runtime: quantize with more nodes excluded until ``target`` is met."""
    from stages.gap_analysis import onnx_gaps
    from stages.keep_float import search_on_calibration

    def write(excluded: list[str], folder: Path) -> Path:
        quantize(excluded, folder / "model.onnx")
        return folder / "model.onnx"

    return search_on_calibration(target, float_model, dataset, scratch, write=write, load=load_cpu_session, gaps=onnx_gaps)


def load_cpu_session(path: Path):
    """Return a keep-float Runner for an ONNX model on the CPU provider."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [spec.name for spec in session.get_inputs()]
    return lambda feed: session.run(None, {name: feed[name] for name in names})[0]
