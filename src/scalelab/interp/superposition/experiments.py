"""The three experiments of Toy Models of Superposition (Elhage et al. 2022), run end to end.

(a) n features in 2 dimensions with decaying importance across sparsity: which features the model
keeps and how it arranges them (orthogonal pair → antipodal pairs → pentagon); (b) the phase diagram
of 2 features in 1 dimension over density × relative importance; (c) feature dimensionality against
sparsity in a larger model, against the paper's sticky fractions. `run_superposition` trains them,
labels what the weights show and writes `results.json` and the figures; `superposition_summary` is
the compact form the `interp` stage records.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scalelab.artifacts import atomic_write_json
from scalelab.interp.superposition import analysis, plots
from scalelab.interp.superposition.config import STICKY_FRACTIONS, SuperpositionConfig
from scalelab.interp.superposition.toy import TrainSpec, train_stack

PAPER = "Elhage et al. 2022, Toy Models of Superposition (transformer-circuits.pub/2022/toy_model)"
# Seed offsets keep the three experiments' random streams apart under one config seed.
_SEED_OFFSET = {"geometry": 0, "phase": 100, "dimensionality": 200}


def _represented_entry(W: np.ndarray, threshold: float) -> dict[str, Any]:
    which = analysis.represented(W, threshold)
    return {"count": len(which), "which": which, "threshold_norm": threshold}


def _rounded(a: np.ndarray, digits: int = 4) -> list[Any]:
    return np.round(a.astype(float), digits).tolist()


def run_geometry(cfg: SuperpositionConfig) -> dict[str, Any]:
    """Experiment (a): train per sparsity, keep the best restart, name the geometry its W shows."""
    g = cfg.geometry
    if not all(0 <= S < 1 for S in g.sparsities):
        raise ValueError(f"sparsities must lie in [0, 1): {g.sparsities}")
    sparsity = torch.tensor(g.sparsities, dtype=torch.float64)
    importance = g.importance_decay ** torch.arange(g.n_features, dtype=torch.float64)
    spec = TrainSpec(steps=g.steps, batch_size=g.batch_size, lr=g.lr, eval_batch=cfg.eval_batch,
                     seed=cfg.seed + _SEED_OFFSET["geometry"])
    trained = train_stack(g.n_features, g.n_dims, 1 - sparsity, importance.expand(len(g.sparsities), -1),
                          g.restarts, spec)
    rows = []
    for s, S in enumerate(g.sparsities):
        W = trained.W[s].double().numpy()
        geo = analysis.geometry_2d(W, threshold=cfg.represented_norm, antipodal_cos=cfg.antipodal_cos,
                                   orthogonal_cos=cfg.orthogonal_cos, polygon_tol_deg=cfg.polygon_tol_deg)
        rows.append({
            "sparsity": S, "density": round(1 - S, 6), "loss": float(trained.loss[s]),
            "restart_kept": int(trained.restart[s]),
            "features_represented": _represented_entry(W, cfg.represented_norm),
            "norms": _rounded(analysis.feature_norms(W)),
            "dimensionality": _rounded(analysis.feature_dimensionality(W)),
            "geometry": geo["label"], "neighbour_gaps_deg": geo["neighbour_gaps_deg"], "antipodal_pairs": geo["pairs"],
            "W": _rounded(W), "b": _rounded(trained.b[s].double().numpy()),
        })
    labels = [r["geometry"] for r in rows]
    pentagon = [r["sparsity"] for r in rows if r["geometry"] == "pentagon"]
    # The sparsity from which every sparser setting of the sweep is a pentagon (None if the last is not).
    stable = None
    for r in reversed(rows):
        if r["geometry"] != "pentagon":
            break
        stable = r["sparsity"]
    return {"n_features": g.n_features, "n_dims": g.n_dims, "importance": _rounded(importance.numpy()),
            "per_sparsity": rows, "labels": labels, "first_pentagon_sparsity": min(pentagon, default=None),
            "pentagon_sparsity": stable}


def run_phase(cfg: SuperpositionConfig) -> dict[str, Any]:
    """Experiment (b): 2 features in 1 dimension; classify the second feature's phase per cell."""
    p = cfg.phase
    dens = torch.logspace(math.log10(p.min_density), 0.0, p.densities, dtype=torch.float64)
    rel = torch.logspace(-math.log10(p.importance_span), math.log10(p.importance_span), p.importances,
                         dtype=torch.float64)
    # Cells are importance-major: cell = i_importance * densities + j_density.
    cell_density = dens.repeat(p.importances)
    cell_imp = torch.stack([torch.ones(p.importances * p.densities, dtype=torch.float64),
                            rel.repeat_interleave(p.densities)], dim=1)
    spec = TrainSpec(steps=p.steps, batch_size=0, lr=p.lr, eval_batch=0, seed=cfg.seed + _SEED_OFFSET["phase"],
                     quadrature=p.quadrature)
    trained = train_stack(2, 1, cell_density, cell_imp, p.restarts, spec)
    W = trained.W.double().numpy()  # [cells, 1, 2]
    labels = [analysis.phase_of(W[c], threshold=cfg.represented_norm, antipodal_cos=cfg.antipodal_cos,
                                orthogonal_cos=cfg.orthogonal_cos) for c in range(W.shape[0])]
    grid = [labels[i * p.densities:(i + 1) * p.densities] for i in range(p.importances)]
    counts = {ph: labels.count(ph) for ph in analysis.PHASES}
    # The boundary as the paper draws it: per importance, the densest cell still in superposition.
    max_dens = [max((float(dens[j]) for j, lab in enumerate(row) if lab == "superposition"), default=None)
                for row in grid]
    return {"densities": _rounded(dens.numpy(), 6), "relative_importances": _rounded(rel.numpy(), 6),
            "grid": grid, "grid_axes": "grid[i][j]: relative importance i (ascending), density j (ascending)",
            "shape": [p.importances, p.densities], "counts": counts, "phases": list(analysis.PHASES),
            "superposition_max_density": [None if d is None else round(d, 6) for d in max_dens],
            "W": [[_rounded(W[i * p.densities + j, 0], 3) for j in range(p.densities)] for i in range(p.importances)],
            "loss": [trained.loss[i * p.densities:(i + 1) * p.densities].tolist() for i in range(p.importances)]}


