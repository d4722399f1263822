"""Layer-wise numeric gap between a float model and its quantized artifact.

Both models run the same inputs with every intermediate tensor they share exposed as an output. ONNX
Runtime matches tensors by name, since its quantizers keep the output names of the nodes they rewrite.
OpenVINO matches ops by friendly name, since NNCF keeps them. A tensor's error is its relative RMS error
against the float model's tensor, taken per channel and then averaged over channels, and it accumulates
everything upstream. A node's local gap is how much the error of its output exceeds the largest error among
its inputs: it singles out the nodes where error enters the network rather than the ones that carry it along.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

# Rows per inference while every intermediate tensor is an output: a BERT-base layer exposes about 30
# tensors of batch x sequence x hidden floats, so memory grows quickly with the batch.
GAP_BATCH_SIZE = 2

# Reference tensors whose RMS is below this are left out, because their relative error is noise.
MIN_REFERENCE_RMS = 1e-8

# OpenVINO op types that carry no activation of their own.
OPENVINO_SKIPPED_TYPES = frozenset({"Parameter", "Result", "Constant", "FakeQuantize", "Convert", "ShapeOf"})

# OpenVINO ops that a compressed or fake-quantized weight passes through before it reaches its consumer.
OPENVINO_WEIGHT_PATH_TYPES = frozenset({"Convert", "Subtract", "Multiply", "Reshape", "Transpose"})


@dataclass
class NodeGap:
    """The numeric gap at one node's output."""

    node: str
    op_type: str
    # Readable name of the layer the node belongs to (the weight's parameter name where one exists).
    layer: str
    tensor: str
    # Relative RMS error of the output against the float model, RMS over channels of ||q - f|| / ||f||.
    error: float
    # Largest error among the node's activation inputs.
    input_error: float
    # error - input_error: the error this node adds.
    local: float
    # Whether the artifact runs this node quantized, so keeping it in float is a choice.
    quantized: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GraphNode:
    name: str
    op_type: str
    inputs: list[str]
    outputs: list[str]
    layer: str


def token_weights(shape: tuple[int, ...], mask: np.ndarray | None) -> np.ndarray | float:
    """Return weights that leave padding positions out of a tensor's error.

    Every axis after the batch axis whose size is the mask's sequence length is taken as a token axis, so
    attention scores ([batch, heads, query, key]) drop padded queries and keys alike. Padding positions carry
    values the model masks out later, and their errors would otherwise dominate the sums.
    NOTE: a hidden size equal to the sequence length would be mistaken for a token axis.
    """
    if mask is None or len(shape) < 2 or shape[0] != mask.shape[0]:
        return 1.0
    weights: np.ndarray | float = 1.0
    for axis in range(1, len(shape)):
        if shape[axis] != mask.shape[1]:
            continue
        view = [1] * len(shape)
        view[0], view[axis] = mask.shape[0], mask.shape[1]
        weights = weights * mask.reshape(view)
    return weights


class ErrorAccumulator:
    """Running per-channel sums of squared error and squared reference per tensor, so batches need not be kept.

    A tensor's error is the RMS over channels (the last axis) of each channel's relative error. Weighting every
    channel alike keeps a few outlier channels, which transformer activations have, from hiding the damage
    that quantization does to all the others.
    """

    def __init__(self) -> None:
        self.error_squares: dict[str, np.ndarray] = {}
        self.reference_squares: dict[str, np.ndarray] = {}
        self.sizes: dict[str, np.ndarray] = {}

    def add(self, name: str, reference: np.ndarray, candidate: np.ndarray, mask: np.ndarray | None = None) -> None:
        if reference.shape != candidate.shape or not np.issubdtype(reference.dtype, np.floating) or reference.ndim == 0:
            return
        weights = np.broadcast_to(token_weights(reference.shape, mask), reference.shape)
        reference = reference.astype(np.float64)
        difference = candidate.astype(np.float64) - reference
        axes = tuple(range(reference.ndim - 1))
        error = (weights * np.square(difference)).sum(axis=axes)
        energy = (weights * np.square(reference)).sum(axis=axes)
        size = weights.sum(axis=axes)
        if name in self.error_squares:
            error, energy, size = error + self.error_squares[name], energy + self.reference_squares[name], size + self.sizes[name]
        self.error_squares[name], self.reference_squares[name], self.sizes[name] = error, energy, size

    def errors(self) -> dict[str, float]:
        result = {}
        for name, energy in self.reference_squares.items():
            rms = np.sqrt(energy / np.maximum(self.sizes[name], 1.0))
            live = rms >= MIN_REFERENCE_RMS
            if not live.any():
                continue
            relative = self.error_squares[name][live] / energy[live]
            result[name] = float(np.sqrt(relative.mean()))
        return result


