"""BERT-style sentence encoders from Hugging Face transformers (all-MiniLM-L6-v2 and alike).

The exported graph takes ``input_ids`` and ``attention_mask`` and returns the L2-normalised mean-pooled
sentence embedding, as sentence-transformers computes it, so every runtime's artifact outputs the
embedding directly.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from sarvam_pipeline.errors import ConfigError
from sarvam_pipeline.models.base import ModelAdapter, resolve_source

# Added to the attention scores of padding tokens. -1e4 rather than the float32 minimum, because the
# minimum overflows to -inf in fp16 runtimes and saturates 8-bit and 16-bit activation ranges.
MASK_NEGATIVE = -1.0e4


def _quiet_transformers() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    # The progress bars and load report write terminal escape codes into log files.
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


@lru_cache(maxsize=4)
def _load_transformers(source: str):
    _quiet_transformers()
    from transformers import AutoModel

    folder = resolve_source(source)
    model = AutoModel.from_pretrained(folder, local_files_only=True, attn_implementation="eager")
    return model.eval(), _load_tokenizer(source)


@lru_cache(maxsize=4)
def _load_tokenizer(source: str):
    _quiet_transformers()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_source(source), local_files_only=True)


def _encoder_module(model, pooling: str, normalize: bool):
    import torch

    class SentenceEncoder(torch.nn.Module):
        """Embeddings and encoder layers called with a precomputed additive mask.

        Calling the submodules directly avoids the mask helpers of ``BertModel.forward`` that
        coremltools cannot convert (``new_ones``, ``bitwise_and`` on a float input).
        """

        def __init__(self) -> None:
            super().__init__()
            self.embeddings = model.embeddings
            self.encoder = model.encoder

        def forward(self, input_ids, attention_mask):
            mask = attention_mask.to(torch.float32)
            additive = (1.0 - mask)[:, None, None, :] * MASK_NEGATIVE
            hidden = self.embeddings(input_ids=input_ids)
            hidden = self.encoder(hidden, attention_mask=additive).last_hidden_state
            if pooling == "cls":
                pooled = hidden[:, 0]
            else:
                weights = mask.unsqueeze(-1)
                pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
            if normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2.0, dim=1)
            return pooled

    return SentenceEncoder().eval()


class SentenceEncoderAdapter(ModelAdapter):
    fingerprint_patterns = ("*.safetensors", "*.bin", "config.json", "tokenizer.json", "vocab.txt")

    def fingerprint(self, source: str) -> str:
        """Hash the model files after checking that each safetensors file has a readable header."""
        from safetensors import safe_open

        folder = resolve_source(source)
        for path in sorted(folder.glob("*.safetensors")):
            try:
                with safe_open(str(path), framework="numpy") as handle:
                    handle.keys()
            except Exception as error:  # safetensors raises its own SafetensorError and OSError subclasses
                raise ConfigError(f"model weights {path} are corrupt or truncated: {error}") from error
        return super().fingerprint(source)

    def build_module(self, model_cfg: dict[str, Any], graph: str) -> Any:
        model, _ = _load_transformers(model_cfg["source"])
        return _encoder_module(model, model_cfg.get("pooling", "mean"), bool(model_cfg.get("normalize", True)))

    def tokenize(self, model_cfg: dict[str, Any], texts: list[str]) -> dict[str, Any]:
        import numpy as np

        tokenizer = _load_tokenizer(model_cfg["source"])
        encoded = tokenizer(
            texts,
            padding="max_length",
            truncation=True,
            max_length=int(model_cfg["sequence_length"]),
            return_tensors="np",
        )
        return {
            "input_ids": encoded["input_ids"].astype(np.int64),
            "attention_mask": encoded["attention_mask"].astype(np.int64),
        }

    def example_inputs(self, model_cfg: dict[str, Any], graph: str, batch_size: int) -> tuple:
        import torch

        length = int(model_cfg["sequence_length"])
        generator = torch.Generator().manual_seed(0)
        input_ids = torch.randint(1000, 2000, (batch_size, length), dtype=torch.int64, generator=generator)
        attention_mask = torch.ones((batch_size, length), dtype=torch.int64)
        attention_mask[:, length // 2:] = 0
        return input_ids, attention_mask
