"""Rendering of the decision matrix: rich tables for the terminal and the Markdown page under docs/."""

from __future__ import annotations

import logging
import sys

from rich.console import Console
from rich.table import Table

from sarvam_pipeline.matrix import CompatibilityRule, DecisionMatrix, MatrixEntry

logger = logging.getLogger(__name__)

REGENERATE_COMMAND = "python -m sarvam_pipeline.matrix --write docs/decision-matrix.md"
COLUMNS = ("#", "runtime", "provider / device", "unit", "precisions", "recipe", "OS", "buildable", "provider options", "reason")


def _options_text(entry: MatrixEntry) -> str:
    return ", ".join(f"{key}={value}" for key, value in entry.provider_options.items()) or "-"


def _row(rank: int, entry: MatrixEntry) -> list[str]:
    return [
        str(rank + 1),
        entry.runtime,
        entry.provider,
        entry.compute_unit,
        ", ".join(entry.precisions),
        entry.recipe,
        ", ".join(entry.os),
        "yes" if entry.buildable else "no",
        _options_text(entry),
        entry.reason,
    ]


def _scope_text(rule: CompatibilityRule) -> str:
    scopes = []
    for scope in rule.applies_to:
        text = scope.runtime
        if scope.providers:
            text += ":" + "|".join(scope.providers)
        if scope.options:
            text += " with " + ", ".join(f"{key}={value}" for key, value in scope.options.items())
        scopes.append(text)
    return "; ".join(scopes)


def _checks_text(rule: CompatibilityRule) -> str:
    parts = []
    for check in rule.checks:
        text = f"{check.field} {check.op} {check.value}" if check.op != "truthy" else f"{check.field} is true"
        if check.when:
            text += " when " + ", ".join(f"{key}={value}" for key, value in check.when.items())
        parts.append(text)
    return "; ".join(parts)


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown_table(header: tuple[str, ...] | list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(_markdown_cell(cell) for cell in row) + " |" for row in rows)
    return lines


def render_markdown(matrix: DecisionMatrix) -> str:
    """Render the whole matrix and the compatibility rules as the docs/decision-matrix.md page."""
    lines = [
        "<!-- Generated from conf/matrix/ by sarvam_pipeline.matrix; do not edit by hand. -->",
        f"<!-- Regenerate with: {REGENERATE_COMMAND} -->",
        "",
        "# Runtime decision matrix",
        "",
        "For each chipset, the runtimes and execution providers the pipeline considers, most preferred first.",
        "At build time `runtime=auto` takes the first entry whose artifact this host can build, and the fallback",
        "mode decides where it is validated. `python -m sarvam_pipeline.fallback CHIPSET` prints the first entry",
        "that this host can also run, the choice when the build host is the device itself. At deploy time",
        "`sarvam_pipeline.select.choose` takes the first built artifact whose requirements the device meets.",
        "Entries with buildable `no` use runtimes that are not build targets yet. The recipe column names the",
        "recommended file in `conf/quant/`; the unit column is the compute unit the entry is meant to use.",
        "",
        f"Generated from `conf/matrix/*.yaml`. Regenerate with `{REGENERATE_COMMAND}`;",
        "`tests/test_matrix.py` fails when this page is out of date.",
        "",
    ]

    for name in sorted(matrix.chipsets):
        chipset_matrix = matrix.chipsets[name]
        lines.append(f"## {name}")
        lines.append("")
        rows = [_row(rank, entry) for rank, entry in enumerate(chipset_matrix.entries)]
        lines.extend(_markdown_table(COLUMNS, rows))
        lines.append("")

    lines.append("## Compatibility rules")
    lines.append("")
    lines.append("A matrix entry runs on a host only when every rule that applies to it passes. The checks read fields")
    lines.append("of the host probe, which `python -m sarvam_pipeline.probe --json` prints.")
    lines.append("")
    rows = [[rule.id, _scope_text(rule), rule.description, _checks_text(rule), rule.source] for rule in matrix.rules]
    lines.extend(_markdown_table(("rule", "applies to", "requirement", "probe checks", "source"), rows))
    lines.append("")
    return "\n".join(lines)


def print_tables(matrix: DecisionMatrix, console: Console | None = None) -> None:
    """Print one rich table per chipset and one for the compatibility rules."""
    # Piped output has no terminal width; 160 columns keep each entry on a few lines.
    console = console or (Console() if sys.stdout.isatty() else Console(width=160))
    wrapped = ("provider options", "reason")
    for name in sorted(matrix.chipsets):
        table = Table(title=f"{name} (most preferred first)", show_lines=True)
        for column in COLUMNS:
            table.add_column(column, overflow="fold", no_wrap=column not in wrapped, ratio=3 if column == "reason" else None)
        for rank, entry in enumerate(matrix.chipsets[name].entries):
            table.add_row(*_row(rank, entry), style=None if entry.buildable else "dim")
        console.print(table)

    rules = Table(title="compatibility rules")
    for column in ("rule", "applies to", "requirement", "source"):
        rules.add_column(column, overflow="fold")
    for rule in matrix.rules:
        rules.add_row(rule.id, _scope_text(rule), rule.description, rule.source)
    console.print(rules)
