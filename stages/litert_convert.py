"""Convert the PyTorch model to a LiteRT ``model.tflite``, the format Android apps load, with litert-torch.

The conversion runs in the LiteRT environment (``sarvam_pipeline.litert_env``) as a subprocess,
``stages.litert_worker``, because litert-torch's dependencies clash with the project's pins. The worker reloads
the saved file with the ai-edge-litert Interpreter and compares it with eager PyTorch. The file takes batch 1
at the model's sequence length, with int32 inputs: litert-torch 0.10.0 downcasts int64 inputs unless
enable_x64=True.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages import ROOT
from stages.base import Stage, StageInputs

METHODS = ("none", "dynamic", "weight_only")

# Largest absolute difference from eager PyTorch accepted for the float32 file. Quantized files are not
# checked here: validate measures their accuracy against the reference.
FLOAT_TOLERANCE = 1e-4
# Seconds one conversion may take. The real all-MiniLM-L6-v2 stage took about a minute on 2 loaded cores.
CONVERT_TIMEOUT_S = 1800.0
# Lines of the worker's output kept in the error when it fails.
ERROR_TAIL_LINES = 20


@dataclass
class LiteRtConvertParams:
    model: dict[str, Any] = field(default_factory=dict)
    graph: dict[str, Any] = field(default_factory=dict)
    # none (float32), dynamic (dynamic-range int8) or weight_only (int8 weights, float compute).
    method: str = "none"
    weight_bits: int = 8
    # One scale per output channel, or one per tensor when false.
    per_channel: bool = True
    # Package versions of the LiteRT environment, read when the plan is built. The conversion runs there, so
    # they enter the key in place of the versions the stage's ``tools`` would read from this environment.
    environment: dict[str, Any] = field(default_factory=dict)


class LiteRtConvertStage(Stage):
    kind = "litert_convert"
    Params = LiteRtConvertParams

    def unavailable_reason(self, params: LiteRtConvertParams) -> str | None:
        from sarvam_pipeline.litert_env import environment_problem

        return environment_problem()

    def run(self, params: LiteRtConvertParams, inputs: StageInputs, out: Path) -> dict[str, Any]:
        from sarvam_pipeline.litert_env import TOOLS, environment_versions, interpreter_path

        if params.method not in METHODS:
            raise ValueError(f"invalid method '{params.method}' for litert_convert: expected one of {', '.join(METHODS)}")
        if params.method != "none" and params.weight_bits != 8:
            raise ValueError(f"invalid weight_bits {params.weight_bits} for litert_convert: expected 8")
        # Raises with what to run when the environment is missing.
        current = environment_versions()
        # The key contains the versions read when the plan was built, and a build with others would not match it.
        changed = [
            f"{name} {params.environment.get(name)} -> {current.get(name)}"
            for name in TOOLS
            if params.environment.get(name) != current.get(name)
        ]
        if changed:
            raise RuntimeError(
                f"the LiteRT environment differs from the one the plan was built with ({', '.join(changed)}); "
                "plan again (rerun the command, or python -m sarvam_pipeline.dvc compile)"
            )

        path = out / "model.tflite"
        with tempfile.TemporaryDirectory(prefix="litert_worker_") as scratch:
            request = {
                "model": params.model,
                "graph": params.graph,
                "method": params.method,
                "weight_bits": params.weight_bits,
                "per_channel": params.per_channel,
                "output": str(path),
                "result_file": str(Path(scratch) / "result.json"),
            }
            self._run_worker(interpreter_path(), request)
            figures = json.loads(Path(request["result_file"]).read_text(encoding="utf-8"))

        difference = figures["max_abs_diff_vs_torch"]
        if params.method == "none" and difference > FLOAT_TOLERANCE:
            raise ValueError(f"the float32 .tflite differs from eager PyTorch by {difference:.2e} (tolerance {FLOAT_TOLERANCE})")
        self.log.info(
            "converted %s/%s to .tflite, method %s, in %.1f s (max |diff| %.1e, worst cosine %.5f vs PyTorch)",
            params.model["name"], params.graph["name"], params.method, figures["convert_seconds"], difference,
            figures["cosine_worst_vs_torch"],
        )
        return {
            "method": params.method,
            "weight_bits": params.weight_bits if params.method != "none" else 32,
            "per_channel": params.per_channel,
            "input_shape": {"batch": 1, "sequence": int(params.model["sequence_length"])},
            **figures,
        }

    def _run_worker(self, python: Path, request: dict[str, Any]) -> None:
        environment = dict(os.environ)
        # The worker imports the model adapter from this checkout, which is not installed in that environment.
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environment.get("PYTHONPATH")]))
        environment.setdefault("HF_HUB_OFFLINE", "1")
        try:
            completed = subprocess.run(
                [str(python), "-m", "stages.litert_worker", json.dumps(request)],
                capture_output=True,
                text=True,
                timeout=CONVERT_TIMEOUT_S,
                env=environment,
                cwd=str(ROOT),
            )
        except subprocess.TimeoutExpired as error:
            raise RuntimeError(f"LiteRT conversion timed out after {CONVERT_TIMEOUT_S:.0f} s") from error
        if completed.returncode != 0:
            lines = completed.stderr.strip().splitlines() or completed.stdout.strip().splitlines() or ["no output"]
            self.log.error("LiteRT conversion worker output:\n%s", "\n".join(lines[-ERROR_TAIL_LINES:]))
            raise RuntimeError(f"LiteRT conversion exited with {completed.returncode}: {lines[-1]}")
        self.log.debug("LiteRT conversion worker output:\n%s", completed.stderr[-4000:])
