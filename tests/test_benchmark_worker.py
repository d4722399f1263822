"""Benchmark worker: the share of CPU time that other processes take while it measures."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from stages.benchmark_worker import busy_cpu_seconds, other_cpu_share


def test_other_share_subtracts_own_time():
    cpus = os.cpu_count() or 1
    # 10 s of wall time: the host was busy for 4 CPU seconds, 1 of them in this process.
    share = other_cpu_share((100.0, 10.0), (104.0, 11.0), 10.0)
    assert abs(share - 3.0 / (10.0 * cpus)) < 1e-9


def test_other_share_is_never_negative():
    # Counters of the host and of the process tick separately, so the process may appear to use more.
    assert other_cpu_share((100.0, 10.0), (100.5, 11.0), 1.0) == 0.0


def test_spinning_process_is_counted():
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        before, started = busy_cpu_seconds(), time.perf_counter()
        time.sleep(1.5)
        share = other_cpu_share(before, busy_cpu_seconds(), time.perf_counter() - started)
    finally:
        spinner.kill()
        spinner.wait(10)

    # One spinning core out of os.cpu_count(); the bound leaves room for a slow or shared CI host.
    assert share > 0.5 / (os.cpu_count() or 1)
