"""Learning rate: the width-scaled peak rate and its warmup + cosine or WSD schedule.

The schedule is a pure function of the step, so a checkpoint's "scheduler state" is the step it
was taken at and a resumed run continues on exactly the same curve.

Width scaling (`train.lr_scaling`), with `ref = train.lr_ref_width`:
  - "sqrt_width": lr · sqrt(ref / d_model). nanochat scales its AdamW learning rates by
    (d_model / 768)^-0.5 the same way; it is the gentler of the two common rules and is what the
    `tiny` ladder uses so one base rate serves depths 2..5.
  - "width": lr · ref / d_model, the μP rule for Adam on hidden matrices (Yang et al., 2022,
    "Tensor Programs V"), applied here to every parameter group.
  - "none": lr as given.
"""

from __future__ import annotations

import math

from scalelab.config import ConfigError
from scalelab.train.config import TrainConfig

LR_SCALINGS = ("sqrt_width", "width", "none")
SCHEDULES = ("cosine", "wsd")


def peak_lr(cfg: TrainConfig, d_model: int) -> float:
    """The base learning rate scaled to a model of width `d_model` per `cfg.lr_scaling`."""
    if cfg.lr_scaling == "sqrt_width":
        return cfg.lr * math.sqrt(cfg.lr_ref_width / d_model)
    if cfg.lr_scaling == "width":
        return cfg.lr * cfg.lr_ref_width / d_model
    if cfg.lr_scaling == "none":
        return cfg.lr
    raise ConfigError(f"train.lr_scaling={cfg.lr_scaling!r} is unknown; use one of {', '.join(LR_SCALINGS)}")


def lr_multiplier(step: int, total_steps: int, cfg: TrainConfig) -> float:
    """Factor on the peak lr for optimiser step `step` (0-based) of `total_steps`."""
    if cfg.schedule not in SCHEDULES:
        raise ConfigError(f"train.schedule={cfg.schedule!r} is unknown; use one of {', '.join(SCHEDULES)}")
    warmup = max(1, round(cfg.warmup_frac * total_steps))
    if step < warmup:
        return (step + 1) / warmup
    floor = cfg.min_lr_frac
    if cfg.schedule == "cosine":
        progress = (step - warmup) / max(1, total_steps - warmup - 1)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    decay = max(1, round(cfg.decay_frac * total_steps))
    decay_start = total_steps - decay
    if step < decay_start:
        return 1.0
    progress = (step - decay_start + 1) / decay
    return 1.0 - (1.0 - floor) * min(1.0, progress)
