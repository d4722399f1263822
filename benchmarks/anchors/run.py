"""Build all-MiniLM-L6-v2 with Optimum, Olive, optimum-intel and NNCF and with this project, measure every
artifact the same way in one run, and write the side-by-side table and the two targets to docs/benchmarks.md.

    .venv/bin/python benchmarks/anchors/run.py [--quick] [--ours-onnxruntime int8_dynamic,...]
                                               [--ours-openvino int8_static,...] [--output docs/benchmarks.md]

The anchor tools get environments of their own under benchmarks/anchors/.venv-anchors/ (never the project's
.venv), installed from requirements-ort.txt and requirements-openvino.txt. Their artifacts are cached there
by content, so a rerun only measures. Ours are built with ``python -m sarvam_pipeline`` and its artifact store.
Every measurement runs in a fresh process of the project's .venv (measure.py). See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import logging
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WORK = HERE / ".venv-anchors"
PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"
sys.path.insert(0, str(HERE))

from anchors_report import busy_lines, results_table, target_lines  # noqa: E402

log = logging.getLogger("anchors")

ENVS = {"ort": HERE / "requirements-ort.txt", "openvino": HERE / "requirements-openvino.txt"}
# Packages that a requirement pulls in and that break the environment (requirements-openvino.txt explains).
POST_INSTALL_REMOVE = {"openvino": ("torchvision",)}
# The model as conf/model/minilm_l6.yaml names it; the anchors read the same folder, never a hub.
MODEL_CONFIG = ROOT / "conf" / "model" / "minilm_l6.yaml"
# Stage kinds that are not part of building the artifact itself.
NOT_BUILD_KINDS = {"dataset", "reference", "validate", "benchmark", "coreml_estimate", "numeric_gap"}
DEFAULT_OURS = {
    "onnxruntime": "int8_dynamic,int8_dynamic_accurate,int8_static_accurate",
    "openvino": "int8_static,int8_static_mixed,int8_weight_only",
}


@dataclasses.dataclass(frozen=True)
class Anchor:
    id: str
    env: str
    runtime: str
    label: str
    # Anchor whose artifact this one starts from (an exported model that is then quantized).
    upstream: str | None = None
    calibrated: bool = False


ANCHORS = (
    Anchor("optimum_ort_fp32", "ort", "onnxruntime", "Optimum ONNX export fp32"),
    Anchor("optimum_ort_int8_dynamic", "ort", "onnxruntime", "Optimum ORT int8 dynamic", upstream="optimum_ort_fp32"),
    Anchor("optimum_ort_int8_static", "ort", "onnxruntime", "Optimum ORT int8 static", upstream="optimum_ort_fp32", calibrated=True),
    Anchor("olive_ort_int8", "ort", "onnxruntime", "Olive auto-opt int8"),
    Anchor("optimum_intel_ov_fp32", "openvino", "openvino", "optimum-intel OpenVINO fp32"),
    Anchor("optimum_intel_ov_int8_weights", "openvino", "openvino", "optimum-intel OpenVINO int8 weights"),
    Anchor("nncf_ov_int8_static", "openvino", "openvino", "NNCF static int8 (defaults)", upstream="optimum_intel_ov_fp32", calibrated=True),
)


@dataclasses.dataclass(frozen=True)
class Settings:
    samples: int
    warmup: int
    iterations: int
    retries: int
    retry_wait_s: float
    threads: tuple[int, ...]


# Warm-up and timed runs as the project's own benchmark stage takes them (conf/config.yaml).
FULL = Settings(samples=200, warmup=10, iterations=50, retries=2, retry_wait_s=15.0, threads=(1, 2))
QUICK = Settings(samples=50, warmup=3, iterations=20, retries=1, retry_wait_s=5.0, threads=(1, 2))


def sha256_text(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def run_json(command: list[str], timeout_s: float, what: str) -> dict[str, Any]:
    """Run a helper that prints JSON on its last stdout line; raise with its stderr tail when it fails."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", OPENVINO_TELEMETRY_ENABLED="0", PYTHONUNBUFFERED="1")
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1:] or ["no error output"]
        raise RuntimeError(f"{what} failed with exit code {done.returncode}: {last[0][:300]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------- environments


def ensure_env(name: str) -> Path:
    """Create the anchor environment once; reinstall when its requirements file changed. Return its python."""
    folder = WORK / name
    python = folder / "bin" / "python"
    requirements = ENVS[name]
    stamp = folder / ".installed"
    wanted = sha256_text(requirements.read_text(encoding="utf-8"))
    if python.exists() and stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == wanted:
        return python
    log.info("installing anchor environment %s from %s (a few minutes)", folder, requirements.name)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)], check=True)
    for package in POST_INSTALL_REMOVE.get(name, ()):
        subprocess.run([str(python), "-m", "pip", "uninstall", "--quiet", "--yes", package], check=True)
    stamp.write_text(wanted + "\n", encoding="utf-8")
    return python


