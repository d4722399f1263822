"""Shapes and dtypes of ONNX Runtime session inputs, for stages that build example batches."""

from __future__ import annotations

import numpy as np


def concrete_shape(spec, batch: int, length: int) -> list[int]:
    """Return the input's shape with dynamic dimensions set: the first to ``batch``, the others to ``length``."""
    shape = []
    for axis, dim in enumerate(spec.shape):
        if isinstance(dim, int) and dim > 0:
            shape.append(dim)
        else:
            shape.append(batch if axis == 0 else length)
    return shape


def numpy_dtype(onnx_type: str) -> type:
    """Return the numpy dtype of an ONNX Runtime type string such as ``tensor(int64)``."""
    if onnx_type == "tensor(int32)":
        return np.int32
    if "int" in onnx_type:
        return np.int64
    if onnx_type == "tensor(bool)":
        return np.bool_
    if onnx_type == "tensor(float16)":
        return np.float16
    return np.float32
