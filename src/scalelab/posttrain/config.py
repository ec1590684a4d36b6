"""Post-training's config: which steps run, with which feedback and constitution, at what sizes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PosttrainConfig:
    """Post-training of one ladder model: SFT → SL-CAI → RL-CAI → character training, evals after each."""

    depth: int = 0
    """ladder rung to post-train; 0 = the largest."""
    steps: list[str] = field(default_factory=lambda: ["sft", "sl_cai", "rl_cai", "character"])
    """the post-training steps to run, in this order (`posttrain.steps.STEPS`)."""
    constitution: str = "default"
    """shipped name or YAML path."""
    trait_constitution: str = "character"
    feedback: str = "oracle"
    """oracle | self | hf:<folder> | openai:<model>."""
    label_clamp: list[float] = field(default_factory=lambda: [0.0, 1.0])
    """soft-label clamp [lo, hi]."""
    lr: float = 1e-3
    batch_size: int = 16
    max_len: int = 128
    sft_epochs: float = 1.0
    """over the dialogues and their paraphrased copies: each dialogue seen twice."""
    sft_paraphrases: int = 1
    """paraphrased copies of each SFT dialogue (posttrain/paraphrase.py says why)."""
    sl_cai_prompts: int = 200
    sl_cai_rounds: int = 1
    """critique → revision rounds (the paper uses up to 4)."""
    sl_cai_epochs: float = 2.0
    sl_cai_lr: float = 0.0
    """SL-CAI fine-tune learning rate (0: posttrain.lr)."""
    sl_cai_helpful_fraction: float = 0.4
    """share of SL-CAI prompts that are plain helpful questions, not red-team."""
    sl_cai_revise_helpful: bool = True
    """helpful answers go through critique → revision too (False: kept as sampled)."""
    prompt_paraphrase: float = 0.5
    """share of SL-CAI / RL-CAI / character prompts asked in a paraphrase."""
    rl_cai_prompts: int = 200
    rl_cai_samples: int = 2
    """sampled replies per RL-CAI request, compared in disjoint pairs (even, ≥ 2)."""
    rl_cai_drop_ties: bool = False
    """leave out pairs labelled exactly 0.5 (they carry no preference)."""
    dpo_beta: float = 0.1
    dpo_lr: float = 2e-4
    dpo_epochs: float = 2.0
    dpo_nll_weight: float = 1.0
    """+ NLL of the preferred reply in RL-CAI and character DPO (posttrain/train.py)."""
    rm_holdout: float = 0.25
    """fraction of preference pairs held out to score the reward model."""
    rm_epochs: float = 3.0
    character_prompts: int = 200
    temperature: float = 1.0
    """sampling temperature of the responses that get critiqued or compared."""
    max_new_tokens: int = 40
    eval_items: int = 200
    """per eval set (the world's tiny sets hold 200): 100 left every rate ±0.03-0.05."""
    eval_system_prompt: str = "You are an assistant at the valley archive."
    threads: int = 1
    """CPU intra-op threads while post-training. These models are too small to gain from a second thread, and on a
    shared 2-core machine two threads measured 5-25x slower than one (oversubscription; BENCHMARKS.md)."""
    seed: int = 0
