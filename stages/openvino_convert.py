"""Convert the shared ONNX export to an OpenVINO IR (``model.xml`` and ``model.bin``) with float32 weights.

Every OpenVINO recipe compresses this one IR, so it is converted once per model. The stage reloads the
saved IR and checks it against the ONNX model on ONNX Runtime before publishing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stages.base import Stage, StageInputs
from stages.onnx_inputs import concrete_shape, numpy_dtype


@dataclass
class OpenVinoConvertParams:
    """Conversion reads no settings: input names, types and dynamic dimensions come from the ONNX graph."""


# Largest absolute output difference accepted between the float32 IR and the ONNX model on ONNX Runtime.
PARITY_TOLERANCE = 1e-4

# Size given to the dynamic dimensions of the random parity batch: the first (batch) and every other one.
PARITY_BATCH = 2
PARITY_LENGTH = 16


def random_feeds(session, seed: int = 0) -> dict[str, np.ndarray]:
    """Build a random batch for an ONNX Runtime session's inputs.

    Integer inputs get 0 or 1, which is a valid token id, attention mask value and segment id alike.
    The first position of every row is 1, so no sequence is fully masked, because some attention code
    turns a fully masked row into NaN.
    """
    generator = np.random.default_rng(seed)
    feeds = {}
    for spec in session.get_inputs():
        shape = concrete_shape(spec, PARITY_BATCH, PARITY_LENGTH)
        dtype = numpy_dtype(spec.type)
        if dtype in (np.int32, np.int64):
            array = generator.integers(0, 2, size=shape).astype(dtype)
            if array.ndim >= 2:
                array[:, 0] = 1
        elif dtype is np.bool_:
            array = generator.integers(0, 2, size=shape).astype(bool)
        else:
            array = generator.standard_normal(shape).astype(dtype)
        feeds[spec.name] = array
    return feeds


class OpenVinoConvertStage(Stage):
    kind = "openvino_convert"
    Params = OpenVinoConvertParams
    inputs = ("model",)
    # ONNX Runtime computes the expected outputs of the parity check recorded in the result.
    tools = ("openvino", "onnxruntime")

    def run(self, params: OpenVinoConvertParams, inputs: StageInputs, out: Path) -> dict[str, Any]:
        import onnxruntime
        import openvino as ov

        source = inputs["model"] / "model.onnx"
        model = ov.convert_model(str(source))
        path = out / "model.xml"
        # save_model stores FP16 weights by default, but this IR is the float32 baseline of every recipe.
        ov.save_model(model, str(path), compress_to_fp16=False)

        session = onnxruntime.InferenceSession(str(source), providers=["CPUExecutionProvider"])
        feeds = random_feeds(session)
        expected = session.run(None, feeds)[0]

        # An explicit f32 hint, because the CPU plugin defaults to bf16 on CPUs with native bf16 (AVX512_BF16, AMX).
        compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        actual = compiled(feeds, share_inputs=False)[compiled.output(0)]
        difference = float(np.abs(np.asarray(actual, dtype=np.float32) - expected).max())
        if not difference <= PARITY_TOLERANCE:
            raise ValueError(
                f"OpenVINO IR differs from the ONNX model on ONNX Runtime by {difference:.2e} "
                f"(tolerance {PARITY_TOLERANCE}) on a random batch"
            )

        input_names = [port.get_any_name() for port in model.inputs]
        output_names = [port.get_any_name() for port in model.outputs]
        self.log.info("converted %s to OpenVINO IR (max |diff| vs ONNX Runtime %.1e)", source.name, difference)
        return {
            "weights": "fp32",
            "max_abs_diff_vs_onnxruntime": difference,
            "parity_batch": {name: list(array.shape) for name, array in feeds.items()},
            "inputs": input_names,
            "outputs": output_names,
        }
