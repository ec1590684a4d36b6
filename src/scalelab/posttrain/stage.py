"""The `posttrain` stage of `scalelab run`: one ladder model through SFT → SL-CAI → RL-CAI → character."""

from __future__ import annotations

import time
from typing import Any

from scalelab.config import ConfigError
from scalelab.layout import rung_name
from scalelab.posttrain.report import section_posttrain
from scalelab.posttrain.run import posttrain_summary, run_steps
from scalelab.stage import Context, Stage, Summary


def run_posttrain(ctx: Context, summary: Summary) -> dict[str, Any] | None:
    """Post-train `posttrain.depth` (0 = the largest rung); `summary.json["posttrain"]`."""
    cfg = ctx.cfg.posttrain
    if ctx.cfg.corpus != "world":
        ctx.log("[posttrain] skipped: it needs the world's dialogues and labelled evals (corpus=world)")
        return None
    depth = cfg.depth or max(ctx.cfg.ladder)
    if depth not in ctx.cfg.ladder:
        raise ConfigError(f"posttrain.depth={depth} is not on the ladder {ctx.cfg.ladder}; pick one of them or 0")
    t0 = time.perf_counter()
    results = run_steps(ctx, ctx.layout.model(rung_name(depth)), ctx.layout.world, cfg)
    return posttrain_summary(results, rung_name(depth), cfg, time.perf_counter() - t0)


STAGE = Stage("posttrain", run_posttrain, section_posttrain)
