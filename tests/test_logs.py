"""Library INFO records on the root logger are dropped; warnings and the project's own logs are kept."""

from __future__ import annotations

import logging

from sarvam_pipeline.logs import DropLibraryInfo


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