def attention_mask(batch: dict[str, np.ndarray]) -> np.ndarray | None:
    """Return the batch's [batch, sequence] attention mask as floats, or None when the model takes none."""
    for name, array in batch.items():
        if "mask" in name and array.ndim == 2:
            return (array != 0).astype(np.float64)
    return None


def batches(arrays: dict[str, np.ndarray], samples: int, batch_size: int = GAP_BATCH_SIZE) -> Iterator[dict[str, np.ndarray]]:
    count = min(samples, len(next(iter(arrays.values()))))
    for start in range(0, count, batch_size):
        stop = min(start + batch_size, count)
        yield {name: np.ascontiguousarray(array[start:stop]) for name, array in arrays.items()}


def rank_nodes(nodes: Iterable[GraphNode], errors: dict[str, float], quantized: set[str]) -> list[NodeGap]:
    """Return one NodeGap per node whose first output was compared, the largest local gap first."""
    gaps = []
    for node in nodes:
        if not node.outputs or node.outputs[0] not in errors:
            continue
        tensor = node.outputs[0]
        input_error = max((errors[name] for name in node.inputs if name in errors), default=0.0)
        gaps.append(
            NodeGap(
                node=node.name,
                op_type=node.op_type,
                layer=node.layer,
                tensor=tensor,
                error=errors[tensor],
                input_error=input_error,
                local=errors[tensor] - input_error,
                quantized=node.name in quantized,
            )
        )
    return sorted(gaps, key=lambda gap: (-gap.local, gap.node))


def summarize(gaps: list[NodeGap], top: int) -> dict[str, Any]:
    """Return the report section: the top nodes, the quantized nodes ranked, and local gap per op type."""
    by_op_type: dict[str, dict[str, float]] = {}
    for gap in gaps:
        entry = by_op_type.setdefault(gap.op_type, {"nodes": 0, "local_sum": 0.0, "local_max": 0.0})
        entry["nodes"] += 1
        entry["local_sum"] += max(gap.local, 0.0)
        entry["local_max"] = max(entry["local_max"], gap.local)
    op_types = sorted(
        ({"op_type": name, **values} for name, values in by_op_type.items()), key=lambda row: -row["local_sum"]
    )
    quantized = [gap for gap in gaps if gap.quantized]
    return {
        "compared_tensors": len(gaps),
        "quantized_nodes": len(quantized),
        "top_nodes": [gap.to_dict() for gap in gaps[:top]],
        "top_quantized_nodes": [gap.to_dict() for gap in quantized[:top]],
        "op_types": op_types,
        "largest_error": max((gap.error for gap in gaps), default=0.0),
    }


# ONNX Runtime


def _initializer_names(graph) -> set[str]:
    return {tensor.name for tensor in graph.initializer}


