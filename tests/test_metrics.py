"""Embedding agreement: mean, worst sample and nearest-neighbour agreement."""

from __future__ import annotations

import numpy as np
import pytest

from stages.metrics import embedding_agreement


def test_identical_outputs_agree():
    rows = np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)
    metrics = embedding_agreement(rows, rows.copy())
    assert metrics["cosine_mean"] == pytest.approx(1.0)
    assert metrics["nn_agreement"] == 1.0


def test_worst_sample_found():
    rows = np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)
    noisy = rows.copy()
    noisy[7] = -noisy[7]
    metrics = embedding_agreement(rows, noisy)
    assert metrics["worst_sample"] == 7
    assert metrics["cosine_worst"] == pytest.approx(-1.0)
    assert metrics["cosine_mean"] < 1.0


def test_shape_mismatch_rejected():
    with pytest.raises(ValueError, match="shape"):
        embedding_agreement(np.zeros((3, 4)), np.zeros((3, 5)))


def test_nan_output_rejected():
    candidate = np.ones((3, 4))
    candidate[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        embedding_agreement(np.ones((3, 4)), candidate)
