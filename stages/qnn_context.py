"""Compile a QNN QDQ model ahead of time into an EPContext model with a QNN context binary.

ONNX Runtime's ``ModelCompiler`` runs the QNN EP's graph preparation once and writes ``model_ctx.onnx``,
whose EPContext node names the context binary beside it (embed mode 0), so a device loads the prepared
graph without compiling it again. The stage then reloads the EPContext model from disk on the QNN EP with CPU
fallback disabled and checks that it returns the same outputs as the QDQ model compiled at load time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stages.base import Stage, StageInputs

# Largest absolute difference accepted between the EPContext model's outputs and the QDQ model's, both on
# the QNN EP, for unit-length sentence embeddings. ONNX Runtime optimizes the graph at level basic when it
# compiles and at level all when a session loads the QDQ model, which moved outputs of the tiny test model by
# up to 7.5e-5 (onnxruntime 1.32, onnxruntime-qnn 2.7.0).
MAX_ABS_DIFFERENCE = 1e-3


@dataclass
class QnnContextParams:
    # QNN EP provider options (backend_type, htp_arch, soc_model, ...), as strings or numbers.
    provider_options: dict[str, Any] = field(default_factory=dict)
    # 0 writes the context binary beside model_ctx.onnx; 1 embeds it in the EPContext node.
    embed_mode: int = 0


def compile_context(source: Path, target: Path, provider_options: dict[str, Any], embed: bool) -> None:
    import onnxruntime

    from sarvam_pipeline.backends import qnn

    session_options = onnxruntime.SessionOptions()
    session_options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    qnn.add_qnn_provider(session_options, provider_options)
    # Basic optimizations fold the Shape, Expand and Reshape chains of the static-shape graph into constants.
    # The compiler's default (no optimization) leaves them for the CPU EP, which fails with fallback disabled.
    compiler = onnxruntime.ModelCompiler(
        session_options,
        str(source),
        embed_compiled_data_into_model=embed,
        graph_optimization_level=onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    )
    compiler.compile_to_file(str(target))


class QnnContextStage(Stage):
    kind = "qnn_context"
    Params = QnnContextParams
    inputs = ("model", "dataset")
    tools = ("onnx", "onnxruntime", "onnxruntime-qnn")
    extra = "qnn"

    def unavailable_reason(self, params: QnnContextParams) -> str | None:
        from sarvam_pipeline.backends.qnn import qnn_unavailable_reason

        return qnn_unavailable_reason()

    def run(self, params: QnnContextParams, inputs: StageInputs, out: Path) -> dict[str, Any]:
        from sarvam_pipeline.backends.onnxruntime import OnnxRuntimeSession, _create_session, _session_options
        from sarvam_pipeline.backends.qnn import CONTEXT_MODEL, QNN_PROVIDER, session_provider_options
        from stages.dataset import load_split

        if params.embed_mode not in (0, 1):
            raise ValueError(f"invalid embed_mode {params.embed_mode}; valid choices: 0, 1")
        source = inputs["model"] / "model.onnx"
        target = out / CONTEXT_MODEL
        options = session_provider_options(params.provider_options)

        started = time.perf_counter()
        compile_context(source, target, options, embed=params.embed_mode == 1)
        compile_seconds = time.perf_counter() - started

        # Reload both from disk on the QNN EP, CPU fallback disabled, and compare one evaluation row.
        evaluation = load_split(inputs["dataset"], "evaluation")
        feeds = {name: array[:1] for name, array in evaluation.items()}
        sessions = {
            name: OnnxRuntimeSession(_create_session(path, QNN_PROVIDER, options, _session_options(None, QNN_PROVIDER)), path, QNN_PROVIDER, options, None)
            for name, path in (("context", target), ("qdq", source))
        }
        outputs = {name: session.run(feeds) for name, session in sessions.items()}
        difference = float(np.abs(outputs["context"] - outputs["qdq"]).max())
        if not np.isfinite(outputs["context"]).all() or difference > MAX_ABS_DIFFERENCE:
            raise ValueError(
                f"the EPContext model {target.name} differs from the QDQ model by {difference:.3g} "
                f"(more than {MAX_ABS_DIFFERENCE}) on the first evaluation row"
            )

        binaries = sorted(path.name for path in out.iterdir() if path.name != CONTEXT_MODEL)
        if params.embed_mode == 0 and not binaries:
            raise ValueError(f"embed_mode 0 wrote no context binary beside {target.name}")
        self.log.info(
            "EPContext model %s with %s compiled in %.1f s; outputs match the QDQ model (max |diff| %.3g)",
            target.name, ", ".join(binaries) or "the context binary embedded", compile_seconds, difference,
        )
        return {
            "provider": QNN_PROVIDER,
            "provider_options": options,
            "embed_mode": params.embed_mode,
            "context_binaries": binaries,
            "compile_seconds": round(compile_seconds, 3),
            "max_abs_difference_vs_qdq": difference,
        }
