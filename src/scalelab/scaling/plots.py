"""The scaling stage's PNG plots (matplotlib Agg): curves, IsoFLOP profiles, the law, the frontier, the tiers.

Each function takes the fit.json content (and the sweep's run directories where it needs training
curves), writes one PNG and returns its path, or None when there is nothing to draw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from scalelab.scaling.chinchilla import ChinchillaFit
from scalelab.scaling.isoflop import IsoFLOPFit
from scalelab.train.metrics import read_metrics

# Published compute-optimal exponents, drawn for comparison: N_opt ∝ C^a with a = β/(α+β).
PUBLISHED = {
    "Chinchilla approach 2 (a=0.50)": 0.50,
    "Chinchilla approach 3 (α=0.34, β=0.28)": 0.28 / (0.34 + 0.28),
    "Epoch 2024 (α=0.35, β=0.37)": 0.37 / (0.35 + 0.37),
}


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _colours(n: int) -> list[Any]:
    return [plt.get_cmap("viridis")(x) for x in np.linspace(0.0, 0.9, max(n, 1))]


def plot_sweep_curves(fit: dict[str, Any], out_png: Path, floor: float | None) -> Path | None:
    """Validation loss against tokens for every sweep run (hold-outs dashed), with the entropy floor."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    drawn = False
    budgets = sorted({r["budget"] for r in fit["runs"]})
    colour = dict(zip(budgets, _colours(len(budgets)), strict=True))
    for r in fit["runs"]:
        rows = read_metrics(Path(r["dir"]))
        per_step = r["tokens"] / max(1, r["steps"])
        val = [(row["step"] * per_step, row["val_loss"]) for row in rows if "val_loss" in row]
        train = [(row["tokens"], row["loss"]) for row in rows if "loss" in row and "tokens" in row]
        if not (val or train):
            continue
        drawn = True
        style = "--" if r["holdout"] else "-"
        if train:
            ax.plot(*zip(*train, strict=True), style, color=colour[r["budget"]], alpha=0.35, lw=0.8)
        if val:
            ax.plot(*zip(*val, strict=True), style, marker="o", ms=2, color=colour[r["budget"]], lw=1.2,
                    label=f"{r['name']}")
    if not drawn:
        plt.close(fig)
        return None
    if floor is not None:
        ax.axhline(floor, color="k", ls=":", lw=1, label=f"entropy floor {floor:.3f}")
    ax.set(xscale="log", xlabel="training tokens", ylabel="loss (nats/token)",
           title="Sweep training curves (train faint, val dots; hold-outs dashed)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=5.5, ncol=2)
    return _save(fig, out_png)


def plot_isoflop(fit: dict[str, Any], out_png: Path) -> Path:
    """Loss against N for each fitted budget, its parabola in log N and the vertex (approach 2)."""
    iso = IsoFLOPFit.from_dict(fit["isoflop"]) if fit.get("isoflop") else None  # type: ignore[attr-defined]
    kind = fit["param_kind"]
    key = "params" if kind == "total" else "non_embedding_params"
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    fitted = [r for r in fit["runs"] if not r["holdout"]]
    budgets = sorted({r["budget"] for r in fitted})
    for budget, c in zip(budgets, _colours(len(budgets)), strict=True):
        group = sorted((r for r in fitted if r["budget"] == budget), key=lambda r: r[key])
        n = np.array([r[key] for r in group], dtype=float)
        loss = np.array([r["final_val_loss"] for r in group])
        ax.plot(n, loss, "o", color=c, label=f"C = {budget:.2e}")
        if len(n) >= 3:
            coef = np.polyfit(np.log(n), loss, 2)
            grid = np.geomspace(n.min() / 1.5, n.max() * 1.5, 100)
            ax.plot(grid, np.polyval(coef, np.log(grid)), "-", color=c, lw=1)
    for p in iso.profiles if iso else ():
        ax.plot(p.N_opt, p.loss_min, "*", color="crimson", ms=11, zorder=5)
    ax.plot([], [], "*", color="crimson", ms=11, label="minimum (N_opt)" if iso else "no convex profile: no minimum")
    ax.set(xscale="log", xlabel=f"N ({kind} parameters)", ylabel="final val loss (nats/token)",
           title="IsoFLOP profiles")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return _save(fig, out_png)


def plot_law(fit: dict[str, Any], out_png: Path) -> Path:
    """The fitted L(N, D) along each budget's profile with its bootstrap band, and the hold-out points."""
    law = ChinchillaFit.from_dict(fit["chinchilla"])  # type: ignore[attr-defined]
    key = "params" if law.param_kind == "total" else "non_embedding_params"
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    runs = fit["runs"]
    budgets = sorted({r["budget"] for r in runs})
    for budget, c in zip(budgets, _colours(len(budgets)), strict=True):
        group = [r for r in runs if r["budget"] == budget]
        n = np.array([r[key] for r in group], dtype=float)
        # along an IsoFLOP line D = C / (flops per token) ≈ C·N_run/(C_run)·D_run/N: interpolate in log N
        d_of = np.polyfit(np.log(n), np.log([r["tokens"] for r in group]), 1) if len(group) > 1 else None
        grid = np.geomspace(n.min() / 1.5, n.max() * 1.5, 80)
        if d_of is not None:
            d = np.exp(np.polyval(d_of, np.log(grid)))
            lo, hi = law.predict_interval(grid, d)
            ax.fill_between(grid, lo, hi, color=c, alpha=0.2)
            ax.plot(grid, law.predict(grid, d), "-", color=c, lw=1)
        holdout = group[0]["holdout"]
        ax.plot(n, [r["final_val_loss"] for r in group], "D" if holdout else "o", color=c,
                mec="k" if holdout else c, ms=7 if holdout else 5,
                label=f"{'hold-out ' if holdout else ''}C = {budget:.2e}")
    if fit.get("entropy_floor") is not None:
        ax.axhline(fit["entropy_floor"], color="k", ls=":", lw=1, label=f"entropy floor {fit['entropy_floor']:.3f}")
    ax.axhline(law.E, color="crimson", ls="--", lw=1, label=f"fitted E {law.E:.3f}")
    ax.set(xscale="log", xlabel=f"N ({law.param_kind} parameters)", ylabel="loss (nats/token)",
           title=f"L(N, D) = E + A/N^α + B/D^β with {round(100 * law.level)}% bootstrap band")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return _save(fig, out_png)


def plot_frontier(fit: dict[str, Any], out_png: Path) -> Path:
    """N_opt(C): IsoFLOP minima, the approach-2 and approach-3 fits, and the published exponents."""
    iso = IsoFLOPFit.from_dict(fit["isoflop"]) if fit.get("isoflop") else None  # type: ignore[attr-defined]
    law = ChinchillaFit.from_dict(fit["chinchilla"])  # type: ignore[attr-defined]
    c_lo = min(r["train_flops"] for r in fit["runs"]) / 2
    c_hi = max(r["train_flops"] for r in fit["runs"]) * 2
    grid = np.geomspace(c_lo, c_hi, 50)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    if iso is not None:
        ax.plot([p.budget for p in iso.profiles], [p.N_opt for p in iso.profiles], "o", color="k",
                label="IsoFLOP minima")
        ax.plot(grid, iso.N_opt(grid), "-", color="crimson", label=f"approach 2: a = {iso.a:.2f}")
    ax.plot(grid, law.compute_optimal(grid)[0], "-", color="navy", label=f"approach 3: a = {law.a:.2f}")
    anchor_c = float(np.exp(np.mean(np.log(fit["budgets"]))))
    anchor_n = float(iso.N_opt(anchor_c) if iso is not None else law.compute_optimal(anchor_c)[0])
    for (label, a), ls in zip(PUBLISHED.items(), (":", "--", "-."), strict=True):
        ax.plot(grid, anchor_n * (grid / anchor_c) ** a, ls, color="grey", lw=1, label=label)
    ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)",
           ylabel=f"N_opt ({law.param_kind} parameters)",
           title="Compute-optimal frontier (published slopes anchored at our middle budget)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return _save(fig, out_png)


def plot_tiers(tiers: list[dict[str, Any]], distilled: dict[str, Any] | None, out_png: Path) -> Path | None:
    """Pareto plot of the tiers: latency per token against validation loss (and the distilled model)."""
    if not tiers:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    x = [t["latency_ms_per_token"] for t in tiers]
    y = [t["val_loss"] for t in tiers]
    ax.plot(x, y, "o-", color="navy", label="tiers (three sizes at or beside the frontier)")
    for t in tiers:
        ax.annotate(f"{t['tier']} ({t['params'] / 1e6:.2f}M)", (t["latency_ms_per_token"], t["val_loss"]),
                    textcoords="offset points", xytext=(5, 5), fontsize=8)
    if distilled is not None and distilled.get("latency_ms_per_token") is not None:
        ax.plot(distilled["latency_ms_per_token"], distilled["val_loss"], "*", color="crimson", ms=12,
                label=f"distilled into the {distilled['student_tier']} size")
    ax.set(xlabel="generation latency (ms/token, batch 1, this machine)", ylabel="val loss (nats/token)",
           title="Model family: quality vs speed")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, out_png)
