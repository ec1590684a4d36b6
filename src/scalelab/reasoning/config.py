"""The `reasoning` section of the run config: tasks, the training steps (SFT, STaR, GRPO), test-time compute,
and the data-constrained and synthetic-data experiments the stage runs beside them."""

from __future__ import annotations

from dataclasses import dataclass, field

from scalelab.scaling.data_config import DataConstrainedConfig, SyntheticConfig


@dataclass
class TaskConfig:
    """The tasks' difficulty dials: training difficulties, and the held-out harder one evaluated beside them."""

    arithmetic_digits: list[int] = field(default_factory=lambda: [1, 2, 3])
    arithmetic_digits_harder: int = 4
    arithmetic_ops: list[str] = field(default_factory=lambda: ["+", "-"])
    multihop_hops: list[int] = field(default_factory=lambda: [2, 3])
    multihop_hops_harder: int = 4
    multihop_top_entities: int = 0
    """chains start at the N most mentioned people (0: any person)."""
    countdown_numbers: list[int] = field(default_factory=lambda: [2, 3])
    countdown_numbers_harder: int = 4
    countdown_max_number: int = 10
    countdown_max_target: int = 100


@dataclass
class SFTConfig:
    """Supervised fine-tuning on traces the world writes."""

    problems: int = 2000
    """training problems, spread over the training difficulties; each gets one trace."""
    trace: str = "scratchpad"
    """scratchpad (the worked steps, then the answer) or direct (the answer line alone: the baseline)."""
    mistake_rate: float = 0.2
    """share of traces that get one step wrong, notice it and redo it (Ye et al. 2024)."""
    verify_fraction: float = 0.2
    """verification examples added, as a share of the traces: check a proposed answer (right or planted wrong)."""
    epochs: float = 3.0
    lr: float = 3e-3
    batch_size: int = 32


@dataclass
class StarConfig:
    """STaR (Zelikman et al. 2022): fine-tune on the model's own verified samples, iterated."""

    iterations: int = 2
    problems: int = 400
    """training problems sampled per iteration."""
    samples: int = 4
    """samples per problem; the first right one is kept."""
    temperature: float = 1.0
    rationalize: bool = True
    """a problem no sample solved is asked again with its answer as a hint; a right reply is kept, without the
    hint."""
    restart: bool = False
    """each iteration fine-tunes the step's starting model afresh on everything kept so far (the paper) rather
    than the previous iteration's."""
    epochs: float = 2.0
    lr: float = 1e-3
    batch_size: int = 32


@dataclass
class GRPOConfig:
    """Group-relative policy optimisation (Shao et al. 2024) with the task's checker as the reward."""

    steps: int = 40
    prompts: int = 8
    """problems per step."""
    group_size: int = 8
    """samples per problem; advantages are relative to the group."""
    temperature: float = 1.0
    lr: float = 3e-5
    """AdamW's learning rate. Measured on tiny d4 after scratchpad SFT (BENCHMARKS.md, "GRPO's learning rate"):
    3e-4 collapsed the policy in every seed (pass@1 −14.5 points), 1e-4 lost 3 points, 3e-5 gained 2."""
    inner_steps: int = 1
    """policy updates per batch of samples (the clipped ratio matters from the second on; each costs a backward
    pass over the whole batch, the step's largest cost)."""
    clip_low: float = 0.2
    clip_high: float = 0.2
    """upper clip of the ratio; DAPO's clip-higher raises it (0.28)."""
    kl_beta: float = 0.0
    """weight of the KL to the starting model (k3 estimator); 0: no reference model."""
    scale_rewards: bool = True
    """divide advantages by the group's reward std (GRPO); Dr. GRPO leaves them unscaled."""
    loss_norm: str = "sequence"
    """sequence (GRPO: mean over each reply's tokens, then over replies), token (DAPO: over all tokens of the
    batch), constant (Dr. GRPO: sum over tokens / (replies × max_new_tokens))."""
    dynamic_sampling: bool = False
    """DAPO: leave out groups whose rewards are all equal (they carry no gradient) and sample more."""
    grad_clip: float = 1.0
    seeds: list[int] = field(default_factory=lambda: [0])
    """one GRPO run per seed from the same start (intervals over seeds)."""


@dataclass
class PassKConfig:
    """Test-time compute: pass@k (unbiased estimator) and majority@k on held-out problems, per difficulty."""

    problems: int = 100
    """held-out problems per difficulty."""
    ks: list[int] = field(default_factory=lambda: [1, 4, 16, 64])
    temperature: float = 1.0
    bootstrap: int = 200
    """resamples of the problems for the intervals."""
    verify_problems: int = 50
    """held-out problems the self-verification and check-then-revise measurements use."""
    batch_size: int = 256
    """rows per sampling batch."""
    dtype: str = "auto"
    """precision of the evaluations' sampling: auto (bf16 autocast where this host runs the model's products
    faster in it, `model.precision`) | fp32 | bf16; the logits sampled from are fp32 either way."""


@dataclass
class ReasoningConfig:
    """The `reasoning` stage: verifiable tasks trained with SFT → STaR → GRPO and measured at test time, and the
    data-constrained and synthetic-data experiments at the smallest rung."""

    depth: int = 0
    """ladder rung trained on the tasks (0: the largest)."""
    tasks: list[str] = field(default_factory=lambda: ["arithmetic", "multihop", "countdown"])
    steps: list[str] = field(default_factory=lambda: ["sft", "star", "grpo"])
    """training steps, each on the previous one's model (`reasoning.steps.STEPS`)."""
    direct_baseline: list[str] = field(default_factory=lambda: ["arithmetic"])
    """tasks that also get the direct-answer baseline: SFT on the answer alone, same problems and steps."""
    compute_depths: list[int] = field(default_factory=list)
    """rungs SFT-trained on the first task to weigh training against inference compute at matched FLOPs."""
    task: TaskConfig = field(default_factory=TaskConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    star: StarConfig = field(default_factory=StarConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    eval: PassKConfig = field(default_factory=PassKConfig)
    max_new_tokens: int = 128
    """the longest reply sampled (a trace that runs past it has no answer line: malformed)."""
    max_len: int = 192
    """prompt + reply tokens of a training row."""
    data_constrained: DataConstrainedConfig = field(default_factory=DataConstrainedConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    experiments: list[str] = field(default_factory=lambda: ["tasks", "data_constrained", "synthetic"])
    """which parts the stage runs."""
    threads: int = 0
    """CPU threads while training and sampling (0: torch's own count, every core). On an idle 2-core host a
    second thread sampled d3 1.5x faster (BENCHMARKS.md); set 1 on a machine other jobs share."""
    seed: int = 0
