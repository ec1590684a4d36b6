"""Typed configs and the presets built from one size dial.

Every stage takes one of the small dataclasses below. Model shapes come from one dial, `depth`:
width, heads and MLP size follow from it (`ModelConfig`), and a ladder is a list of depths. A preset
(`smoke`, `tiny`, `gpu`) only picks the ladder, the world's size and the token budget for a machine;
everything else is the dataclass defaults.
Any field can then be overridden with dotted keys (`train.lr=3e-3`) from the command line or a
YAML file; an unknown preset or key is an error that lists the valid ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A user-supplied preset name, key or value is invalid; the message says how to fix it."""


@dataclass
class WorldConfig:
    """How big the synthetic world is and what its pretraining mix looks like."""

    seed: int = 0
    # Sized so the world holds ~1e5 bits of facts (World.fact_bits), the scale WORLD.md sets for the tiny
    # ladder; the Zipf tail makes most of those bits rare in the corpus.
    n_people: int = 2000
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
    n_sft_dialogues: int = 2000  # chat dialogues written to sft.jsonl for supervised fine-tuning


@dataclass
class TokenizerConfig:
    """Byte-level BPE trained on the corpus."""

    vocab_size: int = 2048
    max_train_chars: int = 20_000_000


@dataclass
class ModelConfig:
    """A Llama-style decoder. `depth` is the size dial: width and heads follow from it."""

    depth: int = 4
    aspect_ratio: int = 32  # d_model = depth * aspect_ratio (nanochat uses 64 at larger scale)
    head_dim: int = 32
    n_kv_heads: int | None = None  # None: multi-head attention (kv heads = heads)
    ffn_mult: float = 8 / 3  # SwiGLU hidden = round_up(ffn_mult * d_model, 16)
    vocab_size: int = 2048
    max_seq_len: int = 256
    tie_embeddings: bool = True
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    init_std: float = 0.02
    # Set only when importing a HF model whose shape the dial cannot express (e.g. SmolLM2).
    d_model_override: int | None = None
    d_ff_override: int | None = None

    @property
    def d_model(self) -> int:
        return self.d_model_override or self.depth * self.aspect_ratio

    @property
    def n_heads(self) -> int:
        if self.d_model % self.head_dim:
            raise ConfigError(
                f"model.d_model={self.d_model} (depth*aspect_ratio) is not a multiple of "
                f"model.head_dim={self.head_dim}; change depth, aspect_ratio or head_dim"
            )
        return self.d_model // self.head_dim

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def d_ff(self) -> int:
        if self.d_ff_override:
            return self.d_ff_override
        return int(-(-int(self.ffn_mult * self.d_model) // 16) * 16)


@dataclass
class TrainConfig:
    """Optimiser, schedule, budget and bookkeeping of one pretraining run."""

    seq_len: int = 256
    batch_size: int = 16  # sequences per optimiser step, summed over all processes
    lr: float = 3e-3
    lr_scaling: str = "sqrt_width"  # lr = lr * sqrt(ref_width / d_model); "none" keeps lr as is
    lr_ref_width: int = 128
    min_lr_frac: float = 0.1
    warmup_frac: float = 0.05
    schedule: str = "cosine"  # "cosine" or "wsd" (warmup-stable-decay)
    decay_frac: float = 0.2  # WSD: fraction of steps in the final decay
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    tokens: int = 0  # total training tokens; 0 means tokens_per_param * non-embedding params
    tokens_per_param: float = 4.0
    max_tokens: int = 0  # cap on tokens (0: none) so the largest rung stays inside the time budget
    eval_every: int = 100
    eval_tokens: int = 32768
    ckpt_every: int = 200
    log_every: int = 10
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16
    compile: bool = False
    progress: bool = True


@dataclass
class EvalConfig:
    """How many items of each world eval set are scored after pretraining."""

    max_items: int = 200
    batch_size: int = 32


@dataclass
class ScalingConfig:
    """The scaling stage: the IsoFLOP sweep (see `scaling.planner`), its fits, forecasts and model tiers."""

    depths: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6])
    # the sweep's family: the model's depth dial with this width per layer (0: model.aspect_ratio / head_dim)
    aspect_ratio: int = 0
    head_dim: int = 0
    n_budgets: int = 3
    sizes_per_budget: int = 4
    budget_spacing: float = 2.0
    min_tokens: int = 100_000
    max_tokens: int = 0  # 0: max_epochs passes over the training split (see scaling.sweep)
    max_epochs: float = 4.0
    holdout_factor: float = 4.0
    holdout_sizes: int = 2
    tokens_per_param_prior: float = 20.0
    min_steps: int = 20
    min_each_side: int = 1  # sizes on each side of the prior optimum in every IsoFLOP profile
    batch_size: int = 0  # sequences per step of sweep runs (0: train.batch_size); the planner may halve it
    workers: int = 1  # sweep runs trained at once, one torch thread each (0: one per CPU core on CPU)
    param_kind: str = "total"  # N of the fits: "total" (Hoffmann et al.) or "non_embedding" (Kaplan et al.)
    n_bootstrap: int = 200
    eval_items: int = 0  # eval items per set scored for each sweep run (0: evals.max_items)
    tier_names: list[str] = field(default_factory=lambda: ["small", "balanced", "large"])
    latency_new_tokens: int = 32  # tokens generated per latency measurement of a tier
    distill: bool = True  # distil the large tier into the small tier's size
    distill_alpha: float = 0.5  # weight of the KL term (1 - alpha on the next-token cross-entropy)
    distill_temperature: float = 2.0