def env_versions(python: Path, names: tuple[str, ...]) -> dict[str, str]:
    script = (
        "import json, sys\nfrom importlib.metadata import version, PackageNotFoundError\nout = {}\n"
        "for name in sys.argv[1:]:\n    try:\n        out[name] = version(name)\n"
        "    except PackageNotFoundError:\n        pass\nprint(json.dumps(out))\n"
    )
    return run_json([str(python), "-c", script, *names], 120, f"reading versions in {python}")


# ------------------------------------------------------------------------------------------------------- ours


def build_ours(runtime: str, recipe: str) -> dict[str, Any]:
    """Build one of our targets with the project's CLI and return its row and its report."""
    folder = WORK / "ours" / f"{runtime}-{recipe}"
    shutil.rmtree(folder, ignore_errors=True)
    command = [
        str(PROJECT_PYTHON), "-m", "sarvam_pipeline", "chipset=x86_64_host", f"runtime={runtime}", f"quant={recipe}",
        # The table measures latency itself; the job's own benchmark only needs to run, so keep it short.
        "benchmark.warmup=2", "benchmark.iterations=5", "budgets.enforce=false",
        f"report_dir={folder}", f"hydra.run.dir={folder}",
    ]
    log.info("ours: %s", " ".join(command[1:]))

    env = dict(os.environ, HF_HUB_OFFLINE="1", OPENVINO_TELEMETRY_ENABLED="0")
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    report_path = folder / "report.json"
    if done.returncode != 0 or not report_path.is_file():
        last = done.stderr.strip().splitlines()[-1:] or ["no error output"]
        raise RuntimeError(f"building ours {runtime} {recipe} failed with exit code {done.returncode}: {last[0][:300]}")

    report = json.loads(report_path.read_text(encoding="utf-8"))
    stages = [s for s in report["stages"] if s["kind"] not in NOT_BUILD_KINDS]
    row = {
        "id": f"ours_{runtime}_{recipe}",
        "side": "ours",
        "runtime": runtime,
        "label": f"sarvam_pipeline {recipe}",
        "recipe": recipe,
        "artifact": report["deployable_artifact"],
        "build_s": sum(s["built_in_seconds"] or 0.0 for s in stages),
        "build_cached": all(s["status"] == "cached" for s in stages),
        "commands": [shlex.join(["python", *command[1:6]])],
    }
    return {"row": row, "report": report}


def shared_folders(report: dict[str, Any]) -> tuple[Path, Path]:
    """Return the dataset and reference folders that our job built (every target of the model shares them)."""
    by_kind = {s["kind"]: Path(s["path"]) for s in report["stages"] if s.get("path")}
    return by_kind["dataset"], by_kind["reference"]


# ---------------------------------------------------------------------------------------------------- anchors


def ort_preset() -> str:
    """Return the AutoQuantizationConfig preset that matches this CPU (Optimum's docs pick it by ISA)."""
    if platform.machine().lower() in ("aarch64", "arm64"):
        return "arm64"
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    return "avx2"


def model_source() -> tuple[Path, str]:
    """Return the model folder and its content fingerprint, located as the project locates them."""
    from omegaconf import OmegaConf

    from sarvam_pipeline.models import get_adapter
    from sarvam_pipeline.models.base import resolve_source

    config = OmegaConf.load(MODEL_CONFIG)
    return resolve_source(str(config.source)), get_adapter(str(config.family)).fingerprint(str(config.source))