def _onnx_layer_label(node, initializers: set[str], consumers: dict[str, list[Any]]) -> str:
    """Name a node by the parameter it reads: its own ``*.weight`` input or the bias its output feeds.

    A bias read by several nodes is a constant the exporter shared between equal tensors (all-zero biases of a
    freshly initialised model), so it names no layer.
    """
    for name in node.input:
        if name in initializers and re.search(r"\.(weight|bias)$", name) and len(consumers.get(name, [])) == 1:
            return re.sub(r"\.(weight|bias)$", "", name)
    if node.op_type in ("MatMul", "Gemm") and node.output:
        for consumer in consumers.get(node.output[0], []):
            for name in consumer.input:
                if name in initializers and name.endswith(".bias") and len(consumers.get(name, [])) == 1:
                    return name[: -len(".bias")]
    return node.name


def onnx_graph_nodes(model) -> list[GraphNode]:
    """Describe the float ONNX graph's nodes with readable layer labels."""
    graph = model.graph
    initializers = _initializer_names(graph)
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return [
        GraphNode(node.name, node.op_type, [name for name in node.input if name not in initializers],
                  list(node.output), _onnx_layer_label(node, initializers, consumers))
        for node in graph.node
    ]


def onnx_quantized_nodes(float_model, quantized_model) -> set[str]:
    """Return the float graph's node names that the quantized graph runs quantized.

    A node counts as quantized when the quantized graph computes its output tensor with another node or
    from other inputs: the dynamic quantizer ends a MatMul with a scale Mul, a QDQ graph feeds the node
    from DequantizeLinear, and a quantized Gather table ends in DequantizeLinear.
    """
    producers = {output: node for node in quantized_model.graph.node for output in node.output}
    quantized = set()
    for node in float_model.graph.node:
        counterpart = producers.get(node.output[0]) if node.output else None
        if counterpart is None or counterpart.op_type != node.op_type or list(counterpart.input) != list(node.input):
            quantized.add(node.name)
    return quantized


def _session_with_outputs(model, names: list[str]):
    """Return a CPU session of a copy of ``model`` whose graph outputs are the given tensors."""
    import onnx
    import onnxruntime

    augmented = onnx.ModelProto()
    augmented.CopyFrom(model)
    del augmented.graph.output[:]
    augmented.graph.output.extend(onnx.ValueInfoProto(name=name) for name in names)

    options = onnxruntime.SessionOptions()
    # Fusions would remove the tensors being compared.
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(augmented.SerializeToString(), options, providers=["CPUExecutionProvider"])


def onnx_gaps(float_path: Path, quantized_path: Path, arrays: dict[str, np.ndarray], samples: int) -> list[NodeGap]:
    """Compare every tensor the float and quantized ONNX models share, on the first ``samples`` rows."""
    import onnx

    float_model = onnx.load(str(float_path))
    quantized_model = onnx.load(str(quantized_path))
    float_nodes = onnx_graph_nodes(float_model)

    quantized_tensors = {name for node in quantized_model.graph.node for name in node.output}
    float_inputs = {tensor.name for tensor in float_model.graph.input}
    names = [name for node in float_nodes for name in node.outputs if name in quantized_tensors]
    # Graph inputs are exact in both models; they anchor the first nodes' input error at zero.
    names = list(dict.fromkeys(names))

    reference = _session_with_outputs(float_model, names)
    candidate = _session_with_outputs(quantized_model, names)
    feed_names = [item.name for item in reference.get_inputs()]
    accumulator = ErrorAccumulator()
    for batch in batches({name: arrays[name] for name in feed_names}, samples):
        mask = attention_mask(batch)
        for name, expected, actual in zip(names, reference.run(names, batch), candidate.run(names, batch)):
            accumulator.add(name, np.asarray(expected), np.asarray(actual), mask)

    errors = accumulator.errors()
    errors.update({name: 0.0 for name in float_inputs})
    return rank_nodes(float_nodes, errors, onnx_quantized_nodes(float_model, quantized_model))


# OpenVINO


def _openvino_layer_label(op) -> str:
    """Name an op by the friendly name of a weight Constant it reads, else by its own friendly name."""
    for port in op.inputs():
        source = port.get_source_output().get_node()
        for _ in range(4):
            if source.get_type_name() == "Constant":
                name = source.get_friendly_name()
                if re.search(r"\.(weight|bias)$", name):
                    return re.sub(r"\.(weight|bias)$", "", name)
                break
            if source.get_type_name() not in OPENVINO_WEIGHT_PATH_TYPES or source.get_input_size() == 0:
                break
            source = source.input(0).get_source_output().get_node()
    return op.get_friendly_name()


