"""Accuracy of an artifact's outputs against the float reference, with the worst sample as well as the mean."""

from __future__ import annotations

from typing import Any

import numpy as np


def embedding_agreement(reference: np.ndarray, candidate: np.ndarray) -> dict[str, Any]:
    """Compare sentence embeddings row by row and by retrieval.

    Returns mean and worst cosine similarity, the index of the worst sample, and top-1 nearest-neighbour
    agreement: the share of samples whose nearest other sample (by cosine) is the same under both.
    """
    if reference.shape != candidate.shape:
        raise ValueError(f"output shape {candidate.shape} does not match the reference shape {reference.shape}")
    if not np.isfinite(candidate).all():
        raise ValueError("artifact output contains NaN or infinite values")

    def normalise(rows: np.ndarray) -> np.ndarray:
        rows = rows.astype(np.float64)
        return rows / np.clip(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12, None)

    ref, cand = normalise(reference), normalise(candidate)
    cosine = (ref * cand).sum(axis=1)

    def nearest(rows: np.ndarray) -> np.ndarray:
        similarity = rows @ rows.T
        np.fill_diagonal(similarity, -np.inf)
        return similarity.argmax(axis=1)

    agreement = float((nearest(ref) == nearest(cand)).mean()) if len(ref) > 1 else 1.0
    worst = int(cosine.argmin())
    return {
        "cosine_mean": float(cosine.mean()),
        "cosine_worst": float(cosine[worst]),
        "cosine_p05": float(np.percentile(cosine, 5)),
        "worst_sample": worst,
        "nn_agreement": agreement,
        "samples": int(len(cosine)),
        "max_abs_diff": float(np.abs(reference - candidate).max()),
    }
