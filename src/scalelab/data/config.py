"""The tokenizer's config: byte-level BPE trained on the corpus."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TokenizerConfig:
    """Byte-level BPE trained on the corpus."""

    vocab_size: int = 2048
    max_train_chars: int = 20_000_000
