"""The `scaling` stage of `scalelab run` (and of `scalelab scale`): sweep → fits → tiers → fit.json.

Order: plan the sweep from `cfg.scaling` and the training split's size; train and score every run
(`sweep.run_sweep`, each run skipped when finished); fit and validate (`analysis.analyse_sweep`); pick
the tiers, measure their generation speed; distil the large tier into the small tier's size; draw the
plots; write `DIR/scaling/fit.json` and return the `summary.json["scaling"]` section.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scalelab import artifacts
from scalelab.config import ConfigError, to_dict
from scalelab.layout import FINAL
from scalelab.scaling import plots
from scalelab.scaling.analysis import analyse_sweep, eval_scores
from scalelab.scaling.config import ScalingConfig
from scalelab.scaling.report import section_scaling
from scalelab.scaling.sweep import (
    evaluate_sweep_run,
    plan_for,
    run_identity,
    run_sweep,
    run_train_config,
    sweep_model,
)
from scalelab.scaling.tiers import measure_speed, pick_tiers, tier_row
from scalelab.stage import Context, Stage
from scalelab.train.loop import pretrain
from scalelab.train.step import Distillation

if TYPE_CHECKING:
    from scalelab.presets import RunConfig



def _tiers(ctx: Context, records: list[dict[str, Any]], scfg: ScalingConfig) -> list[dict[str, Any]]:
    rows = []
    for name, run in pick_tiers(records, scfg.tier_names):
        speed = measure_speed(Path(run["dir"]) / FINAL, scfg.latency_new_tokens)
        model_cfg = sweep_model(ctx.cfg, run["depth"])
        rows.append(tier_row(name, run, model_cfg, ctx.cfg.train.seq_len, speed, eval_scores(run.get("evals"))))
    return rows


def _distil(ctx: Context, records: list[dict[str, Any]], tiers: list[dict[str, Any]]) -> dict[str, Any]:
    """Train the small tier's size on its tokens against the large tier's logits; compare with scratch."""
    cfg: RunConfig = ctx.cfg
    scfg = cfg.scaling
    small, large = tiers[0], tiers[-1]
    small_run = next(r for r in records if r["name"] == small["run"])
    teacher_dir = Path(next(r for r in records if r["name"] == large["run"])["dir"])
    shape = (small_run["depth"], small_run["tokens"], small_run["batch_size"])
    distill = Distillation(teacher_dir / FINAL, scfg.distill_alpha, scfg.distill_temperature)
    name = f"distilled_{small_run['name']}"
    out_dir = ctx.layout.distilled(name)
    identity = {**run_identity(cfg, *shape), "teacher": large["run"], "alpha": distill.alpha,
                "temperature": distill.temperature}
    model_cfg = sweep_model(cfg, small_run["depth"])

    def build(d: Path) -> dict[str, Any]:
        return pretrain(model_cfg, run_train_config(cfg, *shape[1:]), ctx.layout.shards, d,
                        tokenizer_dir=ctx.layout.tokenizer, resume=True, name=name, distill=distill)

    result = ctx.step(f"scaling:{name}", "model", out_dir, identity,
                      [ctx.layout.shards, ctx.layout.tokenizer, teacher_dir], build)
    scores = eval_scores(evaluate_sweep_run(ctx, name, out_dir)) if cfg.corpus == "world" else {}
    speed = measure_speed(out_dir / FINAL, scfg.latency_new_tokens)
    return {"name": name, "student_tier": small["tier"], "teacher_tier": large["tier"], "teacher": large["run"],
            "alpha": distill.alpha, "temperature": distill.temperature, "params": result["params"],
            "tokens": result["tokens"], "val_loss": result["final_val_loss"], "evals": scores,
            "scratch_val_loss": small["val_loss"], "scratch_evals": small["evals"],
            "teacher_val_loss": large["val_loss"],
            "loss_gap_closed": _gap_closed(small["val_loss"], result["final_val_loss"], large["val_loss"]),
            **speed}


def _gap_closed(scratch: float, distilled: float, teacher: float) -> float | None:
    """Share of the small→large loss gap the distilled model closes (negative: it did worse than scratch)."""
    return None if scratch == teacher else (scratch - distilled) / (scratch - teacher)


def run_scaling(ctx: Context, summary: dict[str, Any]) -> dict[str, Any]:
    """The `scalelab run` stage: `scaling_stage`, except that a corpus too small to plan a sweep on skips it
    with the planner's reason (the rest of the pipeline stands); `scalelab scale` reports it as an error."""
    try:
        plan_for(ctx.cfg, int(summary["shards"]["train_tokens"]))
    except ConfigError as err:
        ctx.log(f"[scaling] skipped: {err}")
        return {"skipped": str(err)}
    return scaling_stage(ctx, summary)


