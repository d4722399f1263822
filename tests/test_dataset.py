"""Dataset stage: disjoint, deterministic calibration and evaluation splits from the real corpus."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import TINY_SEQUENCE_LENGTH, run_stage
from stages.dataset import load_split, read_chatterbot_corpus


def test_splits_are_disjoint(tiny_shared):
    texts = json.loads((tiny_shared.dataset / "texts.json").read_text())
    assert len(texts["calibration"]) == 32
    assert len(texts["evaluation"]) == 48
    assert not set(texts["calibration"]) & set(texts["evaluation"])


def test_inputs_padded_to_sequence_length(tiny_shared):
    evaluation = load_split(tiny_shared.dataset, "evaluation")
    assert evaluation["input_ids"].shape == (48, TINY_SEQUENCE_LENGTH)
    assert evaluation["attention_mask"].dtype == np.int64


def test_split_is_deterministic(tiny_model, tmp_path):
    params = {"calibration_samples": 4, "evaluation_samples": 4, "seed": 3, "model": tiny_model}
    run_stage("dataset", params, {}, tmp_path / "a")
    run_stage("dataset", params, {}, tmp_path / "b")
    assert (tmp_path / "a" / "texts.json").read_text() == (tmp_path / "b" / "texts.json").read_text()


def test_unknown_language_names_choices(tiny_model, tmp_path):
    with pytest.raises(FileNotFoundError, match="valid choices: .*english"):
        run_stage("dataset", {"languages": ["klingon"], "model": tiny_model}, {}, tmp_path / "x")


def test_corpus_has_hindi():
    assert len(read_chatterbot_corpus(["hindi"])) > 10
