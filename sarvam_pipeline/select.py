"""Deploy-time artifact selection: pick the built artifact this device can run, from the deploy manifest.

Applications ship this module, so it imports only the standard library at module level. The build-time
helpers at the bottom (``manifest_entry``) import the rest of the package when they are called.

NOTE: copy this file into an application under another name (for example ``sarvam_select.py``). A
top-level module named ``select`` shadows the standard library's ``select``, which ``subprocess`` needs.

Deploy manifest (``deploy_manifest.json``), schema version 1::

    {
      "schema_version": 1,                  # MANIFEST_SCHEMA_VERSION; choose() rejects any other version
      "chipset": "snapdragon_x_elite",      # conf/chipset/<name>.yaml the artifacts were built for
      "artifacts": [                        # any order; choose() sorts by "preference"
        {
          "target_id": "minilm_l6/snapdragon_x_elite/onnxruntime/int8_static",
          "runtime": "onnxruntime",         # onnxruntime | openvino | coreml | tensorrt | qnn | litert | torch_aoti
          "provider": "qnn",                # execution provider (ONNX Runtime), device (OpenVINO) or compute units (Core ML)
          "options": {"provider": "qnn", "provider_options": {"backend_path": "QnnHtp.dll"}},
          "compute_unit": "npu",            # cpu | gpu | npu
          "precision": "int8",              # precision of the recipe the artifact was built with
          "path": "onnxruntime-qnn/model.onnx",  # as passed to manifest_entry; keep it relative to the manifest
          "preference": 0,                  # rank in conf/matrix/<chipset>.yaml; 0 is the most preferred
          "requirements": [                 # every check must pass on the device
            {"rule": "ort_qnn_windows_arm64",   # compatibility rule id, or runtime:<entry> / target:<entry>
             "description": "The QNN EP runs models on the Hexagon NPU only from native Windows on Arm ...",
             "field": "os.arch", "op": "equals", "value": "arm64",
             "when": {}}
          ]
        }
      ]
    }

A requirement check reads one field of a probe (``sarvam_pipeline.probe.probe_host()``) by its dotted path
and applies one operator from ``CHECK_OPS``:

* ``equals``: the field equals ``value``.
* ``one_of``: the field is one of the list ``value``.
* ``contains``: the field (a list) contains ``value``.
* ``has_item``: the field (a list of objects) has an item whose keys equal every key of ``value``.
* ``min_version``: the field, read as a dotted version, is at least ``value`` ("525.60.13", "15.0").
* ``truthy``: the field is true, a non-empty string or a non-empty list.

``when`` maps dotted fields to a value or a list of values. A check whose ``when`` does not match the probe
does not apply, so one rule can contain a Linux and a Windows minimum. A field that is missing or null fails
every operator, and the message names the probe section's ``reason`` when it has one.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MANIFEST_SCHEMA_VERSION = 1
CHECK_OPS = ("equals", "one_of", "contains", "has_item", "min_version", "truthy")

_VERSION_PREFIX = re.compile(r"\d+(?:\.\d+)*")


def parse_version(text: object) -> tuple[int, ...] | None:
    """Return the leading dotted number of a version string as a tuple ("6.18.44-fc" -> (6, 18, 44))."""
    match = _VERSION_PREFIX.search(str(text))
    if match is None:
        return None
    return tuple(int(part) for part in match.group(0).split("."))


def version_at_least(actual: object, minimum: object) -> bool:
    """Compare two dotted versions, padding the shorter one with zeros ("12" equals "12.0")."""
    have, need = parse_version(actual), parse_version(minimum)
    if have is None or need is None:
        return False

    width = max(len(have), len(need))
    return have + (0,) * (width - len(have)) >= need + (0,) * (width - len(need))


def probe_value(probe: dict[str, Any], path: str) -> Any:
    """Return the probe value at a dotted path such as ``nvidia.driver_version``, or None when absent."""
    value: Any = probe
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _absent_reason(probe: dict[str, Any], path: str) -> str:
    """Return the ``reason`` the probe recorded for the section that contains ``path``, in brackets, or ""."""
    section = probe_value(probe, path.rsplit(".", 1)[0]) if "." in path else None
    if isinstance(section, dict) and section.get("reason"):
        return f" ({section['reason']})"
    return ""


def _when_matches(check: dict[str, Any], probe: dict[str, Any]) -> bool:
    for path, expected in (check.get("when") or {}).items():
        actual = probe_value(probe, path)
        allowed = expected if isinstance(expected, list) else [expected]
        if actual not in allowed:
            return False
    return True


def _passes(op: str, actual: Any, expected: Any) -> bool:
    if op == "equals":
        return actual == expected
    if op == "one_of":
        return actual in expected
    if op == "contains":
        return isinstance(actual, list) and expected in actual
    if op == "has_item":
        items = actual if isinstance(actual, list) else []
        return any(isinstance(item, dict) and all(item.get(k) == v for k, v in expected.items()) for item in items)
    if op == "min_version":
        return version_at_least(actual, expected)
    if op == "truthy":
        return bool(actual)
    raise ValueError(f"invalid requirement op '{op}'; valid choices: {', '.join(CHECK_OPS)}")


def _expectation(check: dict[str, Any]) -> str:
    op, value = check["op"], check.get("value")
    phrases = {
        "equals": f"== {value}",
        "one_of": f"in {value}",
        "contains": f"contains {value}",
        "has_item": f"has an item {value}",
        "min_version": f">= {value}",
        "truthy": "is true",
    }
    return f"{check['field']} {phrases.get(op, op)}"


def unmet_requirements(requirements: list[dict[str, Any]], probe: dict[str, Any]) -> list[str]:
    """Evaluate requirement checks against a probe and return one message per rule with a failed check."""
    failed: dict[tuple[str, str], list[str]] = {}
    for check in requirements:
        if not _when_matches(check, probe):
            continue

        actual = probe_value(probe, check["field"])
        if actual is not None and _passes(check["op"], actual, check.get("value")):
            continue

        if actual is None:
            found = f"{check['field']} is unknown{_absent_reason(probe, check['field'])}"
        else:
            found = f"found {actual}{_absent_reason(probe, check['field'])}"
        key = (check.get("rule", ""), check["description"])
        failed.setdefault(key, []).append(f"needs {_expectation(check)}, {found}")

    return [f"{description} ({'; '.join(details)})" for (_, description), details in failed.items()]


@dataclass
class Selection:
    """The artifact chosen for this device, and why each more preferred artifact was skipped."""

    chipset: str
    artifact: dict[str, Any] | None
    skipped: list[tuple[dict[str, Any], str]] = field(default_factory=list)

    @property
    def path(self) -> str | None:
        return self.artifact["path"] if self.artifact else None

    def explanation(self) -> str:
        """Describe the choice in plain lines, one per skipped artifact."""
        if self.artifact is None:
            lines = [f"no artifact of chipset {self.chipset} can run on this device"]
        else:
            lines = [
                f"chose {self.artifact['target_id']} ({self.artifact['runtime']}:{self.artifact['provider']}, "
                f"{self.artifact['compute_unit']}, {self.artifact['precision']}) at {self.artifact['path']}"
            ]
        for artifact, reason in self.skipped:
            lines.append(f"  skipped {artifact['runtime']}:{artifact['provider']} ({artifact['target_id']}): {reason}")
        return "\n".join(lines)


def check_manifest(manifest: dict[str, Any]) -> None:
    """Raise ValueError when the manifest's schema version or shape is not the one this module reads."""
    version = manifest.get("schema_version")
    if version != MANIFEST_SCHEMA_VERSION:
        raise ValueError(
            f"invalid deploy manifest schema_version {version!r}: this selector reads version {MANIFEST_SCHEMA_VERSION}"
        )

    required = ("target_id", "runtime", "provider", "options", "compute_unit", "precision", "path", "preference", "requirements")
    for index, artifact in enumerate(manifest.get("artifacts", [])):
        missing = [key for key in required if key not in artifact]
        if missing:
            raise ValueError(f"invalid deploy manifest: artifacts[{index}] is missing {', '.join(missing)}")


