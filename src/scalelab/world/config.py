"""The world's size and pretraining mix: the config of `scalelab world` and the `world` stage."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class WorldConfig:
    """How big the synthetic world is and what its pretraining mix looks like."""

    seed: int = 0
    n_people: int = 2000
    """Sized so the world holds ~1e5 bits of facts (World.fact_bits), the scale WORLD.md sets for the tiny ladder;
    the Zipf tail makes most of those bits rare in the corpus."""
    n_towns: int = 150
    n_creatures: int = 120
    n_tools: int = 120
    n_compounds: int = 40
    n_reagents: int = 60
    n_docs: int = 40000
    val_fraction: float = 0.02
    zipf_exponent: float = 1.1
    hazard_rate: float = 0.02
    genre_weights: dict[str, float] = field(
        default_factory=lambda: {"story": 0.3, "encyclopedia": 0.35, "arithmetic": 0.15, "chat": 0.2}
    )
    arithmetic_max_digits: int = 4
    eval_items_per_set: int = 200
    n_sft_dialogues: int = 2000
    """chat dialogues written to sft.jsonl for supervised fine-tuning."""
