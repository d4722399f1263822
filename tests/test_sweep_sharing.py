"""Sweep-sharing benchmark: its grid expands into the same single-value overrides Hydra would run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

MODULE_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "sweep_sharing.py"


@pytest.fixture(scope="module")
def sweep_sharing():
    spec = importlib.util.spec_from_file_location("sweep_sharing", MODULE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_list_values_stay_whole(sweep_sharing):
    jobs = sweep_sharing.expand_grid(["quant.exclude_op_types=[Softmax],[Add,Softmax]"])
    assert jobs == [["quant.exclude_op_types=[Softmax]"], ["quant.exclude_op_types=[Add,Softmax]"]]


def test_grid_is_cartesian_product(sweep_sharing):
    jobs = sweep_sharing.expand_grid(["quant.calibration.samples=32,64", "+extra=a,b"])
    assert len(jobs) == 4
    assert ["quant.calibration.samples=64", "+extra=b"] in jobs


@pytest.mark.parametrize("override", ["quant.block_size=null", "model.description='a,b'", "~quant.block_size", "quant@foo=int8_static"])
def test_single_value_kept_as_written(sweep_sharing, override):
    assert sweep_sharing.expand_grid([override]) == [[override]]


def test_default_grid_has_nine_jobs(sweep_sharing):
    assert len(sweep_sharing.expand_grid(sweep_sharing.DEFAULT_GRID)) == 9