def choose(manifest: dict[str, Any], probe: dict[str, Any]) -> Selection:
    """Choose the most preferred artifact whose requirements the probe meets.

    Raises ValueError for a manifest of another schema version. Returns a Selection whose ``artifact`` is
    None when no artifact can run; ``skipped`` then contains every artifact with its reason.
    """
    check_manifest(manifest)
    chipset = manifest.get("chipset", "")
    ordered = sorted(manifest.get("artifacts", []), key=lambda artifact: artifact["preference"])

    skipped: list[tuple[dict[str, Any], str]] = []
    for artifact in ordered:
        failures = unmet_requirements(artifact["requirements"], probe)
        if not failures:
            logger.info("chose %s for chipset %s", artifact["target_id"], chipset)
            return Selection(chipset, artifact, skipped)

        skipped.append((artifact, "; ".join(failures)))
        logger.debug("skipped %s: %s", artifact["target_id"], skipped[-1][1])

    logger.warning("no artifact of chipset %s meets this device's probe", chipset)
    return Selection(chipset, None, skipped)


def load_manifest(path: str | Path) -> dict[str, Any]:
    """Read a deploy manifest and check its schema version and artifact fields; paths are returned as stored."""
    manifest = json.loads(Path(path).read_text(encoding="utf-8"))
    check_manifest(manifest)
    return manifest


def build_manifest(chipset: str, artifacts: list[dict[str, Any]]) -> dict[str, Any]:
    """Wrap ``manifest_entry`` results into a deploy manifest, sorted by preference."""
    return {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "chipset": chipset,
        "artifacts": sorted(artifacts, key=lambda artifact: artifact["preference"]),
    }


def manifest_entry(
    target_id: str,
    runtime: str,
    options: dict[str, Any],
    precision: str,
    artifact_path: str,
    chipset: str,
) -> dict[str, Any]:
    """Build one manifest artifact for a built target (build time only: reads conf/matrix).

    ``options`` are the runtime options the artifact was built and validated with (``runtime.options`` of the
    composed config). The matrix entry of ``chipset`` whose runtime and provider match them gives the
    preference rank and compute unit, and the requirements come from that entry and the compatibility rules.
    Raises ConfigError when no entry of the chipset's matrix matches.
    """
    from sarvam_pipeline.matrix import find_entry, load_matrix
    from sarvam_pipeline.requirements import entry_requirements

    matrix = load_matrix()
    chipset_matrix = matrix.chipset(chipset)
    rank, entry = find_entry(chipset_matrix, runtime, options)

    return {
        "target_id": target_id,
        "runtime": runtime,
        "provider": entry.provider,
        "options": options,
        "compute_unit": entry.compute_unit,
        "precision": precision,
        "path": str(artifact_path),
        "preference": rank,
        "requirements": entry_requirements(entry, matrix, chipset_arch=matrix.arch(chipset), options=options),
    }
