"""The config of one pretraining run: optimiser, schedule, token budget, precision and bookkeeping."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    """Optimiser, schedule, budget and bookkeeping of one pretraining run."""

    seq_len: int = 256
    batch_size: int = 16
    """sequences per optimiser step, summed over all processes."""
    lr: float = 3e-3
    lr_scaling: str = "sqrt_width"
    """lr = lr * sqrt(ref_width / d_model); "none" keeps lr as is."""
    lr_ref_width: int = 128
    min_lr_frac: float = 0.1
    warmup_frac: float = 0.05
    schedule: str = "cosine"
    """"cosine" or "wsd" (warmup-stable-decay)."""
    decay_frac: float = 0.2
    """WSD: fraction of steps in the final decay."""
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    tokens: int = 0
    """total training tokens; 0 means tokens_per_param * non-embedding params."""
    tokens_per_param: float = 4.0
    max_tokens: int = 0
    """cap on tokens (0: none) so the largest rung stays inside the time budget."""
    eval_every: int = 100
    eval_tokens: int = 32768
    ckpt_every: int = 200
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    """auto | cpu | cuda | cuda:N."""
    dtype: str = "auto"
    """auto | fp32 | bf16: auto is bf16 autocast on CUDA, and on a CPU whichever this host runs the model's matrix
    products faster in (measured once per host and shape set, `model.precision`)."""
    compile: bool = False
    progress: bool = True
