"""Qualcomm QNN through the onnxruntime-qnn plugin execution provider, and the ``qnn`` runtime's backend.

onnxruntime-qnn 2.x (optional extra ``qnn``) ships the QNN EP as a plugin library together with the QNN SDK
libraries. The EP appears only after ``onnxruntime.register_execution_provider_library`` and is selected with
``SessionOptions.add_provider_for_devices``. On x86_64 hosts its HTP backend is a simulator of the Hexagon
NPU: outputs are the NPU's, but its timings do not predict latency on a device.

The ``qnn`` runtime's artifact is an EPContext model (``model_ctx.onnx`` plus the QNN context binary it
names), compiled ahead of time by ``stages.qnn_context``.
"""

from __future__ import annotations

import importlib
import logging
import platform
from pathlib import Path
from typing import Any

from sarvam_pipeline.backends.base import Session
from sarvam_pipeline.backends.onnxruntime import OnnxRuntimeBackend, OnnxRuntimeSession, _create_session, _session_options

log = logging.getLogger(__name__)

QNN_PROVIDER = "QNNExecutionProvider"
PACKAGE = "onnxruntime-qnn"
INSTALL_HINT = "pip install -e '.[qnn]'"
# QNN backends this project builds for, as runtime.options.backend names them, with the backend_type value of
# the QNN EP. onnxruntime-qnn 2.7.0 ships the HTP and GPU backend libraries but no CPU backend.
BACKEND_TYPES = {"HTP": "htp"}
# The EPContext model that stages.qnn_context writes and the qnn runtime deploys.
CONTEXT_MODEL = "model_ctx.onnx"


def missing_package_message(requester: str) -> str | None:
    """Return the one-line error for a missing onnxruntime-qnn, naming the ``requester`` that needs it, or None."""
    try:
        importlib.import_module("onnxruntime_qnn")
    except ImportError:
        return f"{requester} needs the optional package {PACKAGE}: {INSTALL_HINT}"
    return None


def register_plugin() -> None:
    """Register the QNN plugin EP library with ONNX Runtime once per process.

    Raises ImportError when onnxruntime-qnn is not installed.
    """
    import onnxruntime
    import onnxruntime_qnn

    if any(device.ep_name == QNN_PROVIDER for device in onnxruntime.get_ep_devices()):
        return
    onnxruntime.register_execution_provider_library(QNN_PROVIDER, onnxruntime_qnn.get_library_path())
    log.debug("registered %s from %s", QNN_PROVIDER, onnxruntime_qnn.get_library_path())


def qnn_devices() -> list:
    """Return the OrtEpDevices of the QNN EP, registering the plugin first."""
    import onnxruntime

    register_plugin()
    return [device for device in onnxruntime.get_ep_devices() if device.ep_name == QNN_PROVIDER]


def qnn_unavailable_reason() -> str | None:
    """Return why the QNN EP cannot run here, or None when it can."""
    message = missing_package_message("the QNN execution provider")
    if message is not None:
        return message
    try:
        devices = qnn_devices()
    except Exception as error:  # noqa: BLE001 - ONNX Runtime raises its own Fail type on a broken library
        return f"registering the QNN plugin EP failed: {type(error).__name__}: {error}"
    if not devices:
        return "onnxruntime-qnn is installed but ONNX Runtime lists no QNNExecutionProvider device"
    return None


def session_provider_options(provider_options: dict[str, Any]) -> dict[str, str]:
    """Return the QNN EP options as the strings ONNX Runtime takes, selecting the HTP backend by default.

    ``backend_path`` and ``backend_type`` exclude each other in the QNN EP. A ``backend_path`` written for
    another OS (QnnHtp.dll on Linux) is replaced by ``backend_type``, which the EP resolves to its bundled library.
    """
    options = {key: str(value) for key, value in provider_options.items()}
    path = options.get("backend_path")
    if path is not None and not Path(path).is_file():
        log.info("QNN backend_path %s is not a file here; using backend_type htp instead", path)
        options.pop("backend_path")
    if "backend_path" not in options:
        options.setdefault("backend_type", "htp")
    return options


def add_qnn_provider(session_options, provider_options: dict[str, Any]) -> None:
    """Select the QNN EP's devices for a session, with its provider options."""
    devices = qnn_devices()
    if not devices:
        raise RuntimeError(f"ONNX Runtime lists no {QNN_PROVIDER} device; is {PACKAGE} installed?")
    session_options.add_provider_for_devices(devices, session_provider_options(provider_options))


def is_simulator() -> bool:
    """Return whether the QNN HTP backend runs as a simulator here: it does on every x86_64 host."""
    return platform.machine().lower() in ("x86_64", "amd64")


def simulator_note() -> str:
    return (
        f"QNN HTP simulator on this {platform.machine()} host: simulator time, not latency on a Hexagon NPU, "
        "which needs a run on the device"
    )


class QnnBackend(OnnxRuntimeBackend):
    """Loads the EPContext model of the qnn runtime on the QNN EP, with CPU fallback disabled."""

    name = "qnn"
    tools = ("onnxruntime", "onnxruntime-qnn")

    def unavailable_reason(self, options: dict[str, Any]) -> str | None:
        backend = str(options.get("backend", "HTP"))
        if backend not in BACKEND_TYPES:
            return f"QNN backend {backend} is not supported; valid choices: {', '.join(BACKEND_TYPES)}"
        return qnn_unavailable_reason()

    def simulator_note(self, options: dict[str, Any]) -> str | None:
        return simulator_note() if is_simulator() else None

    def artifact_file(self, folder: Path) -> Path:
        return folder / CONTEXT_MODEL

    def artifact_size(self, folder: Path) -> int:
        """Return the bytes of the EPContext model and the context binaries it names (every file but the manifest)."""
        return sum(path.stat().st_size for path in folder.iterdir() if path.is_file() and path.name != "manifest.json")

    def load(self, folder: Path, options: dict[str, Any], threads: int | None = None) -> Session:
        provider_options = {"backend_type": BACKEND_TYPES[str(options.get("backend", "HTP"))]}
        provider_options.update(options.get("provider_options", {}) or {})
        path = self.artifact_file(folder)
        session = _create_session(path, QNN_PROVIDER, provider_options, _session_options(threads, QNN_PROVIDER))
        return OnnxRuntimeSession(session, path, QNN_PROVIDER, provider_options, threads)
