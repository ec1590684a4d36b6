"""Plots of the experiments past the data wall, in the layout of Muennighoff et al.'s Figure 3.

Data-constrained: (left) final validation loss against training tokens for U unique tokens repeated and for
fresh data at the same compute, with the fitted fresh-data law and the repeated-data prediction L(D'); (middle)
the effective data D' against the data trained on, the law with R* and the paper's R* ≈ 15, beside each run's
own D' (the fresh law inverted at its loss) and the line of fresh data; (right) the knowledge gap per epoch
count. Synthetic: loss, knowledge gap and diversity per arm and recursion generation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import ScalarFormatter

from scalelab.scaling.effective_data import PAPER_R_STAR, FreshLaw, effective_data


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_data_constrained(result: dict[str, Any], path: Path) -> Path | None:
    runs = result.get("runs") or []
    if not runs:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    u = result["unique_tokens_served_per_epoch"]
    repeated = f"U = {result['unique_tokens']:,} tokens repeated"
    for arm, colour, label in (("repeated", "C3", repeated), ("fresh", "C0", "fresh data")):
        pts = sorted((r["tokens"], r["loss"], r["epochs"]) for r in runs if r["arm"] in (arm, "both"))
        axes[0].plot([p[0] for p in pts], [p[1] for p in pts], "o", color=colour, label=label)
        for t, loss, e in pts:
            axes[0].annotate(f"{e:g}", (t, loss), textcoords="offset points", xytext=(3, 3), fontsize=7)
    fit = result.get("fit")
    max_epochs = max(r["epochs"] for r in runs)
    grid_e = np.geomspace(1, max_epochs, 100)
    if fit:
        law = FreshLaw(**fit["law"])
        axes[0].plot(grid_e * u, law.loss(grid_e * u), "-", color="C0", alpha=0.6, label="fresh-data law")
        axes[0].plot(grid_e * u, law.loss(effective_data(u, grid_e - 1, fit["r_star"])), "-", color="C3",
                     alpha=0.6, label=f"L(D'), R*={fit['r_star']:.3g}")
        axes[1].plot(grid_e, effective_data(1.0, grid_e - 1, fit["r_star"]), "-", color="C3",
                     label=f"fitted R*={fit['r_star']:.3g}")
        lo, hi = fit["r_star_ci"]
        if np.isfinite(lo) and np.isfinite(hi):
            axes[1].fill_between(grid_e, effective_data(1.0, grid_e - 1, lo), effective_data(1.0, grid_e - 1, hi),
                                 color="C3", alpha=0.15, label=f"95% interval [{lo:.3g}, {hi:.3g}]")
        axes[1].plot([x["epochs"] for x in fit["repeated"]], [x["effective_tokens"] / u for x in fit["repeated"]],
                     "o", color="C3", label="each repeated run")
    axes[1].plot(grid_e, effective_data(1.0, grid_e - 1, PAPER_R_STAR), "--", color="grey",
                 label=f"paper R*={PAPER_R_STAR}")
    axes[1].plot(grid_e, grid_e, ":", color="C0", label="fresh data (D' = D)")
    axes[0].set(xscale="log", xlabel="training tokens", ylabel="final validation loss (nats/token)",
                title=f"return on repeated data (d{result['depth']}, {result['params']:,} params)")
    axes[1].set(xscale="log", yscale="log", xlabel="epochs over U", ylabel="effective data D' / U",
                title="effective data")
    epochs = sorted(result["epochs"], key=float)
    xs = [float(e) for e in epochs]
    for key, colour, label in (("knowledge_gap", "C3", "repeated"), ("fresh_knowledge_gap", "C0", "fresh")):
        ys = [result["epochs"][e][key] for e in epochs]
        if any(y is not None for y in ys):
            axes[2].plot(xs, [np.nan if y is None else y for y in ys], "o-", color=colour, label=label)
    axes[2].axhline(0, color="grey", lw=0.5)
    axes[2].set(xscale="log", xlabel="epochs over U", ylabel="knowledge gap (fact recall − control)",
                title="knowledge per epoch count")
    for ax in axes:
        ax.legend(fontsize=7)
        ax.xaxis.set_major_formatter(ScalarFormatter())
    axes[1].yaxis.set_major_formatter(ScalarFormatter())
    return _save(fig, path)


def plot_synthetic(result: dict[str, Any], path: Path) -> Path | None:
    arms = result.get("arms") or {}
    recursion = result.get("recursion") or {}
    if not arms and not recursion:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    names = list(arms)
    axes[0].bar(names, [arms[n]["loss"] for n in names], color=[f"C{i}" for i in range(len(names))])
    lo = min(arms[n]["loss"] for n in names) if names else 0
    axes[0].set(ylim=(lo * 0.97, None), ylabel="final validation loss", title="arms at equal tokens")
    axes[0].tick_params(axis="x", rotation=20)
    for i, (mode, gens) in enumerate(recursion.items()):
        g = [x["generation"] for x in gens]
        axes[1].plot(g, [x["loss"] for x in gens], "o-", color=f"C{i}", label=f"{mode}: loss")
        axes[2].plot(g, [x["distinct_ngrams"] for x in gens], "o-", color=f"C{i}", label=f"{mode}: distinct n-grams")
        axes[2].plot(g, [x["tail_coverage"] for x in gens], "s--", color=f"C{i}", label=f"{mode}: tail entities")
    axes[1].set(xlabel="generation", ylabel="final validation loss", title="recursion: loss")
    axes[2].set(xlabel="generation (what it wrote)", ylabel="share", title="recursion: diversity of the text")
    for ax in axes[1:]:
        ax.legend(fontsize=7)
    return _save(fig, path)
