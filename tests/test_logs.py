"""Library INFO records on the root logger are dropped; warnings and the project's own logs are kept."""

from __future__ import annotations

import logging

import pytest

from sarvam_pipeline.logs import DropLibraryInfo, TagSweepJob


def record(name: str, level: int, path: str) -> logging.LogRecord:
    return logging.LogRecord(name, level, path, 1, "message", None, None)


def test_quantizer_info_dropped():
    path = "/venv/lib/python3.11/site-packages/onnxruntime/quantization/operators/matmul.py"
    assert DropLibraryInfo().filter(record("root", logging.INFO, path)) is False


def test_quantizer_warning_kept():
    path = "/venv/lib/python3.11/site-packages/onnxruntime/quantization/quantize.py"
    assert DropLibraryInfo().filter(record("root", logging.WARNING, path)) is True


def test_named_logger_kept():
    assert DropLibraryInfo().filter(record("sarvam_pipeline.executor", logging.INFO, "/repo/executor.py")) is True


def test_job_tag_empty_outside_hydra():
    entry = record("sarvam_pipeline.executor", logging.INFO, "/repo/executor.py")
    assert TagSweepJob().filter(entry) is True
    assert entry.job_tag == ""


@pytest.mark.parametrize("mode, expected", [("MULTIRUN", "#3 "), ("RUN", "")])
def test_job_tag_names_sweep_job(mode, expected):
    from hydra.conf import HydraConf
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    config = OmegaConf.create({"hydra": OmegaConf.structured(HydraConf)})
    config.hydra.mode = RunMode[mode]
    config.hydra.job.num = 3
    previous = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(config)
    try:
        entry = record("sarvam_pipeline.executor", logging.INFO, "/repo/executor.py")
        TagSweepJob().filter(entry)
    finally:
        HydraConfig.instance().cfg = previous
    assert entry.job_tag == expected
