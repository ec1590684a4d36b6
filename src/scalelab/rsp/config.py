"""The `rsp` stage's config: which policy, how many items and which elicitations each assessment runs."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RSPConfig:
    """The `rsp` stage: which policy, how many items and which elicitations each capability eval runs."""

    policy: str = "default"
    """a shipped policy name or a YAML file (scalelab.rsp.policy.load_policy)."""
    limit: int = 100
    """items per capability eval (0: every item of the set)."""
    elicitations: list[str] = field(default_factory=list)
    """elicitations run on every model; [] = those the policy requires. fine_tune runs only on the largest ladder
    model (fine_tune_largest): it trains a model per assessment, the one cost that grows with the ladder."""
    fine_tune_largest: bool = True
    posttrained: bool = True
    """also assess every post-training step's model (posttrain/<step>)."""
    safeguards: bool = True
    """measure the required safeguards of a model whose determination needs them."""
    safeguards_limit: int = 0
    """items per safeguard measurement (0: the SAFEGUARDS defaults)."""
    seed: int = 0
