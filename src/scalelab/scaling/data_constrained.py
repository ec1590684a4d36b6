"""Data-constrained scaling (Muennighoff et al. 2023): U unique tokens repeated for e epochs vs as many fresh ones.

For every epoch count e of `DataConstrainedConfig.epochs`, one model of a fixed size trains on the first U
tokens of the world's training split for e passes (`rep-e{e}`), and another, at the same compute, on the first
e·U tokens once (`fresh-e{e}`); at e = 1 the two are one run (`e1`). Each is a `train.pretrain` run on its own
token-budget shards (`scaling.token_budget`), scored by the base evals (loss on the shared validation split,
fact recall against its subject-swapped control: the knowledge gap), as skippable artifacts under
`RUN/scaling/data_constrained/`. The effective-data law is then fitted (`scaling.effective_data`): R* with a
bootstrap interval, beside the paper's ≈ 15, and the plots of their Figure 3.

Token accounting is in the loader's units: training windows start at a document's BOS, so a pass over a slice
serves somewhat more tokens than it holds (a cut document is read again from its start). An epoch is one
pass of the loader over the slice's windows, a fresh run's slice holds enough windows that it never wraps, and
the law's U and D count the tokens served per pass (the unique tokens held are reported beside).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from scalelab import artifacts
from scalelab.artifacts import is_done
from scalelab.config import config_hash, to_dict
from scalelab.data.loader import aligned_starts, read_index
from scalelab.errors import InputError
from scalelab.model.config import ModelConfig
from scalelab.scaling.constrained_plots import plot_data_constrained
from scalelab.scaling.data_config import DataConstrainedConfig
from scalelab.scaling.effective_data import fit_effective_data
from scalelab.scaling.sweep import eval_config, evaluate_sweep_run, in_workers, run_train_config, sweep_workers
from scalelab.scaling.token_budget import train_stream, whole_prefix, write_shards
from scalelab.stage import Context
from scalelab.train.loop import pretrain

if TYPE_CHECKING:
    from scalelab.presets import RunConfig

FIT = "fit.json"


@dataclass(frozen=True)
class Slice:
    """A training slice: the whole documents of the first `tokens` tokens; `windows` loader windows in it."""

    tokens: int
    windows: int

    @property
    def name(self) -> str:
        return f"t{self.tokens}"


@dataclass(frozen=True)
class DCRun:
    """One run: `steps` optimiser steps on `slice_` (so `epochs` passes over it)."""

    name: str
    arm: str  # "repeated", "fresh", or "both" (e = 1)
    epochs: float
    slice_: Slice
    steps: int


def model_config(cfg: RunConfig, depth: int) -> ModelConfig:
    return dataclasses.replace(cfg.model, depth=depth)


def batch_size(cfg: RunConfig, dcfg: DataConstrainedConfig) -> int:
    return dcfg.batch_size or cfg.scaling.batch_size or cfg.train.batch_size


def _windows(stream: np.ndarray, bos: int, seq_len: int) -> np.ndarray:
    return aligned_starts(np.flatnonzero(stream == bos), len(stream), seq_len + 1)


def plan(stream: np.ndarray, bos: int, seq_len: int, batch: int, epochs: list[float],
         unique: int) -> tuple[list[DCRun], Slice]:
    """The runs for unique-token budget `unique` (0: the largest whose fresh runs fit the stream)."""
    if not epochs or min(epochs) < 1:
        raise InputError(f"data_constrained.epochs={epochs}: every epoch count must be >= 1")
    starts = _windows(stream, bos, seq_len)

    def windows_needed(u: int) -> int:  # by the largest fresh run on a budget of u unique tokens
        return max(1, round(max(epochs) * (len(_windows(whole_prefix(stream, u, bos), bos, seq_len)) // batch))) * batch

    if unique <= 0:  # the largest U whose largest fresh run still fits the split
        unique = int(len(stream) / max(epochs))
        while unique > seq_len and windows_needed(unique) > len(starts):
            unique = int(unique * 0.95)
    base = whole_prefix(stream, unique, bos)
    n_base = len(_windows(base, bos, seq_len))
    per_epoch = n_base // batch
    if per_epoch < 1:
        raise InputError(f"a unique-token budget of {unique} holds {n_base} windows of {seq_len + 1} tokens, fewer "
                         f"than one batch of {batch}; raise data_constrained.unique_tokens or lower its batch_size")
    u = Slice(len(base), n_base)
    runs = []
    for e in sorted(set(epochs)):
        steps = max(1, round(e * per_epoch))
        if e == 1:
            runs.append(DCRun("e1", "both", 1.0, u, steps))
            continue
        runs.append(DCRun(f"rep-e{e:g}", "repeated", float(e), u, steps))
        need = steps * batch
        if need > len(starts):
            raise InputError(f"the fresh run at {e:g} epochs needs {need} windows but the training split has "
                             f"{len(starts)}; lower data_constrained.unique_tokens (0 picks the largest that fits) "
                             "or build a larger world (world.n_docs)")
        end = int(starts[need - 1]) + seq_len + 1
        later = np.flatnonzero(stream[end:] == bos)
        cut = end + int(later[0]) if len(later) else len(stream)
        fresh = stream[:cut]
        runs.append(DCRun(f"fresh-e{e:g}", "fresh", float(e), Slice(len(fresh), len(_windows(fresh, bos, seq_len))),
                          steps))
    return runs, u


def slice_dir(ctx: Context, s: Slice) -> Path:
    return ctx.layout.data_constrained / "slices" / s.name


def run_dir(ctx: Context, name: str) -> Path:
    return ctx.layout.data_constrained / "runs" / name


def build_slice(ctx: Context, s: Slice) -> Path:
    out = slice_dir(ctx, s)

    def build(d: Path) -> dict[str, Any]:
        index = read_index(ctx.layout.shards)
        write_shards(ctx.layout.shards, d, [train_stream(ctx.layout.shards)[: s.tokens]])
        return {"tokens": s.tokens, "windows": s.windows, "bos_id": index["bos_id"]}

    ctx.step(f"data-constrained:slice:{s.name}", "shards", out, {"tokens": s.tokens}, [ctx.layout.shards], build)
    return out


def _run_step(ctx: Context, run: DCRun) -> tuple[str, Path, dict[str, Any], list[Path], Any]:
    """(step name, folder, identity, parents, build) of one run's `Context.step`."""
    cfg: RunConfig = ctx.cfg
    dcfg = cfg.reasoning.data_constrained
    depth = dcfg.depth or min(cfg.ladder)
    batch = batch_size(cfg, dcfg)
    model_cfg = model_config(cfg, depth)
    train_cfg = run_train_config(cfg, run.steps * batch * cfg.train.seq_len, batch)
    shards = slice_dir(ctx, run.slice_)
    identity = {"model": to_dict(model_cfg), "train": {k: v for k, v in to_dict(train_cfg).items()
                                                       if k not in ("progress", "log_every")},
                "slice": run.slice_.tokens}

    def build(d: Path) -> dict[str, Any]:
        return pretrain(model_cfg, train_cfg, shards, d, tokenizer_dir=ctx.layout.tokenizer, resume=True,
                        name=run.name)

    return f"data-constrained:{run.name}", run_dir(ctx, run.name), identity, [shards, ctx.layout.tokenizer], build


