"""Exceptions the command line turns into one-line messages and exit codes."""

from __future__ import annotations

import difflib
from typing import Iterable


class PipelineError(Exception):
    """Base class of the errors the command line reports without a traceback."""

    exit_code = 1


class ConfigError(PipelineError):
    """Invalid configuration, found before any stage runs."""

    exit_code = 2

    @classmethod
    def invalid_choice(
        cls, what: str, value: object, choices: Iterable[str], reason: str = "", ordered: bool = False
    ) -> "ConfigError":
        """Build the error for a value outside a known set, suggesting the nearest valid name.

        Choices are sorted by name unless ``ordered`` keeps the caller's order (numbers, preferences).
        """
        valid = list(choices) if ordered else sorted(choices)
        message = f"invalid {what} '{value}'"
        if reason:
            message += f": {reason}"
        message += f"; valid choices: {', '.join(valid) if valid else '(none)'}"
        close = difflib.get_close_matches(str(value), valid, n=1)
        if close:
            message += f"; did you mean '{close[0]}'?"
        return cls(message)


class StageError(PipelineError):
    """A stage failed while running; the message names the stage and the cause."""

    exit_code = 1


class MissingExtraError(PipelineError):
    """An optional runtime is not installed."""

    exit_code = 2
