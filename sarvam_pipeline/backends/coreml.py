"""Core ML backend: ``coremltools.models.MLModel`` on the requested compute units (macOS only)."""

from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

from sarvam_pipeline.backends.base import Backend, Session

# numpy dtype of each Core ML multi-array type (coremltools.proto ArrayFeatureType.ArrayDataType names).
ARRAY_DTYPES = {"INT8": np.int8, "INT32": np.int32, "FLOAT16": np.float16, "FLOAT32": np.float32, "DOUBLE": np.float64}


class CoreMLSession(Session):
    """A loaded MLModel that casts feeds to the input dtypes its spec declares (int32 token ids)."""

    def __init__(self, model, compute_units: str) -> None:
        from coremltools.proto import FeatureTypes_pb2

        names = FeatureTypes_pb2.ArrayFeatureType.ArrayDataType
        description = model.get_spec().description
        self._model = model
        self._compute_units = compute_units
        self._input_dtypes = {i.name: ARRAY_DTYPES[names.Name(i.type.multiArrayType.dataType)] for i in description.input}
        self._output_name = description.output[0].name

    @property
    def input_dtypes(self) -> dict[str, type]:
        """The numpy dtype of each input, by name, that feeds are cast to before prediction."""
        return dict(self._input_dtypes)

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        # NOTE: untested against a real Core ML prediction, which needs macOS.
        inputs = {name: np.ascontiguousarray(feeds[name], dtype=dtype) for name, dtype in self._input_dtypes.items()}
        outputs = self._model.predict(inputs)
        return np.array(outputs[self._output_name], dtype=np.float32, copy=True)

    def placement(self) -> dict[str, Any]:
        # Core ML chooses the device per op inside the requested compute units and does not report it here.
        return {"compute_units": self._compute_units}


class CoreMLBackend(Backend):
    name = "coreml"
    tools = ("coremltools",)
    # The converted program has static shapes with batch 1.
    max_batch_size = 1

    def unavailable_reason(self, options: dict[str, Any]) -> str | None:
        if sys.platform != "darwin":
            return f"Core ML prediction needs macOS (this host is {platform.system()} {platform.machine()})"
        return None

    def artifact_file(self, folder: Path) -> Path:
        return folder / "model.mlpackage"

    def load(self, folder: Path, options: dict[str, Any], threads: int | None = None) -> Session:
        """Load the package on the compute units named in ``options`` (ALL, CPU_ONLY, CPU_AND_GPU, CPU_AND_NE).

        ``threads`` is ignored, because Core ML exposes no thread count.
        """
        import coremltools as ct

        compute_units = str(options.get("compute_units", "ALL"))
        valid = [unit.name for unit in ct.ComputeUnit]
        if compute_units not in valid:
            raise ValueError(f"invalid compute_units '{compute_units}'; valid choices: {', '.join(valid)}")
        model = ct.models.MLModel(str(self.artifact_file(folder)), compute_units=ct.ComputeUnit[compute_units])
        return CoreMLSession(model, compute_units)
