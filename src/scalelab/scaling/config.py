"""The scaling stage's config: the IsoFLOP sweep (see `scaling.planner`), its fits, forecasts and tiers."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ScalingConfig:
    """The scaling stage: the IsoFLOP sweep (see `scaling.planner`), its fits, forecasts and model tiers."""

    depths: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6])
    aspect_ratio: int = 0
    """the sweep's family: the model's depth dial with this width per layer (0: model.aspect_ratio / head_dim)."""
    head_dim: int = 0
    n_budgets: int = 3
    sizes_per_budget: int = 4
    budget_spacing: float = 2.0
    min_tokens: int = 100_000
    max_tokens: int = 0
    """0: max_epochs passes over the training split (see scaling.sweep)."""
    max_epochs: float = 4.0
    holdout_factor: float = 4.0
    holdout_sizes: int = 2
    tokens_per_param_prior: float = 20.0
    min_steps: int = 20
    min_each_side: int = 1
    """sizes on each side of the prior optimum in every IsoFLOP profile."""
    batch_size: int = 0
    """sequences per step of sweep runs (0: train.batch_size); the planner may halve it."""
    workers: int = 1
    """sweep runs trained at once, one torch thread each (0: one per CPU core on CPU)."""
    param_kind: str = "total"
    """N of the fits: "total" (Hoffmann et al.) or "non_embedding" (Kaplan et al.)."""
    n_bootstrap: int = 200
    eval_items: int = 0
    """eval items per set scored for each sweep run (0: evals.max_items)."""
    tier_names: list[str] = field(default_factory=lambda: ["small", "balanced", "large"])
    latency_new_tokens: int = 32
    """tokens generated per latency measurement of a tier."""
    distill: bool = True
    """distil the large tier into the small tier's size."""
    distill_alpha: float = 0.5
    """weight of the KL term (1 - alpha on the next-token cross-entropy)."""
    distill_temperature: float = 2.0
