"""The verifiable reasoning tasks, by name: arithmetic with a scratchpad, multi-hop questions, Countdown."""

from __future__ import annotations

from pathlib import Path

from scalelab.errors import InputError
from scalelab.reasoning.config import TaskConfig
from scalelab.reasoning.tasks.arithmetic import Arithmetic
from scalelab.reasoning.tasks.base import CORRECT, MALFORMED, WRONG, Problem, Task, answer_of
from scalelab.reasoning.tasks.countdown import Countdown
from scalelab.reasoning.tasks.multihop import MultiHop
from scalelab.world.reader import WorldDir

TASK_NAMES = ("arithmetic", "multihop", "countdown")

__all__ = ["CORRECT", "MALFORMED", "TASK_NAMES", "WRONG", "Problem", "Task", "answer_of", "make_task"]


def make_task(name: str, cfg: TaskConfig | None = None, world_dir: Path | None = None) -> Task:
    """The named task with `cfg`'s difficulties; multihop reads the world's facts from `world_dir`."""
    cfg = cfg or TaskConfig()
    if name == "arithmetic":
        return Arithmetic(tuple(cfg.arithmetic_digits), cfg.arithmetic_digits_harder, tuple(cfg.arithmetic_ops))
    if name == "countdown":
        return Countdown(tuple(cfg.countdown_numbers), cfg.countdown_numbers_harder, cfg.countdown_max_number,
                         cfg.countdown_max_target)
    if name == "multihop":
        if world_dir is None:
            raise InputError("the multihop task reads the world's facts; pass --world (a world directory)")
        return MultiHop(WorldDir(world_dir).world(), tuple(cfg.multihop_hops), cfg.multihop_hops_harder,
                        cfg.multihop_top_entities)
    raise InputError(f"unknown reasoning task {name!r}; tasks: {', '.join(TASK_NAMES)}")
