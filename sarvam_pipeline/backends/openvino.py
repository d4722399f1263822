"""OpenVINO backend: an IR (model.xml and model.bin) compiled for the requested OpenVINO device."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from sarvam_pipeline.backends.base import Backend, Session

log = logging.getLogger(__name__)

# Device names that select other devices: "AUTO:GPU,CPU", "HETERO:GPU,CPU", "MULTI:GPU,CPU".
VIRTUAL_DEVICES = ("AUTO", "HETERO", "MULTI", "BATCH")


def physical_devices(device: str) -> list[str]:
    """Return the devices a device string names, which are the listed ones for virtual devices."""
    prefix, _, listed = device.partition(":")
    if prefix.upper() in VIRTUAL_DEVICES:
        return [name.strip() for name in listed.split(",") if name.strip()]
    return [device]


def is_available(device: str, available: list[str]) -> bool:
    """Return whether a device is present. "GPU" also matches the numbered "GPU.0" and "GPU.1"."""
    return any(name == device or name.startswith(f"{device}.") for name in available)


class OpenVinoSession(Session):
    def __init__(self, compiled, device: str) -> None:
        self._compiled = compiled
        self._device = device
        self._request = compiled.create_infer_request()
        self._input_names = [port.get_any_name() for port in compiled.inputs]

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        # share_inputs=False copies the feeds into the request's own tensors, so the request never writes
        # into or keeps pointers to the caller's arrays between calls.
        outputs = self._request.infer({name: feeds[name] for name in self._input_names}, share_inputs=False)
        return np.array(outputs[self._compiled.output(0)], dtype=np.float32, copy=True)

    def placement(self) -> dict[str, Any]:
        placement: dict[str, Any] = {
            "device": self._device,
            "execution_devices": list(self._compiled.get_property("EXECUTION_DEVICES")),
        }
        try:
            placement["inference_precision"] = self._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        except RuntimeError:
            # Not every device plugin reports the property on a compiled model.
            pass
        return placement


class OpenVinoBackend(Backend):
    name = "openvino"
    tools = ("openvino",)

    def unavailable_reason(self, options: dict[str, Any]) -> str | None:
        try:
            import openvino as ov
        except ImportError:
            return "package openvino is not installed; install it with pip"

        device = str(options.get("device", "CPU"))
        available = list(ov.Core().available_devices)
        requested = physical_devices(device)
        if not requested:
            # A bare AUTO or MULTI picks among the available devices.
            return None if available else "OpenVINO finds no device on this host"
        missing = [name for name in requested if not is_available(name, available)]
        if missing:
            return f"OpenVINO device {', '.join(missing)} is not available here (available: {', '.join(available)})"
        return None

    def artifact_file(self, folder: Path) -> Path:
        return folder / "model.xml"

    def load(self, folder: Path, options: dict[str, Any], threads: int | None = None) -> Session:
        import openvino as ov

        core = ov.Core()
        device = str(options.get("device", "CPU"))
        config: dict[str, Any] = {}
        if options.get("inference_precision"):
            config["INFERENCE_PRECISION_HINT"] = str(options["inference_precision"])
        if options.get("performance_hint"):
            config["PERFORMANCE_HINT"] = str(options["performance_hint"]).upper()
        if threads:
            if "INFERENCE_NUM_THREADS" in core.get_property(device.partition(":")[0], "SUPPORTED_PROPERTIES"):
                config["INFERENCE_NUM_THREADS"] = int(threads)
            else:
                log.warning("device %s has no INFERENCE_NUM_THREADS property; ignoring threads=%d", device, threads)

        compiled = core.compile_model(str(self.artifact_file(folder)), device, config)
        return OpenVinoSession(compiled, device)
