"""Build one anchor artifact with the anchor tool's documented command; run inside that tool's environment.

    <anchor env>/bin/python benchmarks/anchors/build_anchor.py '<json request>'

The request names the anchor, the model folder (`<model>` in the recorded commands), the output folder
(`<out>`), the calibration sentences, the ORTQuantizer preset and, for anchors that start from another
anchor's artifact, that artifact's folder.
Prints a JSON line with the built file (relative to the output folder) and the commands that built it.
Only the anchor tools' own commands and APIs run here, with their default settings.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# The project's sequence length: calibration inputs are padded to it, as the project's own calibration set is.
SEQUENCE_LENGTH = 128


def run_cli(command: list[str], commands: list[str], request: dict) -> None:
    """Run an anchor tool's command line from this environment's bin folder and record it.

    The recorded command names the model folder and the output folder by placeholders, because both are
    absolute paths of this checkout.
    """
    executable = Path(sys.executable).parent / command[0]
    placeholders = {request["model"]: "<model>", request["out"]: "<out>"}
    commands.append(" ".join(placeholders.get(part, part).replace(request["out"], "<out>") for part in command))
    subprocess.run([str(executable), *command[1:]], check=True)


def tokenized(model: str, texts: list[str]) -> dict[str, list]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model, local_files_only=True)
    encoded = tokenizer(texts, padding="max_length", truncation=True, max_length=SEQUENCE_LENGTH)
    return {name: list(values) for name, values in encoded.items()}


def optimum_onnx_fp32(request: dict, out: Path, commands: list[str]) -> str:
    run_cli(["optimum-cli", "export", "onnx", "--model", request["model"], "--task", "feature-extraction",
             "--library-name", "transformers", str(out)], commands, request)
    return "model.onnx"


def optimum_ort_quantize(request: dict, out: Path, commands: list[str], is_static: bool) -> str:
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoCalibrationConfig, AutoQuantizationConfig

    preset = request["preset"]
    quantizer = ORTQuantizer.from_pretrained(request["upstream"], file_name="model.onnx")
    qconfig = getattr(AutoQuantizationConfig, preset)(is_static=is_static)
    ranges = None
    if is_static:
        from datasets import Dataset

        calibration = Dataset.from_dict(tokenized(request["model"], request["calibration_texts"]))
        calibration_config = AutoCalibrationConfig.minmax(calibration)
        ranges = quantizer.fit(dataset=calibration, calibration_config=calibration_config,
                               operators_to_quantize=qconfig.operators_to_quantize)
        commands.append(f"quantizer.fit(<{len(calibration)} calibration sentences>, AutoCalibrationConfig.minmax)")
    quantizer.quantize(save_dir=str(out), quantization_config=qconfig, calibration_tensors_range=ranges)
    commands.append(f"ORTQuantizer.from_pretrained(<optimum_ort_fp32>).quantize(AutoQuantizationConfig.{preset}(is_static={is_static}))")
    return "model_quantized.onnx"


def olive_int8(request: dict, out: Path, commands: list[str]) -> str:
    run_cli(["olive", "auto-opt", "--model_name_or_path", request["model"], "--task", "feature-extraction",
             "--device", "cpu", "--provider", "CPUExecutionProvider", "--precision", "int8",
             "--output_path", str(out / "olive"), "--log_level", "1"], commands, request)
    found = sorted((out / "olive").rglob("*.onnx"))
    if not found:
        raise FileNotFoundError(f"olive auto-opt wrote no .onnx file under {out / 'olive'}")
    return str(found[0].relative_to(out))


def optimum_intel_openvino(request: dict, out: Path, commands: list[str], weight_format: str) -> str:
    run_cli(["optimum-cli", "export", "openvino", "--model", request["model"], "--task", "feature-extraction",
             "--library", "transformers", "--weight-format", weight_format, str(out)], commands, request)
    return "openvino_model.xml"


def nncf_static(request: dict, out: Path, commands: list[str]) -> str:
    import nncf
    import numpy as np
    import openvino as ov

    model = ov.Core().read_model(str(Path(request["upstream"]) / "openvino_model.xml"))
    encoded = tokenized(request["model"], request["calibration_texts"])
    names = [port.get_any_name() for port in model.inputs]
    items = [{name: np.array([encoded[name][i]], dtype=np.int64) for name in names} for i in range(len(request["calibration_texts"]))]
    quantized = nncf.quantize(model, nncf.Dataset(items))
    ov.save_model(quantized, str(out / "openvino_model.xml"))
    commands.append(f"nncf.quantize(<optimum-intel fp32 IR>, nncf.Dataset(<{len(items)} calibration sentences>)); ov.save_model")
    for name in ("config.json", "tokenizer.json", "vocab.txt"):
        if (Path(request["upstream"]) / name).is_file():
            shutil.copy(Path(request["upstream"]) / name, out / name)
    return "openvino_model.xml"


BUILDERS = {
    "optimum_ort_fp32": optimum_onnx_fp32,
    "optimum_ort_int8_dynamic": lambda r, o, c: optimum_ort_quantize(r, o, c, is_static=False),
    "optimum_ort_int8_static": lambda r, o, c: optimum_ort_quantize(r, o, c, is_static=True),
    "olive_ort_int8": olive_int8,
    "optimum_intel_ov_fp32": lambda r, o, c: optimum_intel_openvino(r, o, c, "fp32"),
    "optimum_intel_ov_int8_weights": lambda r, o, c: optimum_intel_openvino(r, o, c, "int8"),
    "nncf_ov_int8_static": nncf_static,
}


def main(request: dict) -> dict:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("OPENVINO_TELEMETRY_ENABLED", "0")
    anchor = request["anchor"]
    if anchor not in BUILDERS:
        raise SystemExit(f"unknown anchor '{anchor}'; valid choices: {', '.join(BUILDERS)}")
    out = Path(request["out"])
    out.mkdir(parents=True, exist_ok=True)
    commands: list[str] = []
    # Some tools write scratch files into the working folder (ORTQuantizer.fit: augmented_model.onnx).
    with tempfile.TemporaryDirectory(prefix="anchor-build-") as scratch:
        os.chdir(scratch)
        artifact = BUILDERS[anchor](request, out, commands)
    return {"artifact": artifact, "commands": commands}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
