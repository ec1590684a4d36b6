"""STaR (Zelikman et al. 2022, "STaR: Bootstrapping Reasoning With Reasoning"): learn from one's own checked work.

Each iteration samples `samples` replies to fresh training problems, keeps the first reply the task's checker
accepts (rejection-sampling fine-tuning), and, with `rationalize`, asks each problem no sample solved once
more with its answer given as a hint, keeping a right reply as if it had been unhinted. The model is then
fine-tuned on everything kept so far: from the step's starting weights (`restart`, as the paper does, so
errors do not compound) or on from the previous iteration's.
"""

from __future__ import annotations

import copy
from typing import Any

from tqdm import tqdm

from scalelab.model.lm import LM
from scalelab.reasoning.config import StarConfig
from scalelab.reasoning.rollout import sample
from scalelab.reasoning.sft import fine_tune
from scalelab.reasoning.tasks import Task

HINT = " (The answer is {answer}.)"


def run_star(lm: LM, task: Task, cfg: StarConfig, *, max_new_tokens: int, max_len: int, seed: int,
             batch_size: int = 256, progress: bool = False) -> dict[str, Any]:
    """STaR iterations on `lm` in place; per iteration the solve rate, what was kept and the fine-tune's loss."""
    start = copy.deepcopy(lm.model.state_dict()) if cfg.restart else None
    kept: list[tuple[str, str]] = []
    history = []
    for it in tqdm(range(cfg.iterations), desc=f"star {task.name}", disable=not progress, leave=False):
        problems = task.mixed("train", cfg.problems, seed * 1000 + it + 1)
        got = sample(lm, [p.question for p in problems], cfg.samples, temperature=cfg.temperature,
                     max_new_tokens=max_new_tokens, seed=seed * 1000 + it, batch_size=batch_size)
        unsolved = []
        solved = 0
        for p, replies in zip(problems, got.texts, strict=True):
            good = next((r for r in replies if task.check(p, r)), None)
            if good is None:
                unsolved.append(p)
            else:
                solved += 1
                kept.append((p.question, good))
        rationalized = 0
        if cfg.rationalize and unsolved:
            hinted = sample(lm, [p.question + HINT.format(answer=p.answer) for p in unsolved], 1,
                            temperature=cfg.temperature, max_new_tokens=max_new_tokens, seed=seed * 1000 + it + 500,
                            batch_size=batch_size)
            for p, replies in zip(unsolved, hinted.texts, strict=True):
                if task.check(p, replies[0]):
                    kept.append((p.question, replies[0]))  # trained without the hint
                    rationalized += 1
        record: dict[str, Any] = {"iteration": it, "problems": len(problems), "solve_rate": solved / len(problems),
                                  "kept": solved, "rationalized": rationalized, "kept_total": len(kept),
                                  "sampled_tokens": got.tokens}
        if kept:
            if start is not None:
                lm.model.load_state_dict(start)
            record.update(fine_tune(lm, kept, lr=cfg.lr, epochs=cfg.epochs, batch_size=cfg.batch_size,
                                    max_len=max_len, seed=seed + it, progress=progress))
        history.append(record)
    return {"iterations": history, "kept": len(kept),
            "sampled_tokens": sum(h["sampled_tokens"] for h in history),
            "trained_tokens": sum(h.get("tokens", 0) for h in history)}
