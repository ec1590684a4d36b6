"""Figures of the superposition reproduction, drawn like the paper's.

(a) per sparsity, WᵀW as a heatmap above the columns of W drawn in the plane; (b) the phase diagram on
log axes; (c) feature dimensionality per feature against 1/(1 − S) with the sticky fractions and the
dimensions-per-feature line. Drawn on Agg figures directly (no pyplot), so nothing global changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from scalelab.interp.superposition.analysis import PHASES, frac_name

FIGURES = {"geometry": "superposition_geometry.png", "phase": "superposition_phase.png",
           "dimensionality": "superposition_dimensionality.png"}
# Chosen to match the paper's phase-diagram figure (see BENCHMARKS.md); "other" should stay empty.
PHASE_COLOURS = {"not represented": "#d9d9d9", "dedicated dimension": "#3b6fb6", "superposition": "#d1423f",
                 "other": "#222222"}


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)


def plot_geometry(geo: dict[str, Any], path: Path) -> None:
    """Top row WᵀW (blue −1 … red +1), bottom row W's columns, darker = more important, per sparsity."""
    rows = geo["per_sparsity"]
    cols = len(rows)
    fig = Figure(figsize=(1.7 * cols, 3.9))
    axes = fig.subplots(2, cols, squeeze=False)
    importance = np.asarray(geo["importance"])
    shade = 0.25 + 0.75 * (importance - importance.min()) / max(np.ptp(importance), 1e-9)
    for c, r in enumerate(rows):
        W = np.asarray(r["W"])
        top, bottom = axes[0, c], axes[1, c]
        top.imshow(W.T @ W, cmap="coolwarm", vmin=-1, vmax=1)
        top.set_xticks([])
        top.set_yticks([])
        top.set_title(f"S = {r['sparsity']:g}\n{r['geometry']}", fontsize=8)
        for i in range(W.shape[1]):
            colour = (0.1, 0.25 + 0.5 * (1 - shade[i]), 0.2, 1.0)
            alpha = 1.0 if i in r["features_represented"]["which"] else 0.3
            bottom.plot([0, W[0, i]], [0, W[1, i]], color=colour, alpha=alpha, lw=1.5)
            bottom.plot([W[0, i]], [W[1, i]], "o", color=colour, alpha=alpha, ms=3)
        bottom.set_xlim(-1.4, 1.4)
        bottom.set_ylim(-1.4, 1.4)
        bottom.set_aspect("equal")
        bottom.set_xticks([])
        bottom.set_yticks([])
        bottom.set_xlabel(f"{r['features_represented']['count']}/{W.shape[1]} represented", fontsize=7)
    axes[0, 0].set_ylabel("WᵀW", fontsize=8)
    axes[1, 0].set_ylabel("columns of W", fontsize=8)
    fig.suptitle(f"{geo['n_features']} features in {geo['n_dims']} dimensions, importance decaying", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges for log-spaced centres (geometric midpoints, extended half a step at each end)."""
    logc = np.log10(centres)
    step = np.diff(logc).mean() if len(logc) > 1 else 1.0
    return 10 ** np.concatenate([[logc[0] - step / 2], (logc[1:] + logc[:-1]) / 2, [logc[-1] + step / 2]])


def plot_phase(phase: dict[str, Any], path: Path) -> None:
    """The phase of the second feature per (density, relative importance) cell, paper's axes and colours."""
    dens, rel = np.asarray(phase["densities"]), np.asarray(phase["relative_importances"])
    codes = np.array([[PHASES.index(label) for label in row] for row in phase["grid"]])
    fig = Figure(figsize=(5.2, 4.0))
    ax = fig.subplots()
    ax.pcolormesh(_edges(dens), _edges(rel), codes, cmap=ListedColormap([PHASE_COLOURS[p] for p in PHASES]),
                  vmin=-0.5, vmax=len(PHASES) - 0.5, edgecolors="white", linewidth=0.3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("feature density 1 − S")
    ax.set_ylabel("relative importance of feature 2")
    ax.set_title("2 features in 1 dimension: phase of feature 2", fontsize=9)
    handles = [Patch(color=PHASE_COLOURS[p], label=f"{p} ({phase['counts'][p]})") for p in PHASES
               if phase["counts"][p] or p != "other"]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    _save(fig, path)


def plot_dimensionality(dim: dict[str, Any], path: Path) -> None:
    """D_i of every feature against 1/(1 − S) (jittered), the sticky fractions, and m / ‖W‖_F²."""
    rows = dim["per_sparsity"]
    x = np.array([r["inverse_density"] for r in rows])
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.subplots()
    fracs = sorted(dim["sticky_fractions"])
    for k, f in enumerate(fracs):
        ax.axhline(f, color="#7a5fb0", lw=0.8, alpha=0.5)
        # Labels of close fractions (2/5 and 3/8) are pushed apart instead of printed over each other.
        va = ("bottom" if k > 0 and f - fracs[k - 1] < 0.04 else
              "top" if k + 1 < len(fracs) and fracs[k + 1] - f < 0.04 else "center")
        ax.annotate(frac_name(f), (1.01, f), xycoords=("axes fraction", "data"), fontsize=7, va=va,
                    color="#7a5fb0", annotation_clip=False)
    # Deterministic horizontal jitter, as in the paper's scatter, so overlapping features stay visible.
    rng = np.random.default_rng(0)
    spread = np.exp(np.diff(np.log(x)).mean() * 0.25) if len(x) > 1 else 1.05
    for r, xi in zip(rows, x, strict=True):
        d = np.asarray(r["dimensionality"])
        ax.scatter(xi * spread ** rng.uniform(-1, 1, d.size), d, s=3, color="black", alpha=0.35, linewidths=0)
    ax.plot(x, [r["dims_per_feature"] for r in rows], color="#d1423f", lw=1.5, label="m / ‖W‖²_F")
    ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.08)
    ax.set_xlabel("1 / (1 − S)")
    ax.set_ylabel("dimensions per feature")
    ax.set_title(f"Feature dimensionality, n = {dim['n_features']}, m = {dim['n_dims']}, uniform importance",
                 fontsize=9)
    ax.legend(fontsize=7, loc="upper center")
    fig.tight_layout()
    _save(fig, path)


def plot_all(results: dict[str, Any], out_dir: Path) -> dict[str, str]:
    """Draw the three figures into out_dir; return their file names by experiment."""
    plot_geometry(results["geometry"], out_dir / FIGURES["geometry"])
    plot_phase(results["phase"], out_dir / FIGURES["phase"])
    plot_dimensionality(results["dimensionality"], out_dir / FIGURES["dimensionality"])
    return dict(FIGURES)
