"""`scalelab run`: the ordered list of stages, run one after another into one run folder, then the report.

world → tokenizer → shards → ladder → evals are the foundation; scaling, interp, posttrain and rsp build on
it (skip any of them with `skip_stages`). Each stage is defined in its own package's `stage.py`
(`scalelab.stage.Stage`); the run and the report both read `STAGES`, so a stage added there runs and renders
in its place. Every artifact goes through `Context.step`, so a rerun after a kill resumes where it stopped.
Two runs writing into the same folder at once would overwrite each other's files, so a run holds a lock on
the folder (`RunLock`) and a second one is refused.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from scalelab import artifacts
from scalelab.computer import stage as computer_stage
from scalelab.config import ConfigError, to_dict
from scalelab.data import stage as data_stage
from scalelab.errors import MissingInput, UserError
from scalelab.evals import stage as evals_stage
from scalelab.interp import stage as interp_stage
from scalelab.layout import RunLayout
from scalelab.posttrain import stage as posttrain_stage
from scalelab.presets import RunConfig
from scalelab.reasoning import stage as reasoning_stage
from scalelab.registry import Registry
from scalelab.report.render import fmt, write_report
from scalelab.report.targets import ladder_targets, section_targets
from scalelab.rsp import stage as rsp_stage
from scalelab.scaling import stage as scaling_stage
from scalelab.stage import Context, Stage, Summary
from scalelab.train import stage as train_stage
from scalelab.world import stage as world_stage

STAGES: list[Stage] = [
    world_stage.STAGE,
    data_stage.TOKENIZER,
    data_stage.SHARDS,
    train_stage.STAGE,
    evals_stage.STAGE,
    scaling_stage.STAGE,
    interp_stage.STAGE,
    posttrain_stage.STAGE,
    reasoning_stage.STAGE,
    computer_stage.STAGE,
    rsp_stage.STAGE,
]
# The stages `scalelab scale` runs: the data the sweep trains on, then the sweep.
SCALE_STAGES = ("world", "tokenizer", "shards", "scaling")


class RunLocked(UserError):
    """Another `scalelab run` is writing into the same folder."""


class RunLock:
    """An exclusive lock on a run folder for as long as a run writes into it (released when the process ends,
    however it ends, because the kernel drops a dead process's `flock`)."""

    def __init__(self, layout: RunLayout) -> None:
        self.path = layout.lock
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunLocked(f"{self.path.parent} is in use by a running `scalelab run` (pid {holder}); wait for it "
                            "to finish, or pass another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def check_skips(cfg: RunConfig, stages: Sequence[Stage] = STAGES) -> None:
    """Every name in `skip_stages` is a stage that may be skipped, or a ConfigError listing those."""
    skippable = [s.name for s in stages if s.optional]
    unknown = sorted(set(cfg.skip_stages) - set(skippable))
    if unknown:
        raise ConfigError(f"skip_stages names unknown stages {unknown}; stages that may be skipped: "
                          f"{', '.join(skippable)}")


def section_overview(summary: Summary, out: Path) -> str:
    """The report's head: the corpus, its entropy floor, the tokenizer and shards, the wall clock."""
    lines = [f"# scalelab run — preset `{summary['preset']}`", ""]
    world = summary.get("world")
    if world:
        lines += [
            f"Corpus: the synthetic world ({fmt((world.get('n_docs') or {}).get('train'))} training documents, "
            f"{fmt(world.get('fact_bits'), 0)} bits of facts). "
            f"Its exact entropy floor is **{fmt(world.get('entropy_floor_nats_per_token'), 4)} nats/token** "
            "on the validation split under the trained tokenizer: the Bayes-optimal loss, which no model "
            "reading it can beat.",
        ]
    else:
        lines.append(f"Corpus: `{summary.get('corpus')}` (real text; no known entropy floor).")
    shards = summary.get("shards", {})
    lines += ["", f"Tokenizer: byte-level BPE, {summary.get('tokenizer', {}).get('vocab_size')} tokens. "
              f"Shards: {fmt(shards.get('train_tokens'))} train / {fmt(shards.get('val_tokens'))} val tokens.",
              "", f"Wall clock: {summary['wall_seconds']} s." if summary.get("wall_seconds") is not None
              else "Wall clock: the run is still going (this report is rewritten after each stage)."]
    return "\n".join(lines)


def report_sections(stages: Sequence[Stage] = STAGES) -> list[Callable[[Summary, Path], str]]:
    """The overview, each stage's section in stage order, then the targets, which read every stage's figures."""
    return [section_overview, *(s.report for s in stages if s.report is not None), section_targets]


def write_run_report(summary: Summary, root: Path, sections: Sequence[Callable[[Summary, Path], str]]) -> None:
    """`write_report`, with the ladder's targets in `summary["instrument_targets"]` so tools read the same rows
    the report shows (recomputed at every write: the later stages and the wall time fill rows in)."""
    targets = ladder_targets(summary)
    if targets:
        summary["instrument_targets"] = targets
    else:
        summary.pop("instrument_targets", None)
    write_report(summary, root, sections)


def rerender(out: Path) -> Summary:
    """`scalelab report`: rewrite a finished run's report.md, report.html and summary.json from its summary with
    the current sections, so a report gains what later code renders without retraining anything. Refused while
    a run writes into the folder (it rewrites the report itself)."""
    layout = RunLayout(Path(out))
    path = layout.summary
    if not path.exists():
        raise MissingInput(f"no summary.json in {layout.root}; pass the --out of a `scalelab run`")
    with RunLock(layout):
        summary: Summary = json.loads(path.read_text())
        write_run_report(summary, layout.root, report_sections())
    return summary


def run_all(cfg: RunConfig, out: Path, log: Callable[[str], None] = print,
            only: Sequence[str] | None = None) -> dict[str, Any]:
    """The stages in order (those named in `only`, when given, minus `skip_stages`); returns the summary written
    to OUT/summary.json. The report is rewritten after the foundation and after each later stage, so what has
    run stands even if a later stage fails."""
    check_skips(cfg)
    stages = [s for s in STAGES if (only is None or s.name in only)]
    layout = RunLayout(Path(out))
    with RunLock(layout):
        ctx = Context(cfg=cfg, layout=layout, registry=Registry(layout.registry), log=log)
        artifacts.atomic_write_json(layout.config, to_dict(cfg))
        t0 = time.perf_counter()
        summary: Summary = {"preset": cfg.preset, "corpus": cfg.corpus, "world": None}  # world: null on real text
        sections = report_sections(stages)
        for s in stages:
            if s.optional and s.name in cfg.skip_stages:
                ctx.log(f"[{s.name}] skipped (skip_stages)")
                continue
            section = s.run(ctx, summary)
            if section is not None:
                summary[s.section] = section
            if s.optional or s is stages[-1] or stages[stages.index(s) + 1].optional:
                write_run_report(summary, layout.root, sections)
        summary["wall_seconds"] = round(time.perf_counter() - t0, 1)
        write_run_report(summary, layout.root, sections)
    return summary


def clean(out: Path) -> None:
    """Remove a run folder (`scalelab run --fresh`); refused while another run holds its lock."""
    with RunLock(RunLayout(Path(out))):
        shutil.rmtree(out, ignore_errors=True)