@dataclass
class PosttrainConfig:
    """Post-training of one ladder model: SFT → SL-CAI → RL-CAI → character training, evals after each."""

    depth: int = 0  # ladder rung to post-train; 0 = the largest
    stages: list[str] = field(default_factory=lambda: ["sft", "sl_cai", "rl_cai", "character"])
    constitution: str = "default"  # shipped name or YAML path
    trait_constitution: str = "character"
    feedback: str = "oracle"  # oracle | policy | hf:<folder> | openai:<model>
    label_clamp: list[float] = field(default_factory=lambda: [0.0, 1.0])  # soft-label clamp [lo, hi]
    lr: float = 1e-3
    batch_size: int = 16
    max_len: int = 128
    sft_epochs: float = 1.0  # over the dialogues and their paraphrased copies: each dialogue seen twice
    sft_paraphrases: int = 1  # paraphrased copies of each SFT dialogue (posttrain/paraphrase.py says why)
    sl_cai_prompts: int = 200
    sl_cai_rounds: int = 1  # critique → revision rounds (the paper uses up to 4)
    sl_cai_epochs: float = 2.0
    sl_cai_lr: float = 0.0  # SL-CAI fine-tune learning rate (0: posttrain.lr)
    sl_cai_helpful_fraction: float = 0.4  # share of SL-CAI prompts that are plain helpful questions, not red-team
    sl_cai_revise_helpful: bool = True  # helpful answers go through critique → revision too (False: kept as sampled)
    prompt_paraphrase: float = 0.5  # share of SL-CAI / RL-CAI / character prompts asked in a paraphrase
    rl_cai_prompts: int = 200
    rl_cai_samples: int = 2  # sampled replies per RL-CAI request, compared in disjoint pairs (even, ≥ 2)
    rl_cai_drop_ties: bool = False  # leave out pairs labelled exactly 0.5 (they carry no preference)
    dpo_beta: float = 0.1
    dpo_lr: float = 2e-4
    dpo_epochs: float = 2.0
    dpo_nll_weight: float = 1.0  # + NLL of the preferred reply in RL-CAI and character DPO (posttrain/train.py)
    rm_holdout: float = 0.25  # fraction of preference pairs held out to score the reward model
    rm_epochs: float = 3.0
    character_prompts: int = 200
    temperature: float = 1.0  # sampling temperature of the responses that get critiqued or compared
    max_new_tokens: int = 40
    eval_items: int = 200  # per eval set (the world's tiny sets hold 200): 100 left every rate ±0.03-0.05
    eval_system_prompt: str = "You are an assistant at the valley archive."
    # CPU intra-op threads while post-training. These models are too small to gain from a second thread, and on
    # a shared 2-core machine two threads measured 5-25x slower than one (oversubscription; BENCHMARKS.md).
    threads: int = 1
    seed: int = 0


