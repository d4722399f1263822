"""ONNX Runtime backend: InferenceSession on the requested execution provider.

When an accelerator provider is requested, CPU fallback is disabled (``session.disable_cpu_ep_fallback``),
so a graph that the provider cannot take fails to load instead of running on the CPU unnoticed.
``placement()`` counts the nodes each provider ran, from an ONNX Runtime profile, and the nodes ONNX Runtime
assigned to each provider when the session recorded them.

Plugin execution providers (onnxruntime-qnn 2.x) are registered with ``register_execution_provider_library``
and selected through ``SessionOptions.add_provider_for_devices``: naming them in ``providers=[...]`` makes
ONNX Runtime 1.32 run the model on the CPU EP without an error.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from sarvam_pipeline.backends.base import Backend, Session

log = logging.getLogger(__name__)

PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "directml": "DmlExecutionProvider",
    "vitisai": "VitisAIExecutionProvider",
    "qnn": "QNNExecutionProvider",
}
CPU = "CPUExecutionProvider"


def provider_name(options: dict[str, Any]) -> str:
    requested = str(options.get("provider", "cpu"))
    return PROVIDER_NAMES.get(requested.lower(), requested)


def _session_options(threads: int | None, provider: str, profile_prefix: str | None = None):
    import onnxruntime

    session_options = onnxruntime.SessionOptions()
    if threads:
        session_options.intra_op_num_threads = threads
        session_options.inter_op_num_threads = 1
    if provider != CPU:
        session_options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        # Lets placement() read which provider each ONNX node was assigned to (ONNX Runtime 1.23 and newer).
        session_options.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    if profile_prefix:
        session_options.enable_profiling = True
        session_options.profile_file_prefix = profile_prefix
    return session_options


def _create_session(path: Path, provider: str, provider_options: dict[str, Any], session_options):
    import onnxruntime

    from sarvam_pipeline.backends import qnn

    if provider == qnn.QNN_PROVIDER:
        qnn.add_qnn_provider(session_options, provider_options)
        return onnxruntime.InferenceSession(str(path), sess_options=session_options)
    providers = [provider] if provider == CPU else [(provider, provider_options), CPU]
    return onnxruntime.InferenceSession(str(path), sess_options=session_options, providers=providers)


def fixed_batch_size(session) -> int | None:
    """Return the batch size a graph fixes in its first input's first dimension, or None when it is dynamic."""
    dimension = session.get_inputs()[0].shape[0]
    return dimension if isinstance(dimension, int) and dimension > 0 else None


def assigned_nodes(session) -> dict[str, int]:
    """Return how many ONNX nodes ONNX Runtime assigned to each provider, or {} when the session did not record it."""
    if not hasattr(session, "get_provider_graph_assignment_info"):
        return {}
    try:
        if session.get_session_options().get_session_config_entry("session.record_ep_graph_assignment_info") != "1":
            return {}
        subgraphs = session.get_provider_graph_assignment_info()
    except Exception as error:  # noqa: BLE001 - ONNX Runtime raises its own Fail type, not a RuntimeError
        log.debug("no graph assignment info: %s", error)
        return {}
    counts: Counter[str] = Counter()
    for subgraph in subgraphs:
        counts[subgraph.ep_name] += len(subgraph.get_nodes())
    return dict(counts)


class OnnxRuntimeSession(Session):
    def __init__(self, session, path: Path, provider: str, provider_options: dict[str, Any], threads: int | None) -> None:
        self._session = session
        self._input_names = [i.name for i in session.get_inputs()]
        self._path = path
        self._provider = provider
        self._provider_options = provider_options
        self._threads = threads
        self._last_feeds: dict[str, np.ndarray] | None = None
        # Graphs with static shapes (QNN HTP) fix the batch size, so larger batches run in slices of it.
        self._batch_size = fixed_batch_size(session)

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        selected = {name: feeds[name] for name in self._input_names}
        rows = len(next(iter(selected.values())))
        step = self._batch_size or rows
        outputs = []
        for start in range(0, rows, step):
            batch = {name: np.ascontiguousarray(array[start: start + step]) for name, array in selected.items()}
            self._last_feeds = batch
            outputs.append(np.array(self._session.run(None, batch)[0], dtype=np.float32, copy=True))
        return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)

    def placement(self) -> dict[str, Any]:
        """Return the session's providers and, from a profiled run, how many nodes each provider ran."""
        placement: dict[str, Any] = {"requested": self._provider, "providers": self._session.get_providers()}
        assigned = assigned_nodes(self._session)
        if assigned:
            total_assigned = sum(assigned.values())
            placement["assigned_nodes_by_provider"] = assigned
            placement["assigned_share_on_requested"] = assigned.get(self._provider, 0) / total_assigned
        if self._last_feeds is None:
            return placement

        with tempfile.TemporaryDirectory() as folder:
            options = _session_options(self._threads, self._provider, os.path.join(folder, "profile"))
            profiled = _create_session(self._path, self._provider, self._provider_options, options)
            profiled.run(None, self._last_feeds)
            events = json.loads(Path(profiled.end_profiling()).read_text(encoding="utf-8"))

        nodes_by_provider: Counter[str] = Counter()
        seen: set[str] = set()
        for event in events:
            args = event.get("args", {})
            name = event.get("name", "")
            if event.get("cat") == "Node" and "provider" in args and name.endswith("_kernel_time") and name not in seen:
                seen.add(name)
                nodes_by_provider[args["provider"]] += 1
        total = sum(nodes_by_provider.values())
        placement["nodes_by_provider"] = dict(nodes_by_provider)
        placement["share_on_requested"] = nodes_by_provider[self._provider] / total if total else None
        if self._provider != CPU and nodes_by_provider.get(CPU):
            log.warning("%d of %d nodes ran on the CPU although %s was requested", nodes_by_provider[CPU], total, self._provider)
        return placement


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    tools = ("onnxruntime",)

    def unavailable_reason(self, options: dict[str, Any]) -> str | None:
        import onnxruntime

        from sarvam_pipeline.backends import qnn

        provider = provider_name(options)
        if provider == qnn.QNN_PROVIDER:
            return qnn.qnn_unavailable_reason()
        available = onnxruntime.get_available_providers()
        if provider not in available:
            return f"execution provider {provider} is not available here (available: {', '.join(available)})"
        return None

    def simulator_note(self, options: dict[str, Any]) -> str | None:
        from sarvam_pipeline.backends import qnn

        if provider_name(options) == qnn.QNN_PROVIDER and qnn.is_simulator():
            return qnn.simulator_note()
        return None

    def artifact_file(self, folder: Path) -> Path:
        return folder / "model.onnx"

    def load(self, folder: Path, options: dict[str, Any], threads: int | None = None) -> Session:
        provider = provider_name(options)
        provider_options = dict(options.get("provider_options", {}) or {})
        path = self.artifact_file(folder)
        session = _create_session(path, provider, provider_options, _session_options(threads, provider))
        return OnnxRuntimeSession(session, path, provider, provider_options, threads)
