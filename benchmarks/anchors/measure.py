"""Measure one artifact, an anchor tool's or ours, in this fresh process; print JSON on the last stdout line.

Run by ``benchmarks/anchors/run.py`` with the project's .venv, once per artifact for accuracy and once per
artifact and thread count for latency and peak memory:

    .venv/bin/python benchmarks/anchors/measure.py '<json request>'

The artifact is loaded with the project's own backends (``sarvam_pipeline.backends``), so anchors and our
artifacts get the same session options. Anchor graphs take ``token_type_ids`` and return the last hidden
state. Their output is mean-pooled over the attention mask and L2-normalised here, outside the timed call,
because our graphs return the pooled, normalised embedding themselves.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# The file name each project backend loads from an artifact folder.
DEPLOYABLE = {"onnxruntime": ("model.onnx",), "openvino": ("model.xml", "model.bin")}


def artifact_folder(runtime: str, artifact: Path, scratch: Path) -> Path:
    """Return a folder where the artifact has the file name the project's backend loads.

    Anchor tools name their files ``model_quantized.onnx`` or ``openvino_model.xml``. A folder of symbolic
    links gives them the expected names without copying, and keeps sibling files (external weights) beside.
    """
    names = DEPLOYABLE[runtime]
    if artifact.name == names[0]:
        return artifact.parent
    for sibling in artifact.parent.iterdir():
        if sibling.is_file():
            (scratch / sibling.name).symlink_to(sibling.resolve())
    (scratch / names[0]).unlink(missing_ok=True)
    (scratch / names[0]).symlink_to(artifact.resolve())
    if runtime == "openvino":
        (scratch / names[1]).unlink(missing_ok=True)
        (scratch / names[1]).symlink_to(artifact.with_suffix(".bin").resolve())
    return scratch


def sentence_embeddings(output: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Return L2-normalised sentence embeddings: mean-pooled over real tokens when given token states."""
    output = output.astype(np.float64)
    if output.ndim == 3:
        weights = attention_mask[..., None].astype(np.float64)
        output = (output * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    return output / np.clip(np.linalg.norm(output, axis=1, keepdims=True), 1e-12, None)


def main(request: dict) -> dict:
    from sarvam_pipeline.backends import get_backend
    from stages.benchmark_worker import peak_rss_mb
    from stages.dataset import load_split
    from stages.metrics import embedding_agreement

    samples = int(request["samples"])
    evaluation = {name: array[:samples] for name, array in load_split(Path(request["dataset"]), "evaluation").items()}
    # BERT exports of the anchor tools take segment ids; a single sentence is segment 0 throughout.
    evaluation.setdefault("token_type_ids", np.zeros_like(evaluation["input_ids"]))
    backend = get_backend(request["runtime"])
    threads = int(request["threads"])

    with tempfile.TemporaryDirectory(prefix="anchor-view-") as scratch:
        folder = artifact_folder(request["runtime"], Path(request["artifact"]), Path(scratch))
        started = time.perf_counter()
        session = backend.load(folder, request["options"], threads=threads)
        load_seconds = time.perf_counter() - started

        # Batch 1 throughout: ONNX Runtime's dynamic quantization computes activation ranges per call, so
        # a larger batch would give other numbers than an application that embeds one sentence at a time.
        def feeds(index: int) -> dict[str, np.ndarray]:
            return {name: np.ascontiguousarray(array[index: index + 1]) for name, array in evaluation.items()}

        if request["mode"] == "accuracy":
            outputs = [sentence_embeddings(session.run(feeds(i)), evaluation["attention_mask"][i: i + 1]) for i in range(samples)]
            reference = np.load(request["reference"])[:samples]
            result = embedding_agreement(reference, np.concatenate(outputs).astype(np.float32))
            if request["runtime"] == "openvino":
                # The inference precision OpenVINO applied, to show that the f32 hint took effect.
                result["placement"] = session.placement()
            return result

        single = feeds(0)
        for _ in range(int(request["warmup"])):
            session.run(single)
        latencies = []
        for _ in range(int(request["iterations"])):
            started_ns = time.perf_counter_ns()
            session.run(single)
            latencies.append((time.perf_counter_ns() - started_ns) / 1e6)
        values = np.array(latencies)
        return {
            "threads": threads,
            "iterations": len(latencies),
            "p50_ms": float(np.percentile(values, 50)),
            "p95_ms": float(np.percentile(values, 95)),
            "load_s": load_seconds,
            "peak_rss_mb": peak_rss_mb(),
            "cpu_count": os.cpu_count(),
        }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