def train_dc_run(ctx: Context, run: DCRun) -> dict[str, Any]:
    """Train one run as a skippable artifact (module level: `in_workers` pickles it)."""
    name, out, identity, parents, build = _run_step(ctx, run)
    return ctx.step(name, "model", out, identity, parents, build)


def dc_run_done(ctx: Context, run: DCRun) -> bool:
    _, out, identity, parents, _ = _run_step(ctx, run)
    return is_done(out, "model", config_hash(identity), [str(Path(p).resolve()) for p in parents])


def train_all(ctx: Context, jobs: list[Any], fn: Any, workers: int, desc: str, done: Any = None) -> None:
    """Every job through `fn(ctx, job)`: side by side in `workers` processes, else one after another. Jobs
    `done(ctx, job)` calls finished are left to the caller's own (skipping) pass: starting a process costs
    seconds."""
    jobs = [j for j in jobs if done is None or not done(ctx, j)]
    if workers > 1 and len(jobs) > 1:
        ctx.log(f"[{desc}] training {len(jobs)} runs in {min(workers, len(jobs))} processes")
        in_workers(ctx, fn, jobs, min(workers, len(jobs)))
        return
    for job in tqdm(jobs, desc=desc, unit="run", disable=not ctx.progress):
        fn(ctx, job)


