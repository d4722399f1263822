"""Compress the weights of a Core ML mlprogram with ``coremltools.optimize.coreml`` into ``model.mlpackage``.

Recipes ``none`` and ``fp16`` copy the converted package, whose precision the convert stage already set.
``weight_only`` applies ``linear_quantize_weights`` (int8 or int4) and ``palettize`` applies
``palettize_weights`` (k-means lookup tables). Both compress every constant weight with more than
``weight_threshold`` elements (coremltools default 2048, settable in ``quant.options.coreml``), embedding
tables included.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from stages.base import Stage, StageInputs

# Suffix coremltools adds to a weight's name when an fp16 program casts it.
FP16_SUFFIX = "_to_fp16"
# Core ML weight dtype of each weight_bits value of a weight_only recipe.
WEIGHT_DTYPES = {8: "int8", 4: "int4"}
# Weight names listed in the result for tensors over the threshold that stayed float.
MAX_LISTED_NAMES = 20


@dataclass
class CoreMLCompressParams:
    precision: str = "fp16"
    method: str = "none"
    weight_bits: int = 16
    block_size: Optional[int] = None
    per_channel: bool = True
    symmetric_weights: bool = True
    # Weight names as coremltools shows them, without the _to_fp16 suffix (encoder_layer_0_attention_self_query_weight),
    # or names of the ops that consume them (linear_0).
    exclude_nodes: list[str] = field(default_factory=list)
    # MIL op types whose weights stay float, for example linear or gather.
    exclude_op_types: list[str] = field(default_factory=list)
    # Extra fields of OpLinearQuantizerConfig or OpPalettizerConfig, for example weight_threshold.
    options: dict[str, Any] = field(default_factory=dict)
    palettization: dict[str, Any] = field(default_factory=dict)


def quantizer_config(params: CoreMLCompressParams) -> tuple[Any, dict[str, Any]]:
    """Build the OpLinearQuantizerConfig or OpPalettizerConfig of a recipe and return it with its arguments."""
    import coremltools.optimize.coreml as cto

    if params.method == "weight_only":
        if params.weight_bits not in WEIGHT_DTYPES:
            raise ValueError(f"invalid weight_bits {params.weight_bits} for Core ML weight-only quantization; valid choices: 4, 8")
        settings: dict[str, Any] = {
            "mode": "linear_symmetric" if params.symmetric_weights else "linear",
            "dtype": WEIGHT_DTYPES[params.weight_bits],
        }
        if params.block_size is not None:
            settings.update(granularity="per_block", block_size=params.block_size)
        else:
            settings["granularity"] = "per_channel" if params.per_channel else "per_tensor"
        config_class = cto.OpLinearQuantizerConfig
    else:
        palettization = params.palettization
        settings = {"mode": palettization["mode"], "nbits": palettization["nbits"], "granularity": palettization["granularity"]}
        if palettization["granularity"] == "per_grouped_channel":
            settings["group_size"] = palettization["group_size"]
        config_class = cto.OpPalettizerConfig

    settings.update(params.options)
    try:
        return config_class(**settings), settings
    except TypeError as error:
        raise ValueError(f"invalid quant.options.coreml {params.options} for {config_class.__name__}: {error}") from error


def resolve_exclusions(weights: dict[str, Any], exclude_nodes: list[str]) -> tuple[list[str], list[str]]:
    """Map excluded names onto const or op names of the program and return (names found, names not found)."""
    found, missing = [], []
    for name in exclude_nodes:
        matches = [
            weight_name for weight_name in weights if name in (weight_name, weight_name.removesuffix(FP16_SUFFIX))
        ]
        matches += [op.name for metadata in weights.values() for op in metadata.child_ops if op.name == name]
        if matches:
            found.extend(dict.fromkeys(matches))
        else:
            missing.append(name)
    return found, missing


def weight_summary(mlmodel, threshold: int) -> dict[str, Any]:
    """Count compressed weights and list the float ones over the threshold, read back from the program."""
    import coremltools.optimize.coreml as cto
    import numpy as np

    # A compressed weight is one constexpr op fed by several consts (data, scale, lookup table), so the
    # constexpr ops are counted, not the consts.
    constexpr_ops, float_names = set(), []
    for name, metadata in cto.get_weights_metadata(mlmodel, weight_threshold=0).items():
        decompressors = {op.name for op in metadata.child_ops if op.op_type.startswith("constexpr_")}
        constexpr_ops |= decompressors
        if not decompressors and np.issubdtype(metadata.val.dtype, np.floating) and metadata.val.size > threshold:
            float_names.append(name)
    return {
        "compressed_weights": len(constexpr_ops),
        "float_weights_over_threshold": len(float_names),
        "float_weight_names": float_names[:MAX_LISTED_NAMES],
    }


class CoreMLCompressStage(Stage):
    kind = "coreml_compress"
    Params = CoreMLCompressParams
    inputs = ("model",)
    tools = ("coremltools", "numpy")

    def run(self, params: CoreMLCompressParams, inputs: StageInputs, out: Path) -> dict[str, Any]:
        source = inputs["model"] / "model.mlpackage"
        path = out / "model.mlpackage"
        if params.method in ("none", "fp16"):
            shutil.copytree(source, path)
            self.log.info("method %s: copied the converted package unchanged", params.method)
            return {"method": params.method, "compressed_weights": 0}
        if params.method not in ("weight_only", "palettize"):
            raise ValueError(f"invalid method '{params.method}' for Core ML; valid choices: none, fp16, weight_only, palettize")

        import coremltools as ct
        import coremltools.optimize.coreml as cto

        mlmodel = ct.models.MLModel(str(source), skip_model_load=True)
        op_config, settings = quantizer_config(params)
        threshold = op_config.weight_threshold

        # Excluded weights get a None config, which coremltools reads as "leave float".
        weights = cto.get_weights_metadata(mlmodel, weight_threshold=0)
        excluded, missing = resolve_exclusions(weights, params.exclude_nodes)
        if missing:
            self.log.warning("exclude_nodes not found in the program, so not excluded: %s", ", ".join(missing))
        consumer_types = {op.op_type for metadata in weights.values() for op in metadata.child_ops}
        unused_types = [op_type for op_type in params.exclude_op_types if op_type not in consumer_types]
        if unused_types:
            self.log.warning(
                "exclude_op_types consume no weight in the program, so exclude nothing: %s (weights feed %s)",
                ", ".join(unused_types),
                ", ".join(sorted(consumer_types)),
            )
        config = cto.OptimizationConfig(
            global_config=op_config,
            op_type_configs={op_type: None for op_type in params.exclude_op_types},
            op_name_configs={name: None for name in excluded},
        )

        if params.method == "weight_only":
            compressed = cto.linear_quantize_weights(mlmodel, config)
        else:
            compressed = cto.palettize_weights(mlmodel, config)
        compressed.save(str(path))

        summary = weight_summary(compressed, threshold)
        self.log.info(
            "%s: %d weights compressed, %d float weights over %d elements left",
            params.method,
            summary["compressed_weights"],
            summary["float_weights_over_threshold"],
            threshold,
        )
        return {
            "method": params.method,
            "config": {"class": type(op_config).__name__, **settings},
            "weight_threshold": threshold,
            "excluded": excluded,
            "exclude_nodes_not_found": missing,
            "exclude_op_types_unused": unused_types,
            **summary,
        }
