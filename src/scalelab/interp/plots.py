"""The interpretability studies' figures: probes per layer, universality histograms, SAE scaling laws, steering.

Each function takes a study's summary record and a PNG path, draws one figure with matplotlib (Agg), and
returns the file name, or None when the record has nothing to draw.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _save(fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


def plot_probes(probes: dict[str, Any], path: Path) -> str | None:
    groups = {g: r for g, r in probes.get("groups", {}).items() if "layers" in r}
    if not groups:
        return None
    fig, axes = plt.subplots(1, len(groups), figsize=(3.2 * len(groups), 3.0), squeeze=False)
    for ax, (g, r) in zip(axes[0], groups.items(), strict=True):
        xs = [row["layer"] for row in r["layers"]]
        ax.plot(xs, [row["accuracy"] for row in r["layers"]], "o-", label="probe")
        ax.plot(xs, [row["control"] for row in r["layers"]], "s--", label="shuffled-label control")
        ax.axhline(r["token_baseline"], color="grey", ls=":", label="token identity")
        ax.axhline(r["chance"], color="black", lw=0.5)
        ax.set(title=g, xlabel="layer (-1 = embeddings)", ylim=(0, 1.02))
    axes[0][0].set_ylabel("balanced accuracy")
    axes[0][0].legend(fontsize=7)
    return _save(fig, path)


def plot_universality(univ: dict[str, Any], path: Path) -> str | None:
    pairs = univ.get("best_corr") or {}
    if not pairs:
        return None
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 3.0), squeeze=False)
    for ax, (name, corr) in zip(axes[0], pairs.items(), strict=True):
        bins = [i / 20 for i in range(21)]
        ax.hist(corr["features"], bins=bins, alpha=0.6, density=True, label="SAE features")
        ax.hist(corr["neurons"], bins=bins, alpha=0.6, density=True, label="MLP neurons (|r|)")
        ax.set(title=f"best match across {name}", xlabel="activation correlation", ylabel="density")
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_sae_scaling(res: dict[str, Any], path: Path) -> str | None:
    runs = res.get("runs") or []
    if not runs:
        return None
    fixed = res["fixed"]
    d_in = res["d_in"]
    sweeps = [("d_sae", "latents", {"k": fixed["k"], "tokens": fixed["tokens"]}),
              ("k", "k", {"d_sae": fixed["width"] * d_in, "tokens": fixed["tokens"]}),
              ("tokens", "tokens", {"d_sae": fixed["width"] * d_in, "k": fixed["k"]})]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.0))
    for ax, (key, fit_key, where) in zip(axes, sweeps, strict=False):
        rows = sorted([r for r in runs if all(r[k] == v for k, v in where.items())], key=lambda r: r[key])
        xs, ys = [r[key] for r in rows], [r["nmse"] for r in rows]
        ax.loglog(xs, ys, "o")
        fit = res["fits"].get(fit_key, {})
        if "alpha" in fit and xs:
            ax.loglog(xs, [math.exp(fit["log_A"]) * x ** (-fit["alpha"]) for x in xs], "-",
                      label=f"α = {fit['alpha']:.3f}")
            ax.legend(fontsize=7)
        ax.set(xlabel=key.replace("d_sae", "latents n"), ylabel="normalised MSE", title=f"NMSE vs {fit_key}")
    dead = res.get("dead_vs_width") or []
    axes[3].semilogx([d[0] for d in dead], [d[1] for d in dead], "o-")
    axes[3].set(xlabel="latents n", ylabel="dead fraction", title="dead latents vs width")
    return _save(fig, path)


def plot_steering(st: dict[str, Any], path: Path) -> str | None:
    concepts = st.get("concepts") or {}
    if not concepts:
        return None
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    for concept, row in concepts.items():
        scales = [float(s) for s in row["scales"]]
        line = a.plot(scales, [v["rate"] for v in row["scales"].values()], "o-", label=f"{concept} (f{row['feature']})")
        a.axhline(row["baseline_rate"], color=line[0].get_color(), ls=":", lw=1)
        b.plot(scales, [v["loss_cost"] for v in row["scales"].values()], "o-", label=concept)
    a.set(xlabel="clamp (× max activation)", ylabel="generations expressing it", title="concept expression",
          ylim=(0, 1.02))
    b.set(xlabel="clamp (× max activation)", ylabel="Δ held-out loss (nats)", title="loss cost")
    a.legend(fontsize=7)
    return _save(fig, path)


def plot_circuits(circ: dict[str, Any], path: Path) -> str | None:
    graphs = [g for g in circ.get("graphs") or [] if "top_drop" in g.get("ablation", {})]
    if not graphs:
        return None
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(graphs), 3.0))
    xs = range(len(graphs))
    ax.bar([x - 0.2 for x in xs], [g["ablation"]["top_drop"] for g in graphs], 0.4, label="top nodes")
    ax.bar([x + 0.2 for x in xs], [g["ablation"]["random_drop_mean"] for g in graphs], 0.4,
           yerr=[g["ablation"]["random_drop_std"] for g in graphs], label="random active nodes")
    ax.set_xticks(list(xs), [g["slug"] for g in graphs])
    ax.set(ylabel="answer logit drop", title="ablation check")
    ax.legend(fontsize=7)
    return _save(fig, path)
