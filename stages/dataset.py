"""Build disjoint calibration and evaluation sets from a text corpus shipped in a pip package.

Writes ``texts.json`` (the sentences), ``calibration.npz`` and ``evaluation.npz`` (the tokenized model
inputs, one array per graph input, padded to the model's sequence length).
"""

from __future__ import annotations

import importlib.util
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stages.base import Stage, StageInputs


@dataclass
class DatasetParams:
    source: str = "chatterbot_corpus"
    languages: list[str] = field(default_factory=lambda: ["english"])
    calibration_samples: int = 128
    evaluation_samples: int = 200
    seed: int = 0
    model: dict[str, Any] = field(default_factory=dict)


# Sentences shorter than this many words carry little signal for calibration or nearest-neighbour checks.
MIN_WORDS = 3


def corpus_data_dir() -> Path:
    """Return the data folder of the installed chatterbot-corpus package, without importing it."""
    spec = importlib.util.find_spec("chatterbot_corpus")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package chatterbot-corpus is not installed; install it with pip")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def corpus_languages() -> list[str]:
    """Return the languages the installed chatterbot-corpus ships, as folder names."""
    return sorted(p.name for p in corpus_data_dir().iterdir() if p.is_dir())


def read_chatterbot_corpus(languages: list[str]) -> list[str]:
    """Return the unique dialogue lines of the chatterbot-corpus package for the given languages, sorted."""
    import yaml

    data_dir = corpus_data_dir()
    available = corpus_languages()
    lines: set[str] = set()
    for language in languages:
        if language not in available:
            raise FileNotFoundError(
                f"language '{language}' not found in chatterbot-corpus; valid choices: {', '.join(available)}"
            )
        for path in sorted((data_dir / language).glob("*.yml")):
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            for conversation in document.get("conversations", []) or []:
                for line in conversation:
                    text = " ".join(str(line).split())
                    if len(text.split()) >= MIN_WORDS:
                        lines.add(text)
    return sorted(lines)


class DatasetStage(Stage):
    kind = "dataset"
    Params = DatasetParams
    tools = ("chatterbot-corpus", "transformers", "tokenizers")

    def run(self, params: DatasetParams, inputs: StageInputs, out: Path) -> dict[str, Any]:
        from sarvam_pipeline.models import get_adapter

        if params.source != "chatterbot_corpus":
            raise ValueError(f"unknown data source '{params.source}'; valid choices: chatterbot_corpus")
        sentences = read_chatterbot_corpus(params.languages)
        requested = params.calibration_samples + params.evaluation_samples
        if len(sentences) < requested:
            raise ValueError(
                f"corpus has {len(sentences)} usable sentences, fewer than the {requested} requested; "
                "lower data.calibration_samples or data.evaluation_samples"
            )

        random.Random(params.seed).shuffle(sentences)
        evaluation = sentences[: params.evaluation_samples]
        calibration = sentences[params.evaluation_samples: requested]

        adapter = get_adapter(params.model["family"])
        for name, texts in (("calibration", calibration), ("evaluation", evaluation)):
            np.savez(out / f"{name}.npz", **adapter.tokenize(params.model, texts))
        texts = {"calibration": calibration, "evaluation": evaluation}
        (out / "texts.json").write_text(json.dumps(texts, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

        self.log.info("%d calibration and %d evaluation sentences from %d", len(calibration), len(evaluation), len(sentences))
        return {"calibration": len(calibration), "evaluation": len(evaluation), "corpus_sentences": len(sentences)}


def load_split(folder: Path, split: str) -> dict[str, np.ndarray]:
    """Load one split (``calibration`` or ``evaluation``) of a dataset folder as a dict of arrays."""
    with np.load(folder / f"{split}.npz") as data:
        return {name: data[name] for name in data.files}


def load_calibration_rows(folder: Path, samples: int) -> dict[str, np.ndarray]:
    """Load the first ``samples`` rows of a dataset folder's calibration split.

    Raises ValueError when ``samples`` is below 1 or above the rows the split has.
    """
    arrays = load_split(folder, "calibration")
    check_calibration_samples(samples, len(next(iter(arrays.values()))))
    return {name: array[:samples] for name, array in arrays.items()}


def check_calibration_samples(samples: int, available: int) -> None:
    """Raise ValueError when ``samples`` is below 1 or above the ``available`` calibration rows."""
    if not 1 <= samples <= available:
        raise ValueError(
            f"calibration.samples is {samples} but the calibration split has {available} rows; "
            "set calibration.samples between 1 and data.calibration_samples"
        )
