"""What a stage of `scalelab run` is, and the skip-if-done rule every artifact goes through.

A `Stage` is a name (its section of `summary.json`, and what `skip_stages` names), a function from the run's
`Context` and the summary so far to its section, and a report section rendering it. Each package's
`stage.py` defines its stage; `pipeline.STAGES` lists them in order, and the run and the report both read that
one list, so adding a stage is one module and one line there.

Inside a stage, every artifact is made through `Context.step`: before building it, the step asks whether its
output folder already holds a finished artifact with the same config hash and parents (`artifacts.is_done`);
if so it is skipped and its recorded result returned, so a rerun after a kill resumes where it stopped. Every
step is recorded in the registry with what it consumed and produced.

A stage that reports its own wall time measures it with `Context.timed`: a rerun that skips every step would
otherwise report the second or two the skipping took in place of the time the work took.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalelab import artifacts
from scalelab.config import config_hash, to_dict
from scalelab.layout import RunLayout
from scalelab.registry import Registry

Summary = dict[str, Any]

STAGE_SECONDS = "stage_seconds.json"
"""in the run folder: each timed stage's wall time when it last did work (see `Context.timed`)."""


@dataclass
class StageClock:
    """A timed stage's seconds, set when its `Context.timed` block ends; `resumed` when every step was skipped
    and the seconds are the ones recorded when the work was done."""

    seconds: float = 0.0
    resumed: bool = False


@dataclass
class Context:
    """A run's config, its folder layout, its registry and its log; stages read and write through it."""

    cfg: Any  # scalelab.presets.RunConfig (typed loosely: this module sits below the stages' configs)
    layout: RunLayout
    registry: Registry
    log: Callable[[str], None] = print
    results: dict[str, Any] = field(default_factory=dict)
    built: int = 0
    """steps built (not skipped as done) by this context so far."""

    @property
    def progress(self) -> bool:
        """Whether long steps draw progress bars (off in tests and the smoke preset)."""
        train = getattr(self.cfg, "train", None)
        return bool(getattr(train, "progress", True))

    def step(self, name: str, kind: str, out_dir: Path, config: Any, parents: list[Path],
             build: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
        """Run `build(out_dir)` unless a finished artifact with this config and these parents is there.

        `build` returns a JSON-able result that is stored in meta.json, so a skipped step hands later steps
        the same result it would have computed.
        """
        chash = config_hash(config)
        parent_strs = [str(Path(p).resolve()) for p in parents]
        if artifacts.is_done(out_dir, kind, chash, parent_strs):
            self.log(f"[{name}] up to date, skipped ({out_dir})")
            return artifacts.read_meta(out_dir)["result"]  # type: ignore[index]
        # A different config or parents: the old payload is stale. Training keeps its own checkpoint
        # directory (it resumes from it only when the config matches, see train.checkpoint).
        if (out_dir / artifacts.META).exists():
            (out_dir / artifacts.META).unlink()
        self.log(f"[{name}] running → {out_dir}")
        t0 = time.perf_counter()
        cfg_json = config if isinstance(config, dict) else to_dict(config)
        with self.registry.run(name, {"config": cfg_json}) as run_id:
            for p in parents:
                self.registry.record_consumed(run_id, p)
            out_dir.mkdir(parents=True, exist_ok=True)
            result = build(out_dir)
            result = {**result, "stage_seconds": round(time.perf_counter() - t0, 2)}
            artifacts.write_meta(out_dir, kind, cfg_json, chash, parent_strs, result=result)
            self.registry.record_artifact(run_id, kind, out_dir, config_hash=chash, parents=parent_strs)
        self.built += 1
        self.log(f"[{name}] done in {result['stage_seconds']:.1f}s")
        return result

    @contextmanager
    def timed(self, stage: str) -> Iterator[StageClock]:
        """Time a stage's block truthfully across resumes. When a step inside it is built, the measured wall time
        is the stage's and is recorded in OUT/stage_seconds.json; when every step is skipped as done, the block
        did no work and the clock reads the recorded time instead (or, with none recorded, what it measured,
        which is then not recorded). A stage resumed midway counts only what it ran this time."""
        clock, built, t0 = StageClock(), self.built, time.perf_counter()
        yield clock
        clock.seconds = round(time.perf_counter() - t0, 2)
        path = self.layout.root / STAGE_SECONDS
        recorded = json.loads(path.read_text("utf-8")) if path.is_file() else {}
        if self.built > built:
            artifacts.atomic_write_json(path, {**recorded, stage: clock.seconds})
        elif stage in recorded:
            clock.seconds, clock.resumed = float(recorded[stage]), True

    @classmethod
    def standalone(cls, cfg: Any, out: Path, log: Callable[[str], None] = print) -> Context:
        """A context for one stage's command run on its own (`scalelab posttrain`, `scalelab scale`, ...): the
        same skip-if-done steps and registry, in `out`."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        return cls(cfg=cfg, layout=RunLayout(out), registry=Registry(RunLayout(out).registry), log=log)


@dataclass(frozen=True)
class Stage:
    """One stage of `scalelab run` (see the module docstring)."""

    name: str
    """its section of summary.json (unless `key` says otherwise) and its name in `skip_stages`."""
    run: Callable[[Context, Summary], dict[str, Any] | None]
    """(context, summary so far) → its section, or None when it has nothing to add (skipped, or it annotates
    an earlier section, as the base evals annotate each ladder model)."""
    report: Callable[[Summary, Path], str] | None = None
    """(summary, run folder) → its Markdown report section ("" when its section is absent)."""
    optional: bool = True
    """whether `skip_stages` may leave it out (the foundation stages may not: later ones read them)."""
    key: str = ""
    """the summary.json key of its section when it differs from `name`."""

    @property
    def section(self) -> str:
        return self.key or self.name


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with `threads` CPU threads (0: the count as it is), and restore the count after: a stage
    of small models can ask for one thread on a machine other jobs share without changing the stages after it."""
    import torch

    before = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
