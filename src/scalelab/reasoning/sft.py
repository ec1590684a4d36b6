"""Supervised fine-tuning on traces the world writes: worked steps, some with a mistake caught and redone, plus
verification examples.

Training problems come from the task's training split only, spread over its training difficulties. Each gets
one trace (`Task.trace`); a share `mistake_rate` of them makes one step wrong, writes `wait,` and redoes it,
as Ye et al. (2024, "Physics of Language Models 2.2") found such retry data raises accuracy. The mistaken step
is a training target too (they found masking it unnecessary). A share `verify_fraction` more asks the model
to check a proposed answer, right or planted wrong (`reasoning.verify`). With `trace: direct` every reply is
the answer line alone: the direct-answer baseline, on the same problems and steps.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from scalelab.errors import InputError
from scalelab.model.lm import LM
from scalelab.reasoning.config import SFTConfig
from scalelab.reasoning.rollout import reply_row, verify_question
from scalelab.reasoning.tasks import Task
from scalelab.reasoning.verify import verification_reply
from scalelab.train.finetune import OptimConfig, train_sft

TRACES = ("scratchpad", "direct")


def sft_pairs(task: Task, cfg: SFTConfig, seed: int) -> list[tuple[str, str]]:
    """(question, reply) pairs the world writes for SFT (see the module docstring)."""
    if cfg.trace not in TRACES:
        raise InputError(f"reasoning.sft.trace={cfg.trace!r}; choose one of {', '.join(TRACES)}")
    rng = random.Random(f"scalelab-reasoning-sft:{task.name}:{seed}")
    problems = task.mixed("train", cfg.problems, seed)
    if cfg.trace == "direct":
        return [(p.question, task.direct(p)) for p in problems]
    pairs = [(p.question, task.trace(p, rng, mistake=rng.random() < cfg.mistake_rate)) for p in problems]
    for p in problems[:round(cfg.verify_fraction * len(problems))]:
        proposed = task.wrong_answer(p, rng) if rng.random() < 0.5 else p.answer
        pairs.append((verify_question(p.question, proposed), verification_reply(task, p, proposed, rng)))
    rng.shuffle(pairs)
    return pairs


def fine_tune(lm: LM, pairs: Sequence[tuple[str, str]], *, lr: float, epochs: float, batch_size: int,
              max_len: int, seed: int, progress: bool = False) -> dict[str, Any]:
    """Train `lm` in place on (question, reply) pairs, loss on the replies; the loss curve's ends and size."""
    rows = [reply_row(lm, q, r, max_len) for q, r in pairs]
    losses = train_sft(lm.model, rows, lm.pad_id, OptimConfig(lr=lr, epochs=epochs, batch_size=batch_size,
                                                              seed=seed), progress)
    return {"examples": len(rows), "tokens": sum(len(ids) for ids, _ in rows), "steps": len(losses),
            "first_loss": losses[0], "last_loss": sum(losses[-5:]) / len(losses[-5:])}


def run_sft(lm: LM, task: Task, cfg: SFTConfig, *, max_len: int, seed: int, progress: bool = False
            ) -> dict[str, Any]:
    """SFT of `lm` in place on the task's traces; returns the data and loss statistics."""
    pairs = sft_pairs(task, cfg, seed)
    stats = fine_tune(lm, pairs, lr=cfg.lr, epochs=cfg.epochs, batch_size=cfg.batch_size, max_len=max_len,
                      seed=seed, progress=progress)
    return {**stats, "trace": cfg.trace, "problems": cfg.problems}
