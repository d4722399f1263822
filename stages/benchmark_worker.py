"""Benchmark one artifact in this process and print the figures as JSON on the last line of stdout.

Run by ``stages.benchmark`` as ``python -m stages.benchmark_worker '<json request>'``.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np


def peak_rss_mb() -> float:
    """Return this process's peak resident set size in MiB.

    On Linux, VmHWM is read because ru_maxrss survives execve and would report the parent's peak.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


# psutil.cpu_times fields that count as busy time. steal is time the hypervisor gave to other guests, which
# competes for the cores like a local process. Linux counts guest time inside user, so it is left out.
BUSY_FIELDS = ("user", "nice", "system", "irq", "softirq", "steal", "interrupt", "dpc")


def busy_cpu_seconds() -> tuple[float, float]:
    """Return the busy CPU seconds of the whole host and of this process since they started."""
    import psutil

    host = psutil.cpu_times()
    own = psutil.Process().cpu_times()
    return sum(getattr(host, name, 0.0) for name in BUSY_FIELDS), own.user + own.system


def other_cpu_share(before: tuple[float, float], after: tuple[float, float], seconds: float) -> float:
    """Return the share of the host's CPU time that other processes used over ``seconds`` of wall time."""
    host = after[0] - before[0]
    own = after[1] - before[1]
    capacity = seconds * (os.cpu_count() or 1)
    return max(0.0, host - own) / capacity if capacity > 0 else 0.0


def main(request: dict) -> dict:
    from sarvam_pipeline.backends import get_backend
    from stages.dataset import load_split

    backend = get_backend(request["runtime"])
    evaluation = load_split(Path(request["dataset"]), "evaluation")
    batch = int(request["batch_size"])
    feeds = {name: np.ascontiguousarray(array[:batch]) for name, array in evaluation.items()}
    rss_before_load = peak_rss_mb()

    started = time.perf_counter()
    session = backend.load(Path(request["artifact"]), request["options"], threads=int(request["threads"]))
    load_seconds = time.perf_counter() - started

    for _ in range(int(request["warmup"])):
        session.run(feeds)
    latencies = []
    cpu_before, wall_started = busy_cpu_seconds(), time.perf_counter()
    for _ in range(int(request["iterations"])):
        started = time.perf_counter_ns()
        session.run(feeds)
        latencies.append((time.perf_counter_ns() - started) / 1e6)
    others = other_cpu_share(cpu_before, busy_cpu_seconds(), time.perf_counter() - wall_started)

    values = np.array(latencies)
    # The 1-minute load average shows whether other work competed for the cores.
    load_average = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "load_average_1min": load_average,
        # Share of the host's CPU time that other processes used while the timed runs ran.
        "other_cpu_share": round(others, 4),
        "cpu_count": os.cpu_count(),
        "batch_size": batch,
        "sequence_length": int(next(iter(feeds.values())).shape[1]),
        "threads": int(request["threads"]),
        "warmup": int(request["warmup"]),
        "iterations": len(latencies),
        "p50_ms": float(np.percentile(values, 50)),
        "p95_ms": float(np.percentile(values, 95)),
        "mean_ms": float(values.mean()),
        "min_ms": float(values.min()),
        "load_s": load_seconds,
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_load_mb": rss_before_load,
        "placement": session.placement(),
        "latencies_ms": [round(v, 4) for v in latencies],
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
