"""Check a target's measured or estimated figures against its chipset's budgets."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# 10**6 bytes, the unit of artifact_size_mb.
MEGABYTE = 1_000_000


@dataclass
class BudgetCheck:
    name: str
    limit: float
    value: float | None
    # pass | fail | not_checked
    status: str
    # measured | estimated | "" when not checked
    basis: str
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _compare(name: str, limit: float, value: float, higher_is_better: bool, basis: str, note: str = "") -> BudgetCheck:
    ok = value >= limit if higher_is_better else value <= limit
    return BudgetCheck(name, limit, round(value, 6), "pass" if ok else "fail", basis, note)


def check_budgets(
    budgets: dict[str, Any] | None,
    chipset: dict[str, Any],
    accuracy: dict[str, Any] | None,
    benchmark: dict[str, Any] | None,
) -> list[BudgetCheck]:
    """Return one check per budget that is set; a figure that was not obtained is ``not_checked``."""
    if not budgets:
        return []
    checks: list[BudgetCheck] = []
    benchmark = benchmark or {}
    measured_here = benchmark.get("status") == "measured"

    size_limit = budgets.get("artifact_size_mb")
    if size_limit is not None:
        if "artifact_bytes" in benchmark:
            checks.append(_compare("artifact_size_mb", size_limit, benchmark["artifact_bytes"] / MEGABYTE, False, "measured"))
        else:
            checks.append(BudgetCheck("artifact_size_mb", size_limit, None, "not_checked", "", "artifact not built"))

    for name, field in (("p95_latency_ms", "p95_ms"), ("peak_memory_mb", "peak_rss_mb")):
        limit = budgets.get(name)
        if limit is None:
            continue
        if not measured_here:
            note = benchmark.get("reason") or "not measured"
            checks.append(BudgetCheck(name, limit, None, "not_checked", "", f"needs device: {note}"))
        elif not chipset.get("host_is_target"):
            note = f"measured on this host, which is not a {chipset['name']}; the budget needs a run on the device"
            checks.append(BudgetCheck(name, limit, round(benchmark[field], 3), "not_checked", "measured", note))
        else:
            checks.append(_compare(name, limit, benchmark[field], False, "measured"))

    accuracy_budgets = (
        ("max_accuracy_drop_mean", lambda a: 1.0 - a["cosine_mean"], False),
        ("max_accuracy_drop_worst", lambda a: 1.0 - a["cosine_worst"], False),
        ("min_nn_agreement", lambda a: a["nn_agreement"], True),
    )
    for name, value_of, higher_is_better in accuracy_budgets:
        limit = budgets.get(name)
        if limit is None:
            continue
        if not accuracy or accuracy.get("method") not in ("measured", "estimated"):
            checks.append(BudgetCheck(name, limit, None, "not_checked", "", "accuracy not validated"))
            continue
        note = "from a host-side estimate" if accuracy["method"] == "estimated" else ""
        checks.append(_compare(name, limit, value_of(accuracy), higher_is_better, accuracy["method"], note))
    return checks
