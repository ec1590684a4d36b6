"""The reasoning training steps by name, each a function of (LM, task, config, seed) that trains the LM in place.

`sft` (the world's traces), `star` (own verified samples) and `grpo` (checker-rewarded policy gradient) run in
the order `reasoning.steps` lists, each on the previous step's model; `sft-direct` is the direct-answer baseline
(SFT on the answer line alone). Each returns its statistics with `trained_tokens` and `sampled_tokens` (what
its FLOPs are counted from, `reasoning.compute`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from scalelab.errors import InputError
from scalelab.model.lm import LM
from scalelab.reasoning.config import ReasoningConfig
from scalelab.reasoning.grpo import run_grpo
from scalelab.reasoning.sft import run_sft
from scalelab.reasoning.star import run_star
from scalelab.reasoning.tasks import Task

StepFn = Callable[[LM, Task, ReasoningConfig, int, bool], dict[str, Any]]
DIRECT = "sft-direct"


def _sft(lm: LM, task: Task, cfg: ReasoningConfig, seed: int, progress: bool) -> dict[str, Any]:
    res = run_sft(lm, task, cfg.sft, max_len=cfg.max_len, seed=seed, progress=progress)
    return {**res, "trained_tokens": res["tokens"] * cfg.sft.epochs, "sampled_tokens": 0}


def _sft_direct(lm: LM, task: Task, cfg: ReasoningConfig, seed: int, progress: bool) -> dict[str, Any]:
    return _sft(lm, task, dataclasses.replace(cfg, sft=dataclasses.replace(cfg.sft, trace="direct")), seed, progress)


def _star(lm: LM, task: Task, cfg: ReasoningConfig, seed: int, progress: bool) -> dict[str, Any]:
    res = run_star(lm, task, cfg.star, max_new_tokens=cfg.max_new_tokens, max_len=cfg.max_len, seed=seed,
                   batch_size=cfg.eval.batch_size, progress=progress)
    return {**res, "trained_tokens": res["trained_tokens"] * cfg.star.epochs}


def _grpo(lm: LM, task: Task, cfg: ReasoningConfig, seed: int, progress: bool) -> dict[str, Any]:
    return run_grpo(lm, task, cfg.grpo, max_new_tokens=cfg.max_new_tokens, max_len=cfg.max_len, seed=seed,
                    batch_size=cfg.eval.batch_size, progress=progress)


STEPS: dict[str, StepFn] = {"sft": _sft, "star": _star, "grpo": _grpo, DIRECT: _sft_direct}


def step_config(cfg: ReasoningConfig, step: str) -> Any:
    """The part of the config a step's result depends on (its artifact's identity, with the task's dials)."""
    section = {"sft": cfg.sft, DIRECT: dataclasses.replace(cfg.sft, trace="direct"), "star": cfg.star,
               "grpo": cfg.grpo}
    if step not in section:
        raise InputError(f"unknown reasoning step {step!r}; steps: {', '.join(s for s in STEPS if s != DIRECT)}")
    return section[step]