def run_dimensionality(cfg: SuperpositionConfig) -> dict[str, Any]:
    """Experiment (c): uniform importance, sweep sparsity, record D_i per feature and m / ‖W‖_F²."""
    d = cfg.dimensionality
    dens = d.min_density ** torch.linspace(0.0, 1.0, d.sparsities, dtype=torch.float64)
    spec = TrainSpec(steps=d.steps, batch_size=d.batch_size, lr=d.lr, eval_batch=cfg.eval_batch,
                     seed=cfg.seed + _SEED_OFFSET["dimensionality"])
    trained = train_stack(d.n_features, d.n_dims, dens, torch.ones(d.sparsities, d.n_features), d.restarts, spec)
    rows, rep_dims, all_dims = [], [], []
    for s in range(d.sparsities):
        W = trained.W[s].double().numpy()
        dims = analysis.feature_dimensionality(W)
        rep = _represented_entry(W, cfg.represented_norm)
        rep_dims.append(dims[rep["which"]])
        all_dims.append(dims)
        near = analysis.near_sticky(dims[rep["which"]], STICKY_FRACTIONS, cfg.sticky_window)[0]
        rows.append({"sparsity": round(1 - float(dens[s]), 6), "density": round(float(dens[s]), 6),
                     "inverse_density": round(1 / float(dens[s]), 4), "loss": float(trained.loss[s]),
                     "features_represented": rep, "dimensionality": _rounded(dims),
                     "represented_near_sticky": int(near.sum()),
                     "dims_per_feature": round(analysis.dimensions_per_feature(W), 5)})
    rep_all, every = np.concatenate(rep_dims), np.concatenate(all_dims)
    return {"n_features": d.n_features, "n_dims": d.n_dims, "per_sparsity": rows,
            "sticky_fractions": list(STICKY_FRACTIONS),
            # Over represented features only: an unrepresented feature's D ≈ 0 says nothing of stickiness.
            "sticky": analysis.sticky_stats(rep_all, STICKY_FRACTIONS, cfg.sticky_window),
            "sticky_tight": analysis.sticky_stats(rep_all, STICKY_FRACTIONS, 0.02),
            "sticky_all_features": analysis.sticky_stats(every, STICKY_FRACTIONS, cfg.sticky_window)}


def run_superposition(out_dir: Path, cfg: SuperpositionConfig, progress: bool = True) -> dict[str, Any]:
    """Run experiments (a), (b) and (c), write `out_dir/results.json` and the figures, return the results."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the cores are shared, and one thread keeps results bitwise repeatable
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    results: dict[str, Any] = {"paper": PAPER, "config": asdict(cfg), "out_dir": str(out_dir)}
    try:
        for name, fn in (("geometry", run_geometry), ("phase", run_phase), ("dimensionality", run_dimensionality)):
            t0 = time.perf_counter()
            results[name] = fn(cfg)
            seconds[name] = round(time.perf_counter() - t0, 2)
            if progress:
                print(f"[superposition] {name}: {seconds[name]:.1f}s", file=sys.stderr, flush=True)
    finally:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    results["figures"] = plots.plot_all(results, out_dir)
    seconds["plots"] = round(time.perf_counter() - t0, 2)
    seconds["total"] = round(time.perf_counter() - start, 2)
    results["seconds"] = seconds
    atomic_write_json(out_dir / "results.json", results)
    if progress:
        print(f"[superposition] {superposition_summary(results)}", file=sys.stderr, flush=True)
    return results


def superposition_summary(results: dict[str, Any]) -> dict[str, Any]:
    """The compact record for `summary.json["interp"]["superposition"]`."""
    geo, phase, dim = results["geometry"], results["phase"], results["dimensionality"]
    return {
        "geometry": {str(r["sparsity"]): {"represented": r["features_represented"]["count"], "geometry": r["geometry"]}
                     for r in geo["per_sparsity"]},
        "pentagon_sparsity": geo["pentagon_sparsity"],
        "dimensionality_represented": {f"{r['inverse_density']:g}": r["features_represented"]["count"]
                                       for r in dim["per_sparsity"]},
        "phase_grid_shape": phase["shape"],
        "phase_counts": phase["counts"],
        "sticky_fraction": round(dim["sticky"]["fraction"], 4),
        "sticky_window": dim["sticky"]["window"],
        "sticky_chance": dim["sticky"]["chance"],
        "seconds": results.get("seconds", {}).get("total"),
    }
