"""Apply to a float PyTorch module the numeric changes that Core ML conversion and weight compression make.

What is emulated (coremltools 9.0 behaviour, read from its source and from converted programs):

- fp16 compute precision: weights are stored as float16 and every op computes on float16 tensors. Here
  weights are rounded to float16 and every float32 tensor that a PyTorch operation returns is rounded to
  float16. Arithmetic inside each operation stays float32.
- Weight compression of each constant with more than ``weight_threshold`` elements: the weights of
  nn.Linear and nn.Embedding layers (MIL linear and gather ops) are compressed with
  ``coremltools.optimize.torch``, output channel on axis 0 as Core ML takes it.
- Constant lookups: an embedding looked up at indices that do not depend on the inputs (BERT position and
  token-type embeddings) is folded by the converter into one constant of shape ``[1, sequence, features]``.
  Core ML compresses that constant with axis 0, of size 1, as the output channel, so per-channel
  quantization becomes one scale for the whole constant. Here the folded constant is compressed the same
  way and replaces the layer's output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from stages.coreml_estimate import CoreMLEstimateParams

# Weights with at most this many elements stay float in coremltools.optimize.coreml 9.0 by default.
DEFAULT_WEIGHT_THRESHOLD = 2048
# MIL op that consumes the weight of each PyTorch layer type after conversion.
MIL_OP_TYPES = {"Linear": "linear", "Embedding": "gather"}
# MIL op that consumes a folded lookup constant: BERT-style embeddings add it to the token embeddings.
FOLDED_CONSUMER = "add"


def round_to_float16(value: Any) -> Any:
    """Round float32 tensors, also inside tuples and lists, to the nearest float16 value, kept as float32."""
    import torch

    if isinstance(value, torch.Tensor) and value.dtype == torch.float32:
        return value.to(torch.float16).to(torch.float32)
    if isinstance(value, (tuple, list)):
        return type(value)(round_to_float16(item) for item in value)
    return value


def float16_activations():
    """Return a TorchFunctionMode that rounds the float32 result of every PyTorch operation to float16."""
    from torch.overrides import TorchFunctionMode

    class Float16Activations(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            return round_to_float16(func(*args, **(kwargs or {})))

    return Float16Activations()


def round_parameters_to_float16(module) -> None:
    import torch

    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            if tensor.dtype == torch.float32:
                tensor.copy_(tensor.to(torch.float16).to(torch.float32))


def constant_lookups(module, probes: list[tuple]) -> dict[str, "torch.Tensor"]:
    """Return the embedding layers whose lookup indices are the same for every probe input, with the indices.

    The probes must differ from each other and have batch size 1, the shape the model was traced at.
    """
    import torch

    seen: dict[str, list[torch.Tensor]] = {}
    handles = []
    for name, layer in module.named_modules():
        if isinstance(layer, torch.nn.Embedding):
            seen[name] = []
            handles.append(layer.register_forward_pre_hook(lambda _, args, name=name: seen[name].append(args[0].clone())))
    try:
        with torch.no_grad():
            for probe in probes:
                module(*probe)
    finally:
        for handle in handles:
            handle.remove()

    constant = {}
    for name, indices in seen.items():
        if len(indices) == len(probes) and all(torch.equal(indices[0], other) for other in indices[1:]):
            constant[name] = indices[0]
    return constant


def select_layers(module, params: "CoreMLEstimateParams", threshold: int, skip: set[str]) -> tuple[list[str], list[str]]:
    """Return the names of the layers whose weights Core ML compresses, and the exclusions that map to no layer.

    An excluded node maps to a layer when it names the layer's weight as coremltools does (the module path
    with dots replaced by underscores, plus ``_weight``). MIL op names such as ``linear_3`` do not map.
    """
    selected, matched = [], set()
    for name, layer in module.named_modules():
        op_type = MIL_OP_TYPES.get(type(layer).__name__)
        if op_type is None or name in skip:
            continue
        weight_name = f"{name.replace('.', '_')}_weight"
        if weight_name in params.exclude_nodes:
            matched.add(weight_name)
            continue
        if op_type in params.exclude_op_types or layer.weight.numel() <= threshold:
            continue
        selected.append(name)
    unmapped = [name for name in params.exclude_nodes if name not in matched]
    return selected, unmapped


def quantizer_config(params: "CoreMLEstimateParams", block_size: tuple[int, int] | None):
    """Build the ModulePostTrainingQuantizerConfig of a weight_only recipe, with ``block_size`` as (rows, columns)."""
    from coremltools.optimize.torch.quantization import ModulePostTrainingQuantizerConfig

    dtypes = {8: "int8", 4: "int4"}
    if params.weight_bits not in dtypes:
        raise ValueError(f"invalid weight_bits {params.weight_bits} for Core ML weight-only quantization; valid choices: 4, 8")
    settings: dict[str, Any] = {
        "weight_dtype": dtypes[params.weight_bits],
        "quantization_scheme": "symmetric" if params.symmetric_weights else "affine",
    }
    if block_size is not None:
        settings.update(granularity="per_block", block_size=block_size)
    else:
        settings["granularity"] = "per_channel" if params.per_channel else "per_tensor"
    return ModulePostTrainingQuantizerConfig(**settings)


def palettizer_config(params: "CoreMLEstimateParams"):
    from coremltools.optimize.torch.palettization import ModulePostTrainingPalettizerConfig

    palettization = params.palettization
    settings: dict[str, Any] = {"n_bits": palettization["nbits"], "granularity": palettization["granularity"]}
    if palettization["granularity"] == "per_grouped_channel":
        settings["group_size"] = palettization["group_size"]
    return ModulePostTrainingPalettizerConfig(**settings)


def compress_layers(module, layer_configs: dict[str, Any], params: "CoreMLEstimateParams", fp16: bool):
    """Compress the weights of the named layers in place with coremltools.optimize.torch and return the module.

    With ``fp16``, quantization runs on float16 weights, because Core ML computes scales and rounds in
    float16, and gives the same integers and scales then.
    """
    import torch
    from coremltools.optimize.torch.palettization import PostTrainingPalettizer, PostTrainingPalettizerConfig
    from coremltools.optimize.torch.quantization import PostTrainingQuantizer, PostTrainingQuantizerConfig

    class LayerQuantizer(PostTrainingQuantizer):
        # PostTrainingQuantizer 9.0 leaves nn.Embedding out, but Core ML quantizes gather tables too. An
        # embedding table is [rows, features] like a linear weight is [outputs, inputs], and Core ML also
        # takes axis 0 as the output channel of a gather, so the same per-row math applies.
        _supported_modules = PostTrainingQuantizer._supported_modules + (torch.nn.Embedding,)

    if not layer_configs:
        return module
    if params.method == "weight_only":
        if fp16:
            for name in layer_configs:
                module.get_submodule(name).half()
        config = PostTrainingQuantizerConfig(module_name_configs=layer_configs)
        module = LayerQuantizer(module, config).compress(inplace=True)
        return module.float()
    config = PostTrainingPalettizerConfig(module_name_configs=layer_configs)
    return PostTrainingPalettizer(module, config).compress(inplace=True)


def compress_weights(module, names: list[str], params: "CoreMLEstimateParams", fp16: bool) -> tuple[Any, list[str]]:
    """Compress the named layers as Core ML compresses their weights and return the module and the layers changed.

    coremltools.optimize.torch skips a layer whose shape the block or group size does not divide, as Core
    ML does, so the changed layers can be fewer than the named ones.
    """
    import torch

    before = {name: module.get_submodule(name).weight.detach().clone() for name in names}
    if params.method == "weight_only":
        # (1, block_size): an integer block size would skip rows that are a single block.
        block = (1, params.block_size) if params.block_size is not None else None
        config = quantizer_config(params, block)
    else:
        config = palettizer_config(params)
    module = compress_layers(module, {name: config for name in names}, params, fp16)
    changed = [name for name in names if not torch.equal(before[name], module.get_submodule(name).weight.detach())]
    return module, changed


def compress_constant(constant: "torch.Tensor", params: "CoreMLEstimateParams", fp16: bool) -> "torch.Tensor | None":
    """Compress a folded constant of shape [1, rows, ...] as Core ML does, or return None when Core ML skips it.

    The constant is stored as a [1, elements] linear weight, so it has one output channel, as Core ML takes
    axis 0. A Core ML block of ``block_size`` rows on axis 1 is then a run of ``block_size * row_elements``
    elements.
    """
    import torch

    rows = constant.shape[1] if constant.dim() > 1 else 1
    row_elements = constant.numel() // max(rows, 1)
    if params.method == "weight_only":
        block = params.block_size
        if block is not None and rows % block:
            return None
        layout = (1, block * row_elements) if block is not None and block < rows else None
        config = quantizer_config(params, layout)
    else:
        config = palettizer_config(params)

    holder = torch.nn.ModuleDict({"constant": torch.nn.Linear(constant.numel(), 1, bias=False)})
    with torch.no_grad():
        holder["constant"].weight.copy_(constant.reshape(1, -1))
    original = holder["constant"].weight.detach().clone()
    holder = compress_layers(holder, {"constant": config}, params, fp16)
    compressed = holder["constant"].weight.detach()
    if torch.equal(original, compressed):
        return None
    return compressed.reshape(constant.shape).clone()


def fold_constant_lookups(module, lookups: dict[str, "torch.Tensor"], params: "CoreMLEstimateParams", threshold: int, fp16: bool) -> list[str]:
    """Replace the output of each constant lookup by its compressed folded constant and return those layers."""
    import torch

    if FOLDED_CONSUMER in params.exclude_op_types:
        return []
    replaced = []
    for name, indices in lookups.items():
        layer = module.get_submodule(name)
        with torch.no_grad():
            constant = layer.weight[indices].detach().clone()
        if constant.numel() <= threshold:
            continue
        compressed = compress_constant(constant, params, fp16)
        if compressed is None:
            continue
        # The folded constant has the batch size of the trace, 1, so a larger batch repeats it.
        layer.register_forward_hook(lambda _, args, output, value=compressed: value.expand_as(output))
        replaced.append(name)
    return replaced