@dataclass
class InterpConfig:
    """Sparse autoencoder on one model (the `interp` stage runs it on the largest ladder model)."""

    site: str = "resid_post.mid"  # <resid_pre|resid_post|attn_out|mlp_out|mlp_hidden>.<layer|-1|mid>
    arch: str = "topk"  # relu | topk | batchtopk | jumprelu
    k: int = 32
    width: int = 16  # d_sae = width x d_in
    l1_coeff: float = 5.0
    l0_coeff: float = 1e-3
    # 160k tokens keep the stage near 2 minutes on 2 busy cores for the tiny ladder (BENCHMARKS.md)
    tokens: int = 160_000  # SAE training tokens (the cache is re-read when it holds fewer)
    cache_tokens: int = 100_000  # activation rows cached to disk
    eval_rows: int = 64  # held-out sequences for FVU / L0 / CE recovered
    seq_len: int = 128
    batch_size: int = 2048
    lr: float = 0.0  # 0: ∝ 1/sqrt(latents), 2.35e-3 at 9,216 (interp.train.lr_for_width; measured in BENCHMARKS.md)
    cache_dtype: str = "fp32"  # fp32 | bf16
    memory_mb: int = 256  # one cache shard's size, the most the reader holds in memory
    dead_tokens: int = 100_000
    concept_rows: int = 128  # val sequences scored against the world's concept labels
    feature_rows: int = 128  # sequences the feature store reads
    seed: int = 0


@dataclass
class RSPConfig:
    """The `rsp` stage: which policy, how many items and which elicitations each capability eval runs."""

    policy: str = "default"  # a shipped policy name or a YAML file (scalelab.rsp.policy.load_policy)
    limit: int = 100  # items per capability eval (0: every item of the set)
    # elicitations run on every model; [] = those the policy requires. fine_tune runs only on the largest
    # ladder model (fine_tune_largest): it trains a model per assessment, the one cost that grows with the ladder
    elicitations: list[str] = field(default_factory=list)
    fine_tune_largest: bool = True
    posttrained: bool = True  # also assess every post-trained stage (posttrain/<stage>)
    safeguards: bool = True  # measure the required safeguards of a model whose determination needs them
    safeguards_limit: int = 0  # items per safeguard measurement (0: the SAFEGUARDS defaults)
    seed: int = 0