def _scores(evals: dict[str, Any] | None) -> dict[str, Any]:
    evals = evals or {}
    return {"knowledge_gap": evals.get("knowledge_gap"), "fact_recall": evals.get("fact_recall")}


def run_data_constrained(ctx: Context, *, with_evals: bool = True) -> dict[str, Any]:
    """The experiment on the run folder's shards (see the module docstring); the summary section."""
    cfg: RunConfig = ctx.cfg
    dcfg = cfg.reasoning.data_constrained
    t0 = time.perf_counter()
    out = ctx.layout.data_constrained
    out.mkdir(parents=True, exist_ok=True)
    index = read_index(ctx.layout.shards)
    batch, seq_len = batch_size(cfg, dcfg), cfg.train.seq_len
    runs, unique = plan(train_stream(ctx.layout.shards), int(index["bos_id"]), seq_len, batch, list(dcfg.epochs),
                        dcfg.unique_tokens)
    for s in {r.slice_ for r in runs}:
        build_slice(ctx, s)
    workers = sweep_workers(dcfg.workers, cfg.train.device, len(runs))
    train_all(ctx, sorted(runs, key=lambda r: r.steps, reverse=True), train_dc_run, workers, "data-constrained",
              dc_run_done)
    ecfg = dataclasses.replace(eval_config(cfg), max_items=dcfg.eval_items or cfg.evals.max_items)
    records = []
    for r in runs:
        res = train_dc_run(ctx, r)  # finished: skipped, its result returned
        evals = (evaluate_sweep_run(ctx, f"dc-{r.name}", run_dir(ctx, r.name), out / "evals" / r.name, ecfg)
                 if with_evals else None)
        records.append({"name": r.name, "arm": r.arm, "epochs": r.epochs, "slice_tokens": r.slice_.tokens,
                         "tokens": res["tokens"], "loss": res["final_val_loss"], "params": res["params"],
                         "train_flops": res["train_flops"], **_scores(evals)})
    served_u = next(r["tokens"] / r["epochs"] for r in records if r["arm"] in ("both", "repeated"))
    fresh = [{"tokens": r["tokens"], "loss": r["loss"]} for r in records if r["arm"] in ("both", "fresh")]
    repeated = [{"unique": served_u, "epochs": r["epochs"], "loss": r["loss"]} for r in records
                if r["arm"] == "repeated"]
    fit = fit_effective_data(fresh, repeated, dcfg.n_bootstrap, seed=cfg.train.seed) if repeated else None
    epochs: dict[str, Any] = {}
    for e in sorted({r["epochs"] for r in records}):
        rep = next(r for r in records if r["epochs"] == e and r["arm"] in ("both", "repeated"))
        new = next(r for r in records if r["epochs"] == e and r["arm"] in ("both", "fresh"))
        epochs[f"{e:g}"] = {"loss": rep["loss"], "knowledge_gap": rep["knowledge_gap"],
                            "fact_recall": rep["fact_recall"], "fresh_loss": new["loss"],
                            "fresh_knowledge_gap": new["knowledge_gap"], "fresh_fact_recall": new["fact_recall"],
                            "loss_diff_pct": 100 * (rep["loss"] - new["loss"]) / new["loss"],
                            "tokens": rep["tokens"]}
    result = {"depth": dcfg.depth or min(cfg.ladder), "params": records[0]["params"] if records else None,
              "unique_tokens": unique.tokens, "unique_tokens_served_per_epoch": served_u, "batch_size": batch,
              "seq_len": seq_len, "epochs": epochs, "runs": records, "fit": fit,
              "r_star": fit["r_star"] if fit else None, "r_star_ci": fit["r_star_ci"] if fit else None,
              "config": to_dict(dcfg)}
    png = plot_data_constrained(result, out / "data_constrained.png")
    result["plots"] = [ctx.layout.relative(png)] if png is not None else []
    result["seconds"] = round(time.perf_counter() - t0, 1)
    artifacts.atomic_write_json(out / FIT, result)
    return result


def knee(result: dict[str, Any], tolerance_pct: float = 1.0) -> float | None:
    """The largest epoch count whose repeated loss is within `tolerance_pct` of fresh data's (None: not even 1)."""
    ok = [float(e) for e, v in result["epochs"].items() if v["loss_diff_pct"] <= tolerance_pct]
    return max(ok) if ok else None
