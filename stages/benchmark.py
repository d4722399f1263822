"""Measure latency and peak memory of an artifact in a fresh process, and its size on disk.

The measurement runs in a subprocess (``stages.benchmark_worker``) so peak memory is that of a process that
only loads the runtime and the artifact. Where the runtime cannot run here, only the size is recorded and
the result states that the latency needs the device. Where it runs on a simulator (QNN HTP on x86_64), the
status is ``simulated``: the figures are the simulator's time, not the device's latency.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.base import Stage, StageInputs


@dataclass
class BenchmarkParams:
    runtime: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 1
    warmup: int = 10
    iterations: int = 50
    threads: int = 2
    timeout_s: float = 600.0
    host: dict[str, Any] = field(default_factory=dict)


class BenchmarkStage(Stage):
    kind = "benchmark"
    Params = BenchmarkParams
    inputs = ("artifact", "dataset")
    tools = ("numpy",)
    measures_time = True

    def tools_for(self, params: dict[str, Any]) -> tuple[str, ...]:
        from sarvam_pipeline.backends import get_backend

        return self.tools + tuple(get_backend(params["runtime"]).tools)

    def run(self, params: BenchmarkParams, inputs: StageInputs, out: Path) -> dict[str, Any]:
        from sarvam_pipeline.backends import get_backend

        backend = get_backend(params.runtime)
        artifact = backend.artifact_file(inputs["artifact"])
        size = {"artifact_bytes": backend.artifact_size(inputs["artifact"]), "artifact": artifact.name}
        reason = backend.unavailable_reason(params.options)
        if reason is not None:
            self.log.warning("latency and memory not measured: %s", reason)
            return {"status": "needs_device", "reason": reason, **size}

        request = {
            "runtime": params.runtime,
            "options": params.options,
            "artifact": str(inputs["artifact"]),
            "dataset": str(inputs["dataset"]),
            "batch_size": params.batch_size,
            "warmup": params.warmup,
            "iterations": params.iterations,
            "threads": params.threads,
        }
        environment = dict(os.environ)
        for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            environment[variable] = str(params.threads)
        completed = subprocess.run(
            [sys.executable, "-m", "stages.benchmark_worker", json.dumps(request)],
            capture_output=True,
            text=True,
            timeout=params.timeout_s,
            env=environment,
            cwd=str(Path(__file__).resolve().parent.parent),
        )
        if completed.returncode != 0:
            tail = completed.stderr.strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"benchmark process exited with {completed.returncode}: {tail[0]}")
        measured = json.loads(completed.stdout.strip().splitlines()[-1])
        (out / "latencies_ms.json").write_text(json.dumps(measured.pop("latencies_ms")) + "\n", encoding="utf-8")
        self.log.info(
            "%s: p50 %.2f ms, p95 %.2f ms, peak RSS %.0f MB", params.runtime, measured["p50_ms"], measured["p95_ms"], measured["peak_rss_mb"]
        )
        simulator = backend.simulator_note(params.options)
        if simulator is not None:
            # A simulator's time is reported apart from measured latency, so budgets and rankings never use it.
            return {"status": "simulated", "where": simulator, "reason": simulator, **size, **measured}
        return {"status": "measured", "where": "this host", **size, **measured}