@dataclass
class RunConfig:
    """Everything `scalelab run` needs: the stages' configs plus the ladder of depths."""

    preset: str = "tiny"
    world: WorldConfig = field(default_factory=WorldConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evals: EvalConfig = field(default_factory=EvalConfig)
    ladder: list[int] = field(default_factory=lambda: [2, 3, 4])
    corpus: str = "world"  # "world", a local file/dir of .txt/.jsonl/.parquet, or "hf:<datasets name>"
    skip_stages: list[str] = field(default_factory=list)  # later stages (pipeline.LATER_STAGES keys) to skip
    posttrain: PosttrainConfig = field(default_factory=PosttrainConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    interp: InterpConfig = field(default_factory=InterpConfig)
    rsp: RSPConfig = field(default_factory=RSPConfig)


def _smoke() -> RunConfig:
    cfg = RunConfig(preset="smoke")
    cfg.world = WorldConfig(
        n_people=60, n_towns=12, n_creatures=12, n_tools=12, n_compounds=6, n_reagents=10,
        n_docs=1500, eval_items_per_set=40, arithmetic_max_digits=3, n_sft_dialogues=200,
    )
    cfg.tokenizer = TokenizerConfig(vocab_size=512)
    cfg.train = TrainConfig(
        seq_len=64, batch_size=8, lr=3e-3, tokens=40_000, eval_every=10, eval_tokens=4096,
        ckpt_every=20, log_every=5, progress=False,
    )
    cfg.evals = EvalConfig(max_items=24, batch_size=24)
    cfg.ladder = [1, 2, 3]
    cfg.model = ModelConfig(aspect_ratio=32, head_dim=16)
    # seconds, not science: a 0.25 tokens-per-parameter prior puts the budgets where the smoke corpus
    # (~1e5 tokens) can feed them, and few eval items keep the 14 sweep runs' scoring short
    cfg.scaling = ScalingConfig(depths=[1, 2, 3, 4, 5], min_tokens=1024, min_steps=6, tokens_per_param_prior=0.25,
                                budget_spacing=1.5, n_bootstrap=10, eval_items=12, latency_new_tokens=8)
    cfg.interp = InterpConfig(width=8, k=16, tokens=40_000, cache_tokens=20_000, eval_rows=16, seq_len=64,
                              batch_size=512, dead_tokens=20_000, concept_rows=32, feature_rows=32)
    cfg.posttrain = PosttrainConfig(sft_epochs=1.0, sl_cai_prompts=24, rl_cai_prompts=32, character_prompts=24,
                                    eval_items=16, max_new_tokens=24, batch_size=8)
    # seconds, not science: 12 items per set, the fine-tune elicitation on the largest rung only, no
    # safeguards measurement (they train a probe per model that needs them)
    cfg.rsp = RSPConfig(limit=12, elicitations=["zero_shot", "fine_tune"], safeguards=False)
    return cfg


def _tiny() -> RunConfig:
    cfg = RunConfig(preset="tiny")
    cfg.world = WorldConfig()
    cfg.tokenizer = TokenizerConfig(vocab_size=2048)
    cfg.train = TrainConfig(seq_len=256, batch_size=16, tokens_per_param=8.0, max_tokens=1_200_000)
    cfg.ladder = [2, 3, 4, 5]
    # A narrower family (16 per layer) puts sizes around the prior optimum at budgets a 2-core machine can
    # afford; two sizes on each side of it; budgets x1.5 apart and a 10 tokens/param prior keep the sweep
    # (12 fitted + 2 hold-out runs) inside 6 minutes. Batch 2 x 256 tokens: these models are step-limited
    # (d3 on 393k tokens: val 3.12 at batch 16, 1.98 at 4, 1.81 at 2, lr 0.006-0.015 all within 0.01), and
    # at batch 16 the short runs' losses bent the fit (hold-out errors +8.5%/+15.9%; +1.7%/-1.2% at batch 2).
    # Two runs at once with one thread each (workers=0): a model this small cannot keep two cores busy.
    cfg.scaling = ScalingConfig(aspect_ratio=16, head_dim=16, min_each_side=2, budget_spacing=1.5,
                                tokens_per_param_prior=10.0, batch_size=2, workers=0)
    # d4: the best fact recall of the tiny ladder at about half d5's cost per step (3-minute budget)
    cfg.posttrain = PosttrainConfig(depth=4)
    # 8 assessments (4 rungs + 4 post-trained stages) inside the stage's 90 s budget: zero-shot at 100 items
    # measured 5-9 s of CPU on tiny d2 (a first call pays Inspect's warm-up), 16.7 s with best-of-n, so that
    # is left out here (add it with rsp.elicitations; it lifts free-form recall most); few-shot measured no
    # stronger than zero-shot on tiny-world models; jailbreaks apply only to harmful_compliance (no threshold's)
    cfg.rsp = RSPConfig(elicitations=["zero_shot", "fine_tune"])
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


PRESETS: dict[str, typing.Callable[[], RunConfig]] = {"smoke": _smoke, "tiny": _tiny, "gpu": _gpu}


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


def _field_types(obj: Any) -> dict[str, Any]:
    return typing.get_type_hints(type(obj))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Turn a CLI string or YAML scalar into the field's declared type, or say what was expected."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    try:
        if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
            if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
                return None
            inner = next(a for a in args if a is not type(None))
            return _coerce(value, inner, key)
        if origin is list:
            if isinstance(value, str):
                value = yaml.safe_load(value) if value.strip().startswith("[") else value.split(",")
            return [_coerce(v, args[0], key) for v in value]
        if origin is dict:
            if isinstance(value, str):
                value = yaml.safe_load(value)
            if not isinstance(value, dict):
                raise TypeError
            return {str(k): _coerce(v, args[1], key) for k, v in value.items()}
        if tp is bool:
            if isinstance(value, bool):
                return value
            s = str(value).lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise TypeError
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise TypeError
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        if tp is float:
            return float(value)
        if tp is str:
            return str(value)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{key}={value!r} is not a valid {getattr(tp, '__name__', tp)}") from err
    return value


def set_key(cfg: RunConfig, dotted: str, value: Any) -> None:
    """Set `section.field` (or a top-level field) on cfg; unknown keys list the valid ones."""
    parts = dotted.split(".")
    obj: Any = cfg
    for i, part in enumerate(parts):
        types = _field_types(obj)
        if part not in types:
            prefix = ".".join(parts[:i])
            valid = ", ".join(f"{prefix + '.' if prefix else ''}{k}" for k in types)
            raise ConfigError(f"unknown config key {dotted!r}; valid keys here: {valid}")
        if i == len(parts) - 1:
            current = getattr(obj, part)
            if dataclasses.is_dataclass(current):
                if not isinstance(value, dict):
                    raise ConfigError(f"{dotted} is a section; give a mapping or set {dotted}.<field>")
                for k, v in value.items():
                    set_key(cfg, f"{dotted}.{k}", v)
            else:
                setattr(obj, part, _coerce(value, types[part], dotted))
        else:
            obj = getattr(obj, part)
            if not dataclasses.is_dataclass(obj):
                raise ConfigError(f"{'.'.join(parts[: i + 1])} is not a section; cannot set {dotted}")


def apply_overrides(cfg: RunConfig, overrides: list[str] | None = None, yaml_file: Path | None = None) -> RunConfig:
    """Apply a YAML file of (nested) keys, then `key=value` strings, then re-derive shared fields."""
    if yaml_file is not None:
        path = Path(yaml_file)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping of keys, got {type(data).__name__}")
        data.pop("preset", None)
        for k, v in data.items():
            set_key(cfg, k, v)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. train.lr=1e-3)")
        k, v = item.split("=", 1)
        set_key(cfg, k.strip(), yaml.safe_load(v) if v.strip() else v)
    sync_derived(cfg)
    return cfg


def load_config(preset_name: str = "tiny", overrides: list[str] | None = None,
                yaml_file: Path | None = None) -> RunConfig:
    """A preset with a YAML file and command-line overrides applied (in that order)."""
    if yaml_file is not None:
        path = Path(yaml_file)
        if path.is_file():
            head = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if isinstance(head, dict) and "preset" in head and preset_name == "tiny":
                preset_name = str(head["preset"])
    return apply_overrides(preset(preset_name), overrides, yaml_file)


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def config_hash(*parts: Any) -> str:
    """A short stable hash of configs (dataclasses or JSON-able values): the skip key of a stage."""
    blob = json.dumps(
        [dataclasses.asdict(p) if dataclasses.is_dataclass(p) else p for p in parts],
        sort_keys=True, default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
