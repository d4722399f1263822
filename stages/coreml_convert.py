"""Convert the TorchScript export (``model.pt``) to a Core ML mlprogram, ``model.mlpackage``.

Inputs are declared int32 because Core ML has no int64 multi-array type, so an application feeds token
ids and the attention mask as int32. Outputs are declared float32, so fp16 programs end with a cast and
callers read float32 either way.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.base import Stage, StageInputs


@dataclass
class CoreMLConvertParams:
    # fp16 | fp32: the precision of weights and activations inside the program.
    compute_precision: str = "fp16"
    # Name of a coremltools.target member, for example macOS15 or iOS18.
    minimum_deployment_target: str = "macOS15"
    # One {name, shape} per graph input, in the order the TorchScript module takes them.
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


def describe_features(features) -> list[dict[str, Any]]:
    """Return name, dtype and shape of each input or output in an MLModel spec."""
    from coremltools.proto import FeatureTypes_pb2

    names = FeatureTypes_pb2.ArrayFeatureType.ArrayDataType
    described = []
    for feature in features:
        array = feature.type.multiArrayType
        described.append(
            {"name": feature.name, "dtype": names.Name(array.dataType).lower(), "shape": [int(d) for d in array.shape]}
        )
    return described


class CoreMLConvertStage(Stage):
    kind = "coreml_convert"
    Params = CoreMLConvertParams
    inputs = ("model",)
    tools = ("coremltools", "torch", "numpy")

    def run(self, params: CoreMLConvertParams, inputs: StageInputs, out: Path) -> dict[str, Any]:
        import coremltools as ct
        import numpy as np
        import torch

        precisions = {"fp16": ct.precision.FLOAT16, "fp32": ct.precision.FLOAT32}
        if params.compute_precision not in precisions:
            raise ValueError(f"invalid compute_precision '{params.compute_precision}'; valid choices: fp16, fp32")
        target = getattr(ct.target, params.minimum_deployment_target, None)
        if target is None:
            raise ValueError(f"unknown minimum_deployment_target '{params.minimum_deployment_target}' in coremltools {ct.__version__}")

        module = torch.jit.load(str(inputs["model"] / "model.pt"), map_location="cpu").eval()
        tensor_inputs = [ct.TensorType(name=spec["name"], shape=tuple(spec["shape"]), dtype=np.int32) for spec in params.inputs]
        tensor_outputs = [ct.TensorType(name=name, dtype=np.float32) for name in params.outputs]

        with warnings.catch_warnings():
            # In fp16 programs, clamp(min=...) becomes clip with beta = float32 max, which overflows to inf
            # when cast to fp16, and numpy warns. An infinite upper bound clips nothing, as intended.
            warnings.filterwarnings("ignore", message="overflow encountered in cast", category=RuntimeWarning)
            mlmodel = ct.convert(
                module,
                inputs=tensor_inputs,
                outputs=tensor_outputs,
                convert_to="mlprogram",
                compute_precision=precisions[params.compute_precision],
                minimum_deployment_target=target,
                # Loading compiles the model, which only macOS can do and which this stage does not need.
                skip_model_load=True,
            )

        path = out / "model.mlpackage"
        mlmodel.save(str(path))

        # NOTE: the program is not run here, because Core ML prediction needs macOS. Validation on macOS
        # checks its numbers, and elsewhere only the PyTorch estimate of the same numeric change exists.
        spec = mlmodel.get_spec()
        described_inputs = describe_features(spec.description.input)
        described_outputs = describe_features(spec.description.output)
        self.log.info(
            "converted to %s (%s, %s): inputs %s, outputs %s",
            path.name,
            params.compute_precision,
            params.minimum_deployment_target,
            ", ".join(f"{i['name']} {i['dtype']}{i['shape']}" for i in described_inputs),
            ", ".join(f"{o['name']} {o['dtype']}{o['shape']}" for o in described_outputs),
        )
        return {
            "compute_precision": params.compute_precision,
            "minimum_deployment_target": params.minimum_deployment_target,
            "specification_version": int(spec.specificationVersion),
            "inputs": described_inputs,
            "outputs": described_outputs,
            "feeds": "int32 arrays of the listed shapes; Core ML has no int64 inputs, so cast token ids and masks to int32",
        }
