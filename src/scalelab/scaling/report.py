"""The report's scaling section: the fitted law beside the entropy floor, hold-outs, forecasts, tiers, plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scalelab.report.render import table


def _ci(value: float, interval: list[float] | tuple[float, float] | None, digits: int = 3) -> str:
    if interval is None:
        return f"{value:.{digits}g}"
    return f"{value:.{digits}g} [{interval[0]:.{digits}g}, {interval[1]:.{digits}g}]"


def section_scaling(summary: dict[str, Any], out: Path) -> str:
    s = summary.get("scaling")
    if not s:
        return ""
    if "skipped" in s:
        return f"## Scaling laws\n\nNot run: {s['skipped']}"
    fit, iv = s["fit"], s["fit"]["intervals"]
    level = round(100 * fit["level"])
    lines = ["## Scaling laws", "",
             f"{s['n_runs']} sweep runs ({len(s['holdout'])} hold-out at ≥ 4× the largest fitted budget, kept out "
             f"of every fit), {s['total_flops']:.3g} FLOPs; the sweep's training and evals took "
             f"{s['sweep_compute_seconds']} s when computed ({s['sweep_seconds']} s in this call, which reuses "
             f"finished runs). N counts **{s['param_kind']}** parameters.", "",
             f"Chinchilla approach 3, L(N, D) = E + A/N^α + B/D^β ({level}% bootstrap intervals):", "",
             table(["E", "A", "B", "α", "β"], [[_ci(fit[k], iv[k]) for k in ("E", "A", "B", "alpha", "beta")]])]
    if s.get("entropy_floor") is not None:
        lines += ["", f"Fitted irreducible loss E = **{fit['E']:.4f}** against the world's exact entropy floor "
                      f"**{s['entropy_floor']:.4f}** nats/token (E − floor = {s['E_minus_floor']:+.4f}). "
                      "No published study could check its E against the truth."]
    other = s.get("fit_other_param_kind")
    if other:
        lines += ["", f"With {other['param_kind']} parameters instead: α = {other['alpha']:.3f}, "
                      f"β = {other['beta']:.3f}, E = {other['E']:.4f} (the choice of N moves the exponents, "
                      "Pearce & Song 2024)."]
    opt = s["optimal_exponents"]
    approach2 = (f"a = {_ci(opt['a'], opt['intervals']['a'])}, b = {_ci(opt['b'], opt['intervals']['b'])}"
                 if opt["a"] is not None else f"not fitted ({opt['approach2_error']})")
    lines += ["", f"Compute-optimal allocation N_opt ∝ C^a, D_opt ∝ C^b — approach 2 (IsoFLOP minima): "
                  f"{approach2}; approach 3: a = {_ci(opt['approach3_a'], opt['approach3_intervals']['a'])}, "
                  f"b = {_ci(opt['approach3_b'], opt['approach3_intervals']['b'])} "
                  "(Chinchilla: a ≈ b ≈ 0.5)."]
    rows = [[h["name"], h["params"], h["tokens"], f"{h['compute']:.3g}", h["predicted_loss"],
             f"[{h['interval'][0]:.3f}, {h['interval'][1]:.3f}]", h["actual_loss"], f"{h['error_pct']:+.2f}%"]
            for h in s["holdout"]]
    lines += ["", "### Hold-out validation", "",
              table(["run", "N", "D", "C", "predicted", "band", "measured", "error"], rows)]
    if s.get("holdout_mean_abs_error_pct") is not None:
        lines += ["", f"Mean |error| {s['holdout_mean_abs_error_pct']:.2f}%, max "
                      f"{s['holdout_max_abs_error_pct']:.2f}% (target ≤ 1%)."]
    fc = s["forecasts"]
    frows = [[name, c["run"], c["predicted"], f"[{c['interval'][0]:.3f}, {c['interval'][1]:.3f}]", c["actual"]]
             for name, checks in fc["by_eval"].items() for c in checks]
    if frows:
        lines += ["", "### Capability forecasts on the hold-outs", "",
                  f"Accuracy as a sigmoid of loss, at the law's predicted hold-out loss ({round(100 * fc['level'])}% "
                  f"intervals); mean |error| {fc['mean_abs_error']:.3f}.", "",
                  table(["eval", "run", "forecast", "interval", "measured"], frows)]
    if fc["skipped"]:
        lines += ["", "Not forecast: " + "; ".join(f"{k} ({v})" for k, v in fc["skipped"].items()) + "."]
    if s.get("tiers"):
        trows = [[t["tier"], t["run"], t["params"], t["val_loss"], t["evals"].get("fact_recall"),
                  t["inference_flops_per_token"], f"{t['latency_ms_per_token']:.2f}",
                  round(t["throughput_tokens_per_s"])] for t in s["tiers"]]
        lines += ["", "### Model family", "",
                  "Tiers from the compute-optimal frontier. Speed measured here with greedy generation "
                  "(latency: batch 1; throughput: a batch of streams), on a shared machine.", "",
                  table(["tier", "run", "params", "val loss", "fact recall", "FLOPs/token", "ms/token", "tok/s"],
                        trows)]
    d = s.get("distillation")
    if d:
        lines += ["", f"Distillation: the {d['teacher_tier']} tier ({d['teacher']}) distilled into the "
                      f"{d['student_tier']} tier's size on the same {d['tokens']:,} tokens (α = {d['alpha']}, "
                      f"T = {d['temperature']}): val loss **{d['val_loss']:.4f}** vs {d['scratch_val_loss']:.4f} "
                      f"from scratch (teacher {d['teacher_val_loss']:.4f})."]
    lines += [""] + [f"![{Path(p).stem}]({p})" for p in s.get("plots", [])]
    return "\n".join(lines)
