"""The interpretability stage's config: one SAE, in three parts — the activations it reads, its architecture,
and its training — plus how much held-out text scores it.

Nested like sparsify's config: `--set interp.cache.site=mlp_out.2`, `--set interp.sae.k=16`,
`--set interp.train.lr=2e-3`. The architecture and training parts are the same objects `interp.sae` and
`interp.train` take, so a setting has one name and one default.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scalelab.interp.sae.base import SAEConfig
from scalelab.interp.train import TrainSAEConfig


@dataclass
class ActivationsConfig:
    """Where an SAE reads a model's activations and how many rows are cached to disk for training."""

    site: str = "resid_post.mid"
    """<resid_pre|resid_post|attn_out|mlp_out|mlp_hidden>.<layer|-1|mid>."""
    seq_len: int = 128
    tokens: int = 100_000
    """activation rows cached to disk (training re-reads them when it needs more)."""
    dtype: str = "fp32"
    """fp32 | bf16: the cache's storage type."""
    memory_mb: int = 256
    """one cache shard's size, the most the reader holds in memory."""


@dataclass
class InterpConfig:
    """An SAE on one model (the `interp` stage runs it on the largest ladder model), and its evaluation."""

    cache: ActivationsConfig = field(default_factory=ActivationsConfig)
    sae: SAEConfig = field(default_factory=SAEConfig)
    train: TrainSAEConfig = field(default_factory=TrainSAEConfig)
    eval_rows: int = 64
    """held-out sequences for FVU / L0 / CE recovered."""
    concept_rows: int = 128
    """val sequences scored against the world's concept labels."""
    feature_rows: int = 128
    """sequences the feature store reads."""
