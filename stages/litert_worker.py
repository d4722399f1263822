"""Convert one graph of the PyTorch model to a ``.tflite`` file with litert-torch, in the LiteRT environment.

Run by ``stages.litert_convert`` as ``<litert python> -m stages.litert_worker '<json request>'`` from the
repository root, with the interpreter of ``.venv-litert`` (see ``sarvam_pipeline.litert_env``). It imports
only the model adapter from the project, so the project needs no install there. The result goes to the
request's ``result_file`` as JSON, because litert-torch prints its progress on stdout.
"""

from __future__ import annotations

import json
import logging
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("stages.litert_worker")

# Signature name litert-torch gives a model converted from one module (litert_torch.model.DEFAULT_SIGNATURE_NAME).
SIGNATURE = "serving_default"


def quant_config(method: str, weight_bits: int, per_channel: bool):
    """Return the litert-torch QuantConfig of a recipe, or None for float32.

    The ``full_*_recipe`` helpers set one layer recipe for every op the AI Edge Quantizer supports (regex
    ``.*``). litert-torch documents them for Edge Generative API models, but without a model config they need
    no Generative API layer names, and they quantize weights symmetrically.
    """
    if method == "none":
        return None

    from litert_torch.generative.quantize import quant_attrs, quant_recipes

    dtypes = {8: quant_attrs.Dtype.INT8}
    if weight_bits not in dtypes:
        raise ValueError(f"invalid weight_bits {weight_bits} for LiteRT: expected one of {sorted(dtypes)}")
    # Granularity.NONE is translated to one scale per tensor.
    granularity = quant_attrs.Granularity.CHANNELWISE if per_channel else quant_attrs.Granularity.NONE
    if method == "dynamic":
        # Dynamic range: int8 weights, activations quantized per batch at run time, integer matmuls.
        return quant_recipes.full_dynamic_recipe(weight_dtype=dtypes[weight_bits], granularity=granularity)
    if method == "weight_only":
        # int8 weights dequantized to float before each op; the compute stays float32.
        return quant_recipes.full_weight_only_recipe(weight_dtype=dtypes[weight_bits], granularity=granularity)
    raise ValueError(f"invalid method '{method}' for LiteRT: expected one of none, dynamic, weight_only")


def tensor_details(details: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"name": name, "dtype": np.dtype(detail["dtype"]).name, "shape": [int(size) for size in detail["shape"]]}
        for name, detail in sorted(details.items(), key=lambda item: item[1]["index"])
    ]


def run_saved_model(path: Path, example: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, Any]]:
    """Reload the .tflite file with the ai-edge-litert Interpreter and run the example batch.

    Quantized models converted by litert-torch 0.10.0 ran only this way, not through the in-memory
    LiteRTModel that ``convert`` returns.
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner(SIGNATURE)
    inputs = runner.get_input_details()
    outputs = runner.get_output_details()
    feeds = {name: np.ascontiguousarray(example[name], dtype=detail["dtype"]) for name, detail in inputs.items()}
    result = runner(**feeds)
    (output_name,) = outputs
    signature = {"name": SIGNATURE, "inputs": tensor_details(inputs), "outputs": tensor_details(outputs)}
    return np.asarray(result[output_name], dtype=np.float32), signature


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    similarity = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)).clip(min=1e-12)
    return float(similarity.min())


def versions() -> dict[str, str | None]:
    from sarvam_pipeline.litert_env import TOOLS

    found: dict[str, str | None] = {}
    for name in TOOLS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    found["python"] = platform.python_version()
    return found


def main(request: dict[str, Any]) -> dict[str, Any]:
    import litert_torch
    import torch

    from sarvam_pipeline.models import get_adapter

    model, graph = request["model"], request["graph"]
    adapter = get_adapter(model["family"])
    module = adapter.build_module(model, graph["name"])
    # Batch 1 at the model's sequence length: litert-torch 0.10.0 failed to lower a dynamic batch dimension
    # (an AssertionError in the jax lowering of aten.sub), and on-device inference runs one sentence at a time.
    example = adapter.example_inputs(model, graph["name"], batch_size=1)
    names = [spec["name"] for spec in graph["inputs"]]
    # Keyword samples name the .tflite signature's inputs after the graph's inputs instead of args_0, args_1.
    sample = dict(zip(names, example))
    with torch.no_grad():
        expected = module(**sample).float().numpy()

    config = quant_config(request["method"], int(request["weight_bits"]), bool(request["per_channel"]))
    started = time.perf_counter()
    edge_model = litert_torch.convert(module, sample_kwargs=sample, quant_config=config)
    path = Path(request["output"])
    edge_model.export(str(path))
    convert_seconds = time.perf_counter() - started

    actual, signature = run_saved_model(path, {name: tensor.numpy() for name, tensor in sample.items()})
    return {
        "convert_seconds": round(convert_seconds, 3),
        "max_abs_diff_vs_torch": float(np.abs(actual - expected).max()),
        "cosine_worst_vs_torch": cosine(actual, expected),
        "signature": signature,
        "environment": {"python_executable": sys.executable, **versions()},
    }


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    parsed = json.loads(sys.argv[1])
    figures = main(parsed)
    Path(parsed["result_file"]).write_text(json.dumps(figures), encoding="utf-8")
    logger.info("wrote %s", parsed["output"])