def _openvino_is_quantized(op) -> bool:
    """Return whether an input of ``op`` comes through FakeQuantize or from a low-bit weight Constant."""
    for port in op.inputs():
        source = port.get_source_output().get_node()
        for _ in range(4):
            kind = source.get_type_name()
            if kind == "FakeQuantize":
                return True
            if kind == "Constant":
                if source.get_element_type().get_type_name() in ("i8", "u8", "i4", "u4", "nf4"):
                    return True
                break
            if kind not in OPENVINO_WEIGHT_PATH_TYPES or source.get_input_size() == 0:
                break
            source = source.input(0).get_source_output().get_node()
    return False


def _openvino_activation_ops(model) -> dict[str, Any]:
    """Return the ops with a float output that depends on a model input, by friendly name."""
    ops = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() in OPENVINO_SKIPPED_TYPES or op.get_output_size() == 0:
            continue
        if not op.get_output_element_type(0).is_real():
            continue
        ops[op.get_friendly_name()] = op
    return ops


def _openvino_compiled_with_outputs(core, model, names: list[str]) -> tuple[Any, dict[str, int]]:
    """Compile ``model`` with the named ops' outputs added; return it and each name's output index."""
    ops = _openvino_activation_ops(model)
    model.add_outputs([ops[name].output(0) for name in names])
    wanted = set(names)
    indices = {}
    for index, output in enumerate(model.outputs):
        # A model output's node is its Result; the op that computes it is the Result's input.
        name = output.get_node().input_value(0).get_node().get_friendly_name()
        if name in wanted and name not in indices:
            indices[name] = index
    # f32 inference so the comparison measures the artifact, not the CPU plugin's default bf16 on AMX hosts.
    return core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}), indices


def openvino_gaps(float_xml: Path, quantized_xml: Path, arrays: dict[str, np.ndarray], samples: int) -> list[NodeGap]:
    """Compare every op output the float and quantized OpenVINO IRs share, on the first ``samples`` rows."""
    import openvino as ov

    core = ov.Core()
    float_model = core.read_model(str(float_xml))
    quantized_model = core.read_model(str(quantized_xml))

    float_ops = _openvino_activation_ops(float_model)
    quantized_ops = _openvino_activation_ops(quantized_model)
    names = [name for name, op in float_ops.items() if name in quantized_ops and quantized_ops[name].get_type_name() == op.get_type_name()]
    nodes = []
    for name in names:
        op = float_ops[name]
        inputs = [port.get_source_output().get_node().get_friendly_name() for port in op.inputs()]
        nodes.append(GraphNode(name, op.get_type_name(), inputs, [name], _openvino_layer_label(op)))
    quantized = {name for name in names if _openvino_is_quantized(quantized_ops[name])}
    parameters = {parameter.get_friendly_name() for parameter in float_model.get_parameters()}

    reference, reference_indices = _openvino_compiled_with_outputs(core, float_model, names)
    candidate, candidate_indices = _openvino_compiled_with_outputs(core, quantized_model, names)
    feed_names = [port.get_any_name() for port in reference.inputs]

    accumulator = ErrorAccumulator()
    for batch in batches({name: arrays[name] for name in feed_names}, samples):
        expected = reference(batch, share_inputs=False)
        actual = candidate(batch, share_inputs=False)
        mask = attention_mask(batch)
        for name in names:
            accumulator.add(
                name,
                np.asarray(expected[reference.outputs[reference_indices[name]]]),
                np.asarray(actual[candidate.outputs[candidate_indices[name]]]),
                mask,
            )

    errors = accumulator.errors()
    errors.update({name: 0.0 for name in parameters})
    return rank_nodes(nodes, errors, quantized)