def scaling_stage(ctx: Context, summary: dict[str, Any]) -> dict[str, Any]:
    """Sweep, fit, tiers: returns `summary.json["scaling"]`, writes `DIR/scaling/fit.json` and the plots."""
    cfg: RunConfig = ctx.cfg
    scfg = cfg.scaling
    out = ctx.layout.scaling
    out.mkdir(parents=True, exist_ok=True)
    plan = plan_for(cfg, int(summary["shards"]["train_tokens"]))
    artifacts.atomic_write_json(out / "plan.json", plan.to_dict())  # type: ignore[attr-defined]
    ctx.log(f"[scaling] {len(plan.runs)} runs ({len(plan.holdout_runs)} hold-out), {plan.total_flops:.3g} FLOPs")
    t0 = time.perf_counter()
    records = run_sweep(ctx, plan, with_evals=cfg.corpus == "world")
    sweep_seconds = round(time.perf_counter() - t0, 1)
    # what the sweep cost when each run was first computed (a rerun reuses runs and takes ~0 s)
    compute_seconds = round(sum(r["stage_seconds"] + (r["evals"] or {}).get("stage_seconds", 0.0)
                                for r in records), 1)
    floor = (summary.get("world") or {}).get("entropy_floor_nats_per_token")
    fit = analyse_sweep(records, entropy_floor=floor, param_kind=scfg.param_kind, vocab_size=cfg.model.vocab_size,
                        n_bootstrap=scfg.n_bootstrap, seed=cfg.train.seed)
    tiers = _tiers(ctx, records, scfg)
    distilled = _distil(ctx, records, tiers) if scfg.distill else None
    fit.update({"tiers": tiers, "distillation": distilled, "sweep_seconds": sweep_seconds,
                "sweep_compute_seconds": compute_seconds,
                "config": to_dict(scfg), "budgets": list(plan.budgets), "holdout_budget": plan.holdout_budget,
                "total_flops": plan.total_flops})
    pngs = [plots.plot_sweep_curves(fit, out / "sweep_curves.png", floor), plots.plot_isoflop(fit, out / "isoflop.png"),
            plots.plot_law(fit, out / "law.png"), plots.plot_frontier(fit, out / "frontier.png"),
            plots.plot_tiers(tiers, distilled, out / "tiers.png")]
    fit["plots"] = [ctx.layout.relative(p) for p in pngs if p is not None]
    artifacts.atomic_write_json(ctx.layout.fit, fit)
    keys = ("fit", "fit_other_param_kind", "entropy_floor", "E_minus_floor", "holdout",
            "holdout_mean_abs_error_pct", "holdout_max_abs_error_pct", "optimal_exponents", "tiers",
            "distillation", "sweep_seconds", "sweep_compute_seconds", "budgets", "holdout_budget", "total_flops",
            "plots", "param_kind", "excluded")
    return {**{k: fit[k] for k in keys}, "forecasts": _forecast_summary(fit), "fit_json": str(ctx.layout.fit),
            "stage_seconds": round(time.perf_counter() - t0, 1), "n_runs": len(records)}


def _forecast_summary(fit: dict[str, Any]) -> dict[str, Any]:
    """Per eval: predicted vs actual accuracy on each hold-out run (the fit.json checks, grouped)."""
    by_eval: dict[str, list[dict[str, Any]]] = {}
    for c in fit["forecasts"]["checks"]:
        by_eval.setdefault(c["eval"], []).append({k: v for k, v in c.items() if k != "eval"})
    return {"by_eval": by_eval, "skipped": fit["forecasts"]["skipped"], "level": fit["forecasts"]["level"],
            "mean_abs_error": fit["forecasts"]["mean_abs_error"]}


STAGE = Stage("scaling", run_scaling, section_scaling)
