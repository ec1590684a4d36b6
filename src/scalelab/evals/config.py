"""How many items of each world eval set are scored after pretraining, and in what batches."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EvalConfig:
    """How many items of each world eval set are scored after pretraining."""

    max_items: int = 200
    batch_size: int = 32
