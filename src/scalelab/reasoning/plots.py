"""The reasoning stage's plots: pass@k and majority@k curves before and after each training step, per task
(Yue et al. 2025 ask whether RL raises pass@k at large k or only moves it to pass@1), and accuracy against
inference FLOPs per problem for several rungs (Snell et al. 2024)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_pass_at_k(task: str, models: dict[str, dict[str, Any]], path: Path) -> Path | None:
    """pass@k (solid, with its interval) and majority@k (dashed) per model on the training difficulties, and
    the held-out harder difficulty's pass@k beside."""
    if not models:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, (name, ev) in enumerate(models.items()):
        colour = f"C{i}"
        for ax, source in ((axes[0], ev), (axes[1], ev["by_difficulty"].get(str(ev["difficulties"]["harder"]), {}))):
            ks = sorted(int(k) for k in source.get("pass_at_k", {}))
            if not ks:
                continue
            ys = [source["pass_at_k"][str(k)] for k in ks]
            ax.plot(ks, ys, "o-", color=colour, label=f"{name} pass@k")
            ci = source.get("pass_at_k_ci", {})
            if ci:
                ax.fill_between(ks, [ci[str(k)][0] for k in ks], [ci[str(k)][1] for k in ks], color=colour,
                                alpha=0.12)
            ax.plot(ks, [source["majority_at_k"][str(k)] for k in ks], "s--", color=colour, alpha=0.7,
                    label=f"{name} majority@k")
    d = next(iter(models.values()))["difficulties"]
    axes[0].set(title=f"{task}: held-out problems, {d['unit']} {d['train']}", xscale="log", xlabel="k",
                ylabel="share solved", ylim=(0, 1.02))
    axes[1].set(title=f"{task}: held-out harder difficulty ({d['harder']} {d['unit']})", xscale="log",
                xlabel="k", ylim=(0, 1.02))
    axes[0].legend(fontsize=7)
    return _save(fig, path)


def plot_compute_trade(trade: dict[str, Any], path: Path) -> Path | None:
    """Accuracy against inference FLOPs per problem, one curve per rung (pass@k solid, majority@k dashed)."""
    curves = trade.get("curves") or []
    if len(curves) < 2:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, c in enumerate(sorted(curves, key=lambda c: c["train_flops"])):
        xs = [p["inference_flops"] for p in c["points"]]
        ax.plot(xs, [p["pass_at_k"] for p in c["points"]], "o-", color=f"C{i}",
                label=f"{c['name']} pass@k (train {c['train_flops']:.2g} FLOPs)")
        ax.plot(xs, [p["majority_at_k"] for p in c["points"]], "s--", color=f"C{i}", alpha=0.7,
                label=f"{c['name']} majority@k")
    ax.set(xscale="log", xlabel="inference FLOPs per problem (k samples)", ylabel="share solved", ylim=(0, 1.02),
           title="train vs test-time compute")
    ax.legend(fontsize=7)
    return _save(fig, path)
