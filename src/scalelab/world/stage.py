"""The `world` stage of `scalelab run`: the synthetic world, built once into RUN/world/."""

from __future__ import annotations

from typing import Any

from scalelab.stage import Context, Stage, Summary
from scalelab.world.build import build_world


def run_world(ctx: Context, summary: Summary) -> dict[str, Any] | None:
    """The world's statistics (`summary.json["world"]`); nothing when the run reads real text instead."""
    if ctx.cfg.corpus != "world":
        return None
    stats = ctx.step("world", "corpus", ctx.layout.world, ctx.cfg.world, [],
                     lambda d: build_world(ctx.cfg.world, d, progress=ctx.progress))
    return {k: v for k, v in stats.items() if k != "stage_seconds"}


STAGE = Stage("world", run_world, optional=False)
