"""How long the reasoning stage really takes, read from its artifacts' own records.

A resumed run skips every finished step, so the wall clock of the call that resumed it measures the skipping (a
few seconds), not the stage. Each step's meta.json records the seconds its build took (`stage_seconds`) and when
it was written (`created`, to the second; the file's own modification time is finer, but a copied run folder
resets it, so a step counts as made earlier when either says so); `TimedContext` notes both for every step the
stage passes through, and `timing` adds the recorded seconds of the steps an earlier run made to this run's wall
clock. Steps are counted once per output
folder and only at the outermost level (a step built inside another's build is inside its seconds), and steps
trained side by side in worker processes are read back when the parent collects their results.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from scalelab.artifacts import META, read_meta
from scalelab.stage import Context


@dataclasses.dataclass
class TimedContext(Context):
    """A `Context` that records, per output folder, each step's recorded seconds and whether it predates `since`
    (a Unix time: the start of this run of the stage)."""

    since: float = 0.0
    steps: dict[str, tuple[float, bool]] = dataclasses.field(default_factory=dict)
    depth: int = 0

    @classmethod
    def around(cls, ctx: Context, since: float) -> TimedContext:
        """The same run (config, layout, registry, log, results) seen through a recording context."""
        fields = {f.name: getattr(ctx, f.name) for f in dataclasses.fields(ctx) if f.init}
        return cls(**fields, since=since)

    def hand_back(self, ctx: Context) -> None:
        """Copy the run's own fields back onto `ctx`, so what the steps changed through this view (a counter of
        steps built, say) is seen by whoever holds the original context."""
        for f in dataclasses.fields(ctx):
            if f.init:
                setattr(ctx, f.name, getattr(self, f.name))

    def step(self, name: str, kind: str, out_dir: Path, config: Any, parents: list[Path],
             build: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
        self.depth += 1
        try:
            result = super().step(name, kind, out_dir, config, parents, build)
        finally:
            self.depth -= 1
        if self.depth == 0:
            self.steps[str(Path(out_dir).resolve())] = (float(result.get("stage_seconds") or 0.0),
                                                        _made_before(Path(out_dir), self.since))
        return result


def _made_before(out_dir: Path, since: float) -> bool:
    """Whether the finished step in `out_dir` was written before `since` (see the module docstring)."""
    meta = out_dir / META
    return _created(read_meta(out_dir) or {}) < int(since) or (meta.is_file() and meta.stat().st_mtime < since)


def _created(meta: dict[str, Any]) -> float:
    """meta.json's `created` as a Unix time (written to the second); +inf when absent (counted as made now)."""
    try:
        return datetime.strptime(meta["created"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except (KeyError, TypeError, ValueError):
        return float("inf")


def timing(ctx: TimedContext, run_seconds: float) -> dict[str, Any]:
    """This run's wall clock, the steps it reused, and the stage's time with theirs added back (`seconds`)."""
    reused = [s for s, old in ctx.steps.values() if old]
    return {"seconds": round(run_seconds + sum(reused), 1), "run_seconds": round(run_seconds, 1),
            "steps": len(ctx.steps), "reused_steps": len(reused), "reused_step_seconds": round(sum(reused), 1)}
