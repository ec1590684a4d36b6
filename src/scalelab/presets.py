"""`RunConfig` — every stage's config, one section each — and the presets built from one size dial.

A preset (`smoke`, `tiny`, `gpu`) picks the ladder of depths, the world's size and the token budgets for a
machine; everything else is the defaults of the section configs, which live beside their code. Any field
can then be overridden with a dotted key (`train.lr=3e-3`, `interp.sae.k=16`) from `--set` or a YAML file
(`--config`, nested keys; it may name its `preset`). `scalelab config --preset P` prints the result with
what every key means.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scalelab.computer.config import ComputerConfig
from scalelab.config import ConfigError, apply_overrides, read_yaml
from scalelab.data.config import TokenizerConfig
from scalelab.evals.config import EvalConfig
from scalelab.interp.config import (
    ActivationsConfig,
    CircuitsConfig,
    InterpConfig,
    ProbeConfig,
    SAEScalingConfig,
    SteeringConfig,
    UniversalityConfig,
)
from scalelab.interp.sae.base import SAEConfig
from scalelab.interp.superposition import SuperpositionConfig
from scalelab.interp.train import TrainSAEConfig
from scalelab.model.config import ModelConfig
from scalelab.posttrain.config import PosttrainConfig
from scalelab.reasoning.config import GRPOConfig, PassKConfig, ReasoningConfig, SFTConfig, StarConfig
from scalelab.rsp.config import RSPConfig
from scalelab.scaling.config import ScalingConfig
from scalelab.scaling.data_config import DataConstrainedConfig, SyntheticConfig
from scalelab.train.config import TrainConfig
from scalelab.world.config import WorldConfig

DEFAULT_PRESET = "tiny"


@dataclass
class RunConfig:
    """Everything `scalelab run` needs: the ladder, the corpus, and each stage's section."""

    preset: str | None = None
    """the preset this config was built from (None: the dataclass defaults)."""
    ladder: list[int] = field(default_factory=lambda: [2, 3, 4])
    """depths of the models pretrained (`model.depth` of each rung)."""
    corpus: str = "world"
    """"world", a local file/dir of .txt/.jsonl/.parquet, or "hf:<datasets name>"."""
    skip_stages: list[str] = field(default_factory=list)
    """stages after the ladder to leave out (`pipeline.STAGES` names: scaling, interp, posttrain, rsp, ...)."""
    world: WorldConfig = field(default_factory=WorldConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evals: EvalConfig = field(default_factory=EvalConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    interp: InterpConfig = field(default_factory=InterpConfig)
    posttrain: PosttrainConfig = field(default_factory=PosttrainConfig)
    rsp: RSPConfig = field(default_factory=RSPConfig)
    computer: ComputerConfig = field(default_factory=ComputerConfig.tiny)
    reasoning: ReasoningConfig = field(default_factory=ReasoningConfig)


def _smoke() -> RunConfig:
    cfg = RunConfig(preset="smoke")
    cfg.world = WorldConfig(
        n_people=60, n_towns=12, n_creatures=12, n_tools=12, n_compounds=6, n_reagents=10,
        n_docs=1500, eval_items_per_set=40, arithmetic_max_digits=3, n_sft_dialogues=200,
    )
    cfg.tokenizer = TokenizerConfig(vocab_size=512)
    # fp32, not auto: tests compare smoke runs across processes and hosts, which a per-host choice would split
    cfg.train = TrainConfig(
        seq_len=64, batch_size=8, lr=3e-3, tokens=40_000, eval_every=10, eval_tokens=4096,
        ckpt_every=20, log_every=5, progress=False, dtype="fp32",
    )
    cfg.evals = EvalConfig(max_items=24, batch_size=24)
    cfg.ladder = [1, 2, 3]
    cfg.model = ModelConfig(aspect_ratio=32, head_dim=16)
    # seconds, not science: a 0.25 tokens-per-parameter prior puts the budgets where the smoke corpus
    # (~1e5 tokens) can feed them, and few eval items keep the 14 sweep runs' scoring short
    cfg.scaling = ScalingConfig(depths=[1, 2, 3, 4, 5], min_tokens=1024, min_steps=6, tokens_per_param_prior=0.25,
                                budget_spacing=1.5, n_bootstrap=10, eval_items=12, latency_new_tokens=8)
    cfg.interp = InterpConfig(cache=ActivationsConfig(tokens=20_000, seq_len=64),
                              sae=SAEConfig(expansion_factor=8, k=16, dead_tokens=20_000),
                              train=TrainSAEConfig(tokens=40_000, batch_size=512),
                              eval_rows=16, concept_rows=32, feature_rows=32,
                              superposition=SuperpositionConfig.smoke(),
                              probe=ProbeConfig(rows=32, max_tokens=800, max_iter=50),
                              universality=UniversalityConfig(rows=16),
                              circuits=CircuitsConfig(tokens=8_000, prompts=2, random_trials=8),
                              steering=SteeringConfig(prompts=8, new_tokens=12, loss_rows=4, eval_items=12),
                              sae_scaling=SAEScalingConfig(widths=[2, 4, 8], ks=[4, 8, 16], width=4, tokens=8_000,
                                                           token_scales=[0.5, 2.0], cache_tokens=8_000, eval_rows=8))
    cfg.posttrain = PosttrainConfig(sft_epochs=1.0, sl_cai_prompts=24, rl_cai_prompts=32, character_prompts=24,
                                    eval_items=16, max_new_tokens=24, batch_size=8)
    # seconds, not science: 12 items per set, the fine-tune elicitation on the largest rung only, no
    # safeguards measurement (they train a probe per model that needs them)
    cfg.rsp = RSPConfig(limit=12, elicitations=["zero_shot", "fine_tune", "reasoning"], safeguards=False)
    cfg.computer = ComputerConfig.smoke()
    # seconds, not science: every part of the reasoning stage once, at a size that proves it runs
    cfg.reasoning = ReasoningConfig(
        tasks=["arithmetic"], sft=SFTConfig(problems=64, epochs=1.0, batch_size=16),
        star=StarConfig(iterations=1, problems=12, samples=2), grpo=GRPOConfig(steps=2, prompts=4, group_size=4),
        eval=PassKConfig(problems=6, ks=[1, 4], verify_problems=4, bootstrap=20), max_new_tokens=32, max_len=96,
        data_constrained=DataConstrainedConfig(unique_tokens=3000, epochs=[1, 2, 4], n_bootstrap=20, eval_items=12,
                                               workers=1),
        synthetic=SyntheticConfig(generations=1, max_new_tokens=32, sample_batch=32, eval_items=12, workers=1))
    return cfg


def _tiny() -> RunConfig:
    cfg = RunConfig(preset="tiny")
    # A world a 2M-parameter model can learn (BENCHMARKS.md, "The world as an instrument"): 150 people, 32
    # compounds whose recipes fill 2.5% of documents, 24k documents (~1.1M training tokens, ~9k bits of facts).
    # On the default world (2000 people, 40k documents) the ladder learned the language but not the world:
    # knowledge gap <= 0.06 at every rung, hazard knowledge at its no-knowledge baseline.
    cfg.world = WorldConfig(n_people=150, n_towns=30, n_creatures=20, n_tools=20, n_compounds=32, n_reagents=48,
                            hazard_rate=0.025, n_docs=24_000)
    cfg.tokenizer = TokenizerConfig(vocab_size=2048)
    # A compute-scaled family, as a lab trains one: every rung 1.5 tokens per non-embedding parameter (d2 152k
    # tokens ... d5 2.3M, ~2 epochs of the corpus), so each larger rung gets more parameters and more data and
    # knowledge rises along the ladder (a fixed 1.2M-token cap left d5 no better than d4). Batch 8: the batch-16
    # ladder was step-limited; batch 4 reached the same val loss as 8 (0.948 vs 0.959 at d3) in twice the steps.
    cfg.train = TrainConfig(seq_len=256, batch_size=8, lr=4e-3, tokens_per_param=1.5, max_tokens=2_400_000)
    cfg.ladder = [2, 3, 4, 5]
    # A narrower family (16 per layer) puts sizes around the prior optimum at budgets a 2-core machine can
    # afford; two sizes on each side of it; budgets x1.5 apart and a 10 tokens/param prior keep the sweep
    # (12 fitted + 2 hold-out runs) inside 6 minutes. Batch 2 x 256 tokens: these models are step-limited
    # (d3 on 393k tokens: val 3.12 at batch 16, 1.98 at 4, 1.81 at 2, lr 0.006-0.015 all within 0.01), and
    # at batch 16 the short runs' losses bent the fit (hold-out errors +8.5%/+15.9%; +1.7%/-1.2% at batch 2).
    # Two runs at once with one thread each (workers=0): a model this small cannot keep two cores busy.
    # The tiny world's ~1.1M training tokens: the plan's largest run needs 4.8M tokens (4.3 passes, at the edge
    # of Muennighoff et al.'s "repeats cost almost nothing" range), so the cap is 6 passes instead of 4 (at 4
    # no plan brackets the prior optimum and the sweep is skipped).
    cfg.scaling = ScalingConfig(aspect_ratio=16, head_dim=16, min_each_side=2, budget_spacing=1.5,
                                tokens_per_param_prior=10.0, batch_size=2, workers=0, max_epochs=6.0)
    # d4: the best fact recall of the tiny ladder at about half d5's cost per step (3-minute budget)
    cfg.posttrain = PosttrainConfig(depth=4)
    # 8 assessments (4 rungs + 4 post-trained models) inside the stage's 90 s budget: zero-shot at 100 items
    # measured 5-9 s of CPU on tiny d2 (a first call pays Inspect's warm-up), 16.7 s with best-of-n, so that
    # is left out here (add it with rsp.elicitations; it lifts free-form recall most); few-shot measured no
    # stronger than zero-shot on tiny-world models; jailbreaks apply only to harmful_compliance (no threshold's)
    # + the reasoning elicitation on the rung the reasoning stage trained (one more Inspect pass there)
    cfg.rsp = RSPConfig(elicitations=["zero_shot", "fine_tune", "reasoning"])
    # a 3-minute budget: the data-wall experiments at the smallest rung on 8k unique tokens (their fuller
    # versions: `scalelab scale data-constrained`, `scalelab synth`), every task a short SFT → STaR → GRPO on
    # d3 with d2 beside it for the compute trade (the targets' runs: `scalelab reason`, BENCHMARKS.md)
    cfg.reasoning = ReasoningConfig(
        depth=3, compute_depths=[2], sft=SFTConfig(problems=800, epochs=2.0),
        star=StarConfig(iterations=1, problems=96, samples=4), grpo=GRPOConfig(steps=6, prompts=4, group_size=8),
        eval=PassKConfig(problems=40, ks=[1, 4, 16], verify_problems=20, bootstrap=100),
        data_constrained=DataConstrainedConfig(unique_tokens=8000, epochs=[1, 2, 4, 8], n_bootstrap=100,
                                               eval_items=100),
        synthetic=SyntheticConfig(generations=3, eval_items=100))
    return cfg


def _gpu() -> RunConfig:
    cfg = RunConfig(preset="gpu")
    cfg.world = WorldConfig(  # ~1e6 bits of facts: the top of WORLD.md's range, for the larger ladder
        n_people=20_000, n_towns=1500, n_creatures=1000, n_tools=1000, n_compounds=200, n_reagents=300,
        n_docs=600_000, eval_items_per_set=500, n_sft_dialogues=20_000,
    )
    cfg.tokenizer = TokenizerConfig(vocab_size=8192)
    cfg.model = ModelConfig(aspect_ratio=64, head_dim=64, max_seq_len=1024)
    cfg.train = TrainConfig(
        seq_len=1024, batch_size=64, lr=2e-3, lr_ref_width=512, tokens_per_param=20.0,
        eval_every=250, eval_tokens=262_144, ckpt_every=500, compile=True,
    )
    cfg.evals = EvalConfig(max_items=500, batch_size=64)
    cfg.ladder = [4, 6, 8, 12]
    cfg.rsp = RSPConfig(limit=0)  # every item of every set, every elicitation the policy requires
    return cfg


PRESETS: dict[str, Callable[[], RunConfig]] = {"smoke": _smoke, "tiny": _tiny, "gpu": _gpu}


def preset(name: str) -> RunConfig:
    """The named preset as a fresh RunConfig; the model's vocab and context follow the tokenizer/train."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")
    cfg = PRESETS[name]()
    sync_derived(cfg)
    return cfg


def sync_derived(cfg: RunConfig) -> None:
    """Fields that must agree across stages are derived, never set twice by hand."""
    cfg.model.vocab_size = cfg.tokenizer.vocab_size
    cfg.model.max_seq_len = max(cfg.model.max_seq_len, cfg.train.seq_len)


def load_config(preset_name: str | None = None, overrides: list[str] | None = None,
                yaml_file: Path | None = None) -> RunConfig:
    """A preset with a YAML file's keys and then `key=value` overrides applied.

    The preset is `preset_name` when given, else the YAML file's `preset` key, else `tiny`; a YAML file
    naming one preset while `preset_name` names another is an error rather than a silent choice.
    """
    data = read_yaml(yaml_file) if yaml_file is not None else {}
    file_preset = data.pop("preset", None)
    if preset_name is not None and file_preset is not None and str(file_preset) != preset_name:
        raise ConfigError(f"--preset {preset_name} disagrees with preset: {file_preset} in {yaml_file}; drop one "
                          "of them")
    cfg = apply_overrides(preset(preset_name or (str(file_preset) if file_preset else DEFAULT_PRESET)), overrides,
                          data)
    sync_derived(cfg)
    return cfg
