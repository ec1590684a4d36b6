"""The interpretability stage's config: one SAE, in three parts — the activations it reads, its architecture,
and its training — plus how much held-out text scores it, and one section per study built on it.

Nested like sparsify's config: `--set interp.cache.site=mlp_out.2`, `--set interp.sae.k=16`,
`--set interp.train.lr=2e-3`. The architecture and training parts are the same objects `interp.sae` and
`interp.train` take, so a setting has one name and one default. The studies (`interp.superposition`,
`interp.probe`, `interp.universality`, `interp.circuits`, `interp.steering`, `interp.sae_scaling`) are the
`scalelab interp ...` commands' settings and the `interp` stage's; each has an `enabled` switch for the stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scalelab.interp.sae.base import SAEConfig
from scalelab.interp.superposition.config import SuperpositionConfig
from scalelab.interp.train import TrainSAEConfig


@dataclass
class ActivationsConfig:
    """Where an SAE reads a model's activations and how many rows are cached to disk for training."""

    site: str = "resid_post.mid"
    """<resid_pre|resid_post|attn_out|mlp_out|mlp_in|mlp_hidden>.<layer|-1|mid>."""
    seq_len: int = 128
    tokens: int = 100_000
    """activation rows cached to disk (training re-reads them when it needs more)."""
    dtype: str = "fp32"
    """fp32 | bf16: the cache's storage type."""
    forward_dtype: str = "fp32"
    """auto | fp32 | bf16: the model's forward passes that fill the cache (auto: bf16 autocast where this host
    measured it faster on the model's shapes); the SAE's evaluation passes stay fp32. fp32 by default: an SAE
    trained on a bf16-forward cache of the tiny d5 model reached 1.4% higher FVU, past the 1% parity (BENCHMARKS.md)."""
    memory_mb: int = 256
    """one cache shard's size, the most the reader holds in memory."""


@dataclass
class ProbeConfig:
    """Linear probes per layer for the world's concept groups, each against a control task."""

    enabled: bool = True
    """run in the `interp` stage (needs the world's concept labels)."""
    groups: list[str] = field(default_factory=lambda: ["entity_type", "relation", "attribute", "hazard_step"])
    """concept groups probed (`interp.probes.GROUPS`)."""
    rows: int = 96
    """held-out sequences read (val split)."""
    max_tokens: int = 3000
    """labelled tokens per group kept (a random sample when more are present)."""
    layers: list[int] = field(default_factory=list)
    """residual-stream layers read (resid_post.L; -1 is the embeddings, resid_pre.0); [] = every layer."""
    test_frac: float = 0.3
    """fraction of sequences held out to score the probe."""
    l2: float = 1e-3
    """L2 penalty on the probe's weights (standardised inputs)."""
    max_iter: int = 100
    """L-BFGS iterations per probe."""
    seed: int = 0


@dataclass
class UniversalityConfig:
    """Two models' SAEs (different seeds, and different sizes) matched feature by feature."""

    enabled: bool = True
    seed: int = 1
    """`train.seed` of the second model the stage trains (the ladder's rungs use `train.seed`)."""
    depth: int = 0
    """rung whose second seed is trained (0: the smallest of the ladder, the cheapest)."""
    rows: int = 64
    """held-out sequences whose tokens both models read (the correlation's sample)."""
    min_fires: int = 5
    """units firing on fewer tokens are left out (a correlation with almost no support means nothing)."""


@dataclass
class CircuitsConfig:
    """Per-layer transcoders, attribution graphs for world prompts, and the ablation check of each graph."""

    enabled: bool = True
    expansion_factor: int = 4
    """transcoder latents = expansion_factor × d_model."""
    k: int = 16
    """TopK transcoder: active latents per token."""
    tokens: int = 60_000
    """(MLP input, MLP output) pairs each layer's transcoder trains on."""
    lr: float = 3e-3
    batch_size: int = 512
    max_feature_nodes: int = 256
    """feature nodes per graph (their rows cost one backward each, batched): the most influential on the logit."""
    prompts: int = 2
    """graphs the stage builds: fact recall and recipe prompts from the world's eval sets, alternating."""
    node_threshold: float = 0.8
    """pruning: keep the nodes carrying this fraction of the answer logit's total influence (circuit-tracer's)."""
    edge_threshold: float = 0.98
    top_nodes: int = 10
    """nodes ablated in the intervention check (the most influential feature nodes)."""
    random_trials: int = 20
    """random sets of as many active feature nodes, ablated for the comparison."""
    seed: int = 0


@dataclass
class SteeringConfig:
    """Concept features clamped during generation, and hazard features ablated as a safeguard."""

    enabled: bool = True
    concepts: list[str] = field(default_factory=lambda: ["creature", "town", "tool"])
    """world concepts whose most precise SAE feature is steered."""
    scales: list[float] = field(default_factory=lambda: [0.0, 2.0, 5.0, 10.0])
    """clamp values, × the feature's max activation (10: Golden Gate Claude's)."""
    prompts: int = 24
    """generations per scale (prompts: the openings of held-out documents)."""
    new_tokens: int = 24
    loss_rows: int = 16
    """held-out sequences on which the loss cost of each clamp is measured."""
    hazard_features: int = 8
    """features ablated as the hazard safeguard (the most precise for hazard concepts)."""
    eval_items: int = 48
    """items per eval (hazard knowledge, harmful compliance, fact recall) with and without the ablation."""


@dataclass
class SAEScalingConfig:
    """SAE scaling laws after Gao et al. 2024: normalised MSE vs latents, k and training tokens."""

    enabled: bool = True
    widths: list[int] = field(default_factory=lambda: [2, 4, 8, 16])
    """latents as multiples of d_in (at k = `k`, `tokens`)."""
    ks: list[int] = field(default_factory=lambda: [4, 8, 16, 32])
    """active latents per token (at width `width`)."""
    k: int = 16
    width: int = 8
    tokens: int = 40_000
    """training activations per SAE of the width and k sweeps."""
    token_scales: list[float] = field(default_factory=lambda: [0.25, 0.5, 2.0])
    """the tokens sweep: × `tokens` at (width, k)."""
    cache_tokens: int = 40_000
    """activation rows cached once and shared by every SAE (repeated when a run needs more)."""
    batch_size: int = 256
    """activations per step of the sweep's SAEs. They see 10k-80k tokens: at the main SAE's batch (2048) that is
    5-40 steps, too few to converge, and NMSE rose with latents and with k (the reverse of Gao et al.); at 256,
    39-312 steps (BENCHMARKS "Interpretability II")."""
    eval_rows: int = 24
    """held-out sequences for normalised MSE and dead fraction."""


@dataclass
class InterpConfig:
    """An SAE on one model (the `interp` stage runs it on the largest ladder model), its evaluation, and the
    studies built on it."""

    cache: ActivationsConfig = field(default_factory=ActivationsConfig)
    sae: SAEConfig = field(default_factory=SAEConfig)
    train: TrainSAEConfig = field(default_factory=TrainSAEConfig)
    eval_rows: int = 64
    """held-out sequences for FVU / L0 / CE recovered."""
    concept_rows: int = 128
    """val sequences scored against the world's concept labels."""
    feature_rows: int = 128
    """sequences the feature store reads."""
    superposition: SuperpositionConfig = field(default_factory=SuperpositionConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    universality: UniversalityConfig = field(default_factory=UniversalityConfig)
    circuits: CircuitsConfig = field(default_factory=CircuitsConfig)
    steering: SteeringConfig = field(default_factory=SteeringConfig)
    sae_scaling: SAEScalingConfig = field(default_factory=SAEScalingConfig)
