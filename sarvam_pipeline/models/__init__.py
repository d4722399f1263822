"""Model adapters: each family loads trained weights and builds one ``nn.Module`` per exported graph.

A family is named in ``conf/model/*.yaml`` (``family:``). Adapters are imported lazily so that planning a
build never imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from sarvam_pipeline.errors import ConfigError

if TYPE_CHECKING:
    from sarvam_pipeline.models.base import ModelAdapter

FAMILIES = {
    "hf_sentence_encoder": "sarvam_pipeline.models.sentence_encoder:SentenceEncoderAdapter",
}


def get_adapter(family: str) -> "ModelAdapter":
    """Return the adapter class instance for a model family, or raise ConfigError naming the valid ones."""
    if family not in FAMILIES:
        raise ConfigError.invalid_choice("model.family", family, FAMILIES)
    module_name, class_name = FAMILIES[family].split(":")
    return getattr(importlib.import_module(module_name), class_name)()