def build_anchor(anchor: Anchor, context: dict[str, Any], built: dict[str, dict[str, Any]], rebuild: bool) -> dict[str, Any]:
    """Build (or reuse from the cache) one anchor artifact and return its row."""
    if anchor.upstream and anchor.upstream not in built:
        raise RuntimeError(f"its input, anchor {anchor.upstream}, was not built")
    upstream = built[anchor.upstream] if anchor.upstream else None
    calibration = context["calibration_texts"] if anchor.calibrated else []
    preset = context["preset"] if anchor.id.startswith("optimum_ort_int8") else ""
    key = sha256_text(
        anchor.id, ENVS[anchor.env].read_text(encoding="utf-8"), (HERE / "build_anchor.py").read_text(encoding="utf-8"),
        context["fingerprint"], json.dumps(calibration), preset, upstream["key"] if upstream else "",
    )[:16]

    folder = WORK / "artifacts" / f"{anchor.id}-{key}"
    record_path = folder / "build.json"
    if rebuild and folder.exists():
        shutil.rmtree(folder)
    cached = record_path.is_file()
    if not cached:
        temporary = folder.with_name(f".tmp-{folder.name}-{uuid.uuid4().hex[:8]}")
        request = {
            "anchor": anchor.id, "model": str(context["model_folder"]), "out": str(temporary / "artifact"),
            "calibration_texts": calibration, "preset": preset,
            "upstream": str(Path(upstream["artifact"]).parent) if upstream else None,
        }
        log.info("theirs: building %s", anchor.label)
        started = time.perf_counter()
        try:
            result = run_json([str(context["pythons"][anchor.env]), str(HERE / "build_anchor.py"), json.dumps(request)], 3600, f"building {anchor.id}")
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        result["seconds"] = time.perf_counter() - started
        (temporary / "build.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(temporary, folder)

    record = json.loads(record_path.read_text(encoding="utf-8"))
    build_s = record["seconds"] + (upstream["build_s"] if upstream else 0.0)
    return {
        "id": anchor.id,
        "side": "theirs",
        "runtime": anchor.runtime,
        "label": anchor.label + (f" ({preset})" if preset else ""),
        "key": key,
        "artifact": str(folder / "artifact" / record["artifact"]),
        "build_s": build_s,
        "build_cached": cached,
        "commands": (upstream["commands"] if upstream else []) + record["commands"],
    }


def remove_stale_anchors(current_keys: set[str]) -> None:
    """Delete cached anchor artifacts whose inputs changed since they were built, and leftover build folders."""
    folder = WORK / "artifacts"
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        if entry.name.rpartition("-")[2] not in current_keys:
            log.info("removing stale anchor artifact %s", entry.name)
            shutil.rmtree(entry, ignore_errors=True)


# -------------------------------------------------------------------------------------------------- measuring


def runtime_options(runtime: str) -> dict[str, Any]:
    """Return the runtime's options from the project's conf/runtime, used for anchors and ours alike."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "runtime" / f"{runtime}.yaml").options)


def measure(row: dict[str, Any], mode: str, threads: int, settings: Settings, context: dict[str, Any]) -> dict[str, Any]:
    request = {
        "mode": mode, "runtime": row["runtime"], "artifact": row["artifact"], "dataset": str(context["dataset"]),
        "reference": str(context["reference"] / "reference.npy"), "samples": settings.samples, "threads": threads,
        "warmup": settings.warmup, "iterations": settings.iterations, "options": runtime_options(row["runtime"]),
    }
    return run_json([str(PROJECT_PYTHON), str(HERE / "measure.py"), json.dumps(request)], 1800, f"measuring {row['id']} ({mode})")


def measure_latency(row: dict[str, Any], threads: int, settings: Settings, context: dict[str, Any]) -> dict[str, Any]:
    """Measure p50/p95 in a fresh process; re-measure while the load average is above the core count."""
    cores = os.cpu_count() or 1
    # NOTE: the 1-minute load average includes this benchmark's own previous measurements, so a machine
    # running nothing else sits near the thread count; at 2 threads on 2 cores it can cross the line alone.
    attempts = []
    for attempt in range(1 + settings.retries):
        before = os.getloadavg()[0]
        result = measure(row, "latency", threads, settings, context)
        after = os.getloadavg()[0]
        result.update(load_before=before, load_after=after, busy=max(before, after) > cores)
        attempts.append(result)
        if not result["busy"]:
            break
        log.warning("%s at %d thread(s): load average %.2f / %.2f above %d cores (attempt %d)",
                    row["id"], threads, before, after, cores, attempt + 1)
        if attempt < settings.retries:
            time.sleep(settings.retry_wait_s)
    chosen = dict(min(attempts, key=lambda r: max(r["load_before"], r["load_after"])))
    chosen["attempts"] = len(attempts)
    return chosen


def measure_all(rows: list[dict[str, Any]], settings: Settings, context: dict[str, Any]) -> None:
    from sarvam_pipeline.backends.base import artifact_bytes

    for row in rows:
        if row.get("error"):
            continue
        row["size_mb"] = artifact_bytes(Path(row["artifact"])) / 1e6
        try:
            row["accuracy"] = measure(row, "accuracy", max(settings.threads), settings, context)
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            row["error"] = str(error)
        log.info("accuracy %s: %s", row["id"], {k: row.get("accuracy", {}).get(k) for k in ("cosine_mean", "nn_agreement")})
    # Thread count on the outside: every artifact is measured at one setting before the next, so a busy
    # spell of the machine falls on neighbours in the table rather than on one whole column. The order
    # reverses at each thread count, so neither ours (listed first) nor the anchors always go first.
    for round_index, threads in enumerate(settings.threads):
        for row in rows if round_index % 2 == 0 else list(reversed(rows)):
            if row.get("error"):
                continue
            try:
                row.setdefault("latency", {})[str(threads)] = measure_latency(row, threads, settings, context)
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                row["error"] = str(error)
                continue
            log.info("latency %s at %d thread(s): p50 %.2f ms", row["id"], threads, row["latency"][str(threads)]["p50_ms"])


# ---------------------------------------------------------------------------------------------------- output


def write_document(path: Path, rows: list[dict[str, Any]], context: dict[str, Any], settings: Settings, argv: list[str]) -> str:
    from sarvam_pipeline.versions import host_summary

    cores = os.cpu_count() or 1
    host = host_summary()
    intro = (HERE / "benchmarks_intro.md").read_text(encoding="utf-8").rstrip()
    lines = [
        intro,
        "",
        "## Latest results",
        "",
        "<!-- Written by benchmarks/anchors/run.py; edit benchmarks/anchors/benchmarks_intro.md for the text above. -->",
        "",
        f"- date: {context['started']}",
        f"- command: `{shlex.join(['.venv/bin/python', 'benchmarks/anchors/run.py', *argv])}`",
        f"- host: {host.get('cpu')} ({host.get('os')} {host.get('arch')}), {cores} cores; ORTQuantizer preset for "
        f"this CPU: `{context['preset']}`",
        f"- 1-minute load average: {context['load_start']:.2f} at the start, {os.getloadavg()[0]:.2f} at the end",
        f"- {settings.samples} evaluation sentences, batch 1, sequence 128; latency: {settings.warmup} warm-up and "
        f"{settings.iterations} timed runs per fresh process; at most {settings.retries} re-measurement(s) of a busy figure",
        "",
        *results_table(rows),
        "",
        "Latency cells are p50 / p95 in milliseconds. `(busy)`: measured while the load average exceeded the core "
        "count, even after the re-measurements. Build seconds run from the weights to the artifact, export included "
        "(see above); `(cached)` marks an artifact built by an earlier run, with that run's figure.",
        "",
        "## Targets",
        "",
        *target_lines(rows),
        "## Load during the latency measurements",
        "",
        *busy_lines(rows, cores),
        "## Versions",
        "",
        "| environment | tool | version |",
        "|---|---|---|",
    ]
    for env, versions in context["versions"].items():
        lines += [f"| {env} | {name} | {version} |" for name, version in sorted(versions.items())]
    lines += ["", "## How each artifact was built", ""]
    for row in rows:
        commands = "; ".join(f"`{c}`" for c in row.get("commands", [])) or "-"
        error = f" Failed: {row['error']}" if row.get("error") else ""
        lines.append(f"- {row['label']}: {commands}.{error}")
    text = "\n".join(lines) + "\n"
    path.write_text(text, encoding="utf-8")
    return text


# ------------------------------------------------------------------------------------------------------ main


def recipe_list(value: str, runtime: str) -> list[str]:
    recipes = [name.strip() for name in value.split(",") if name.strip()]
    valid = sorted(p.stem for p in (ROOT / "conf" / "quant").glob("*.yaml"))
    for name in recipes:
        if name not in valid:
            raise SystemExit(f"error: unknown {runtime} recipe '{name}'; valid choices: {', '.join(valid)}")
    return recipes


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="50 sentences, 20 timed runs, 1 retry: for trying it")
    parser.add_argument("--ours-onnxruntime", default=DEFAULT_OURS["onnxruntime"], help="our ONNX Runtime recipes, comma-separated (default: %(default)s)")
    parser.add_argument("--ours-openvino", default=DEFAULT_OURS["openvino"], help="our OpenVINO recipes, comma-separated (default: %(default)s)")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"), help="Markdown file to write (default: docs/benchmarks.md)")
    parser.add_argument("--retries", type=int, default=None, help="re-measurements of a latency figure taken while the load average was above the core count (default: 2, or 1 with --quick)")
    parser.add_argument("--rebuild-anchors", action="store_true", help="rebuild the anchor artifacts instead of reusing the cached ones")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv)
    ours = {"onnxruntime": recipe_list(args.ours_onnxruntime, "onnxruntime"), "openvino": recipe_list(args.ours_openvino, "openvino")}
    settings = QUICK if args.quick else FULL
    if args.retries is not None:
        if args.retries < 0:
            raise SystemExit(f"error: invalid --retries {args.retries}; valid choices: 0 or more")
        settings = dataclasses.replace(settings, retries=args.retries)
    if not PROJECT_PYTHON.exists():
        raise SystemExit(f"error: the project's environment {PROJECT_PYTHON} is missing; run `make setup` first")
    context: dict[str, Any] = {
        "started": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "load_start": os.getloadavg()[0],
        "preset": ort_preset(),
    }
    log.info("ORTQuantizer preset for this CPU: %s", context["preset"])
    context["pythons"] = {name: ensure_env(name) for name in ENVS}
    context["model_folder"], context["fingerprint"] = model_source()

    rows: list[dict[str, Any]] = []
    reports = []
    for runtime, recipes in ours.items():
        for recipe in recipes:
            try:
                built = build_ours(runtime, recipe)
            except RuntimeError as error:
                log.error("%s", error)
                rows.append({"id": f"ours_{runtime}_{recipe}", "side": "ours", "runtime": runtime, "label": f"sarvam_pipeline {recipe}", "error": str(error)})
                continue
            rows.append(built["row"])
            reports.append(built["report"])
    if not reports:
        raise SystemExit("error: none of our targets was built, so there is no evaluation set to measure on")
    context["dataset"], context["reference"] = shared_folders(reports[0])
    texts = json.loads((context["dataset"] / "texts.json").read_text(encoding="utf-8"))
    context["calibration_texts"] = texts["calibration"]

    built_anchors: dict[str, dict[str, Any]] = {}
    for anchor in ANCHORS:
        try:
            built_anchors[anchor.id] = build_anchor(anchor, context, built_anchors, args.rebuild_anchors)
            rows.append(built_anchors[anchor.id])
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            log.error("anchor %s: %s", anchor.id, error)
            rows.append({"id": anchor.id, "side": "theirs", "runtime": anchor.runtime, "label": anchor.label, "error": str(error)})

    remove_stale_anchors({row["key"] for row in built_anchors.values()})
    measure_all(rows, settings, context)
    project_tools = ("torch", "transformers", "onnx", "onnxruntime", "openvino", "nncf", "numpy")
    context["versions"] = {"project .venv": env_versions(PROJECT_PYTHON, project_tools)}
    context["versions"]["anchors: ort"] = env_versions(context["pythons"]["ort"], ("torch", "transformers", "optimum", "optimum-onnx", "olive-ai", "onnx", "onnxruntime", "numpy"))
    context["versions"]["anchors: openvino"] = env_versions(context["pythons"]["openvino"], ("torch", "transformers", "optimum", "optimum-intel", "openvino", "nncf", "numpy"))

    output = Path(args.output)
    text = write_document(output, rows, context, settings, argv)
    start = text.index("## Latest results")
    end = text.index("## Load during")
    print(text[start:end])
    log.info("wrote %s", output)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
