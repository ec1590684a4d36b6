"""How many items of each world eval set are scored after pretraining, and in what batches."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EvalConfig:
    """How many items of each world eval set are scored after pretraining."""

    max_items: int = 200
    batch_size: int = 32
    dtype: str = "auto"
    """auto | fp32 | bf16: the models' forward passes (auto: bf16 autocast where this host measured it faster on
    the model's shapes; scores and sampled tokens come from fp32 logits either way, `model.lm`)."""
